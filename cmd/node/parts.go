package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// The node's components (component.go), but for the embedded etcd
// (embedded.go).

// listeners binds the HTTP server's port and the relay server's before
// anything else starts, so that a taken port fails fast, naming its flag.
type listeners struct {
	httpAddr, relayAddr string // relayAddr "": no relay
	http, relay         net.Listener
}

func (l *listeners) name() string { return "listeners" }

func (l *listeners) start(context.Context) error {
	var err error
	if l.http, err = net.Listen("tcp", l.httpAddr); err != nil {
		return badFlag("listen", "cannot listen on %s: %w", l.httpAddr, err)
	}
	if l.relayAddr == "" {
		return nil
	}
	if l.relay, err = net.Listen("tcp", l.relayAddr); err != nil {
		_ = l.http.Close()
		return badFlag("relay-listen", "cannot listen on %s: %w", l.relayAddr, err)
	}
	return nil
}

// stop closes the listeners; the servers closed them already, unless one
// did not start.
func (l *listeners) stop(context.Context) error {
	for _, ln := range []net.Listener{l.http, l.relay} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	return nil
}

// httpServer serves the node's HTTP API (or node migrate's) on --listen.
type httpServer struct {
	srv  *http.Server
	ln   *net.Listener // bound by listeners.start
	addr string        // --listen, for errors
	fail func(error)
}

func (h *httpServer) name() string { return "HTTP server" }

func (h *httpServer) start(context.Context) error {
	go func() {
		if err := h.srv.Serve(*h.ln); !errors.Is(err, http.ErrServerClosed) {
			h.fail(fmt.Errorf("HTTP server on --listen %s failed: %w", h.addr, err))
		}
	}()
	return nil
}

func (h *httpServer) stop(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// relayServer serves the syncer's view to relay clients on --relay-listen.
type relayServer struct {
	server *relay.Server
	tls    *tls.Config // nil: plain http
	ln     *net.Listener
	c      config
	logger *slog.Logger // the node's; the server's own says component=relay
	fail   func(error)
	http   *http.Server
}

func (r *relayServer) name() string { return "relay server" }

func (r *relayServer) start(context.Context) error {
	// Connections are counted from accept, so before their TLS handshake:
	// the relay holds at most relay.Config.MaxConns.
	rln, scheme := r.server.Listener(*r.ln), "http"
	if r.tls != nil {
		rln, scheme = tls.NewListener(rln, r.tls), "https"
	}
	r.http = r.server.HTTPServer() // handshake and header timeouts, one request a connection
	r.http.ErrorLog = slog.NewLogLogger(r.logger.With("component", "relay").Handler(), slog.LevelWarn)
	go func() {
		if err := r.http.Serve(rln); !errors.Is(err, http.ErrServerClosed) {
			r.fail(fmt.Errorf("relay server on --relay-listen %s failed: %w", r.c.RelayListen, err))
		}
	}()
	r.logger.Info("relay serving", "url", scheme+"://"+rln.Addr().String()+relay.StreamPath,
		"clientCertificates", r.c.RelayClientCAFile != "", "allowedNames", r.c.RelayAllowedNames)
	return nil
}

func (r *relayServer) stop(ctx context.Context) error {
	r.server.Close() // its streams end; Shutdown waits for them
	return r.http.Shutdown(ctx)
}

// syncer runs a supervisor.Syncer, in an actor system of its own.
type syncer struct {
	cfg          supervisor.Config
	host         messages.Callbacks
	systemLogger *slog.Logger
	// stopped is the failure for a syncer that stopped itself, from its Err.
	stopped func(error) error
	fail    func(error)

	s        atomic.Pointer[supervisor.Syncer] // nil until started
	shutdown func()                            // the actor system's
	stopping chan struct{}                     // closed when stop begins
}

func (s *syncer) name() string { return "syncer" }

func (s *syncer) start(context.Context) error {
	system := supervisor.NewSystem(s.systemLogger)
	sy, err := supervisor.Start(system, s.cfg, s.host)
	if err != nil {
		system.Shutdown()
		return configError(err)
	}
	s.s.Store(sy)
	s.shutdown, s.stopping = system.Shutdown, make(chan struct{})
	go func(stopping <-chan struct{}) {
		<-sy.Done()
		select {
		case <-stopping: // stopped, not failed
		default:
			s.fail(s.stopped(sy.Err()))
		}
	}(s.stopping)
	return nil
}

// stop stops the syncer and its actor system; it may be called again.
func (s *syncer) stop(ctx context.Context) error {
	sy := s.s.Load()
	select {
	case <-s.stopping:
		return nil
	default:
		close(s.stopping)
	}
	defer s.shutdown()
	return sy.Stop(ctx)
}

// status is the syncer's status; WaitForDatastore until it starts.
func (s *syncer) status() messages.SyncStatus {
	if sy := s.s.Load(); sy != nil {
		return sy.Status()
	}
	return messages.WaitForDatastore
}

// alive reports whether the syncer runs: started, and not stopped.
func (s *syncer) alive() bool {
	sy := s.s.Load()
	if sy == nil {
		return false
	}
	select {
	case <-sy.Done():
		return false
	default:
		return true
	}
}
