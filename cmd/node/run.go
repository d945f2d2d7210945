package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/etcdsync/etcdsync/internal/redact"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/model/calicov1"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// relayMaxHeader bounds a relay request's headers: a handshake is a short
// GET, so anything bigger is refused (431) before it reaches the relay.
const relayMaxHeader = 8 << 10

// Exit codes.
const (
	exitOK     = 0 // stopped by SIGINT or SIGTERM, or --help, --version
	exitFailed = 1 // the syncer stopped itself, or a component failed
	exitUsage  = 2 // a bad flag or setting
)

// run is the node: it parses args, starts the embedded etcd (unless
// --etcd-endpoints), the syncer and the HTTP server, waits for ctx to be
// done or for one of them to fail, stops them in that order and returns
// the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, getenv, stdout) // --help goes to stdout: it is asked for
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
		return exitOK
	}
	if err != nil {
		// Usage errors come before there is a logger to configure: plain
		// text, as package flag writes them.
		fmt.Fprintf(stderr, "node: %v\nRun 'node --help' for the flags.\n", err)
		return exitUsage
	}
	logger := newLogger(c, stderr)
	code, err := runNode(ctx, c, logger, stdout)
	if err != nil {
		logger.Error("exiting on error", append([]any{"err", err, "exitCode", code}, errorArgs(err)...)...)
	} else {
		logger.Info("node stopped")
	}
	return code
}

// newLogger returns the logger for --log-format and --log-level.
func newLogger(c config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// minLevel is a slog.Handler that drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// actorSystemLogger is the logger of the actor system: warnings and up
// unless --log-level is debug. protoactor logs each restart ("Recovering")
// and each message to a stopped actor ("DeadLetter") at info, which the
// supervisor's own lines already say better.
func actorSystemLogger(c config, logger *slog.Logger) *slog.Logger {
	if c.LogLevel <= slog.LevelDebug {
		return logger
	}
	return slog.New(minLevel{logger.Handler(), max(c.LogLevel, slog.LevelWarn)})
}

// errorArgs adds the flag to blame to an error's log line.
func errorArgs(err error) []any {
	var fe *flagError
	if errors.As(err, &fe) {
		return []any{"flag", fe.Flag}
	}
	return nil
}

// runNode runs the node until ctx is done or something fails. It returns
// the exit code, and the error to log if the code is not exitOK.
func runNode(ctx context.Context, c config, logger *slog.Logger, stdout io.Writer) (int, error) {
	m := newMetrics()
	var out io.Writer
	if c.Output == "jsonl" {
		out = stdout
	}
	v := newView(out, logger, m.setStatus)

	// Bound before anything starts, so a taken port fails fast.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return exitUsage, badFlag("listen", "cannot listen on %s: %w", c.Listen, err)
	}
	defer ln.Close() // after Serve this is a no-op

	cfg := supervisor.Config{
		Endpoints:             c.Endpoints,
		API:                   c.API,
		Username:              c.Username,
		Password:              c.Password,
		Prefix:                c.Prefix,
		WatchMode:             c.WatchMode,
		Logger:                logger,
		OnClusterReset:        c.OnClusterReset,
		ClusterIDPollInterval: c.ClusterIDPollInterval,
		Observer:              m,
	}
	if c.Model == "calicov1" {
		cfg.Decoder = calicov1.Decoder{}
	}
	tlsConfig, err := etcdTLS(c)
	if err != nil {
		return exitUsage, err
	}
	cfg.TLS = tlsConfig
	var etcdErr <-chan error // stays nil with an external etcd
	switch {
	case c.leaf():
		cfg.Endpoints, cfg.Relays, cfg.API = nil, c.RelayEndpoints, supervisor.APIv2
		logger.Info("a leaf: syncing from relays, not etcd", "relays", redact.URLs(c.RelayEndpoints),
			"tls", c.RelayCAFile != "" || c.RelayCertFile != "")
	case c.embedded():
		emb, err := startEmbedded(ctx, c, logger)
		if err != nil {
			if ctx.Err() != nil { // a signal while etcd was starting: not a failure
				logger.Info("stopped while the embedded etcd was starting", "cause", context.Cause(ctx))
				return exitOK, nil
			}
			return codeFor(err), err
		}
		defer func() {
			if err := emb.Close(c.ShutdownTimeout); err != nil {
				logger.Warn("stopping the embedded etcd", "err", err)
			}
		}()
		etcdErr = emb.Err()
		cfg.Endpoints = []string{emb.clientURL}
		logger.Info("embedded etcd ready; write a key with the command in 'try'",
			"clientURL", emb.clientURL, "dataDir", c.DataDir, "try", emb.tryCommand(c.API, c.Prefix))
	default:
		logger.Info("using an external etcd", describeEndpoints(c)...)
	}

	var host messages.Callbacks = v
	var relayServer *relay.Server
	var relayHTTP *http.Server
	relayErr := make(chan error, 1) // stays empty without a relay
	if c.RelayListen != "" {
		rln, err := net.Listen("tcp", c.RelayListen)
		if err != nil {
			return exitUsage, badFlag("relay-listen", "cannot listen on %s: %w", c.RelayListen, err)
		}
		defer rln.Close()
		scheme := "http"
		relayTLSConfig, err := relayTLS(c)
		if err != nil {
			return exitUsage, err
		}
		if relayTLSConfig != nil {
			rln, scheme = tls.NewListener(rln, relayTLSConfig), "https"
		}
		relayLogger := logger.With("component", "relay")
		relayServer, err = relay.New(relay.Config{Prefix: c.Prefix, Logger: relayLogger,
			LogEntries: c.RelayLogEntries, LogBytes: c.RelayLogBytes, MaxClients: c.RelayMaxClients})
		if err != nil {
			return exitFailed, fmt.Errorf("starting the relay server: %w", err)
		}
		host = fanout{view: v, relay: relayServer}
		m.registry.MustRegister(newRelayCollector(relayServer))
		relayHTTP = newServer(relayServer, relayLogger)
		relayHTTP.MaxHeaderBytes = relayMaxHeader // the handshake is a short GET
		go func() { relayErr <- relayHTTP.Serve(rln) }()
		logger.Info("relay serving", "url", scheme+"://"+rln.Addr().String()+relay.StreamPath,
			"clientCertificates", c.RelayClientCAFile != "", "allowedNames", c.RelayAllowedNames)
	}

	system := supervisor.NewSystem(actorSystemLogger(c, logger))
	defer system.Shutdown()
	s, err := supervisor.Start(system, cfg, host)
	if err != nil {
		return codeFor(err), configError(err)
	}
	if relayServer != nil {
		relayServer.SetClusterIDSource(s.ClusterID)
	}
	stopSyncer := func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
		defer cancel()
		if err := s.Stop(stopCtx); err != nil {
			logger.Warn("stopping the syncer", "err", err)
		}
	}

	alive := func() bool {
		select {
		case <-s.Done():
			return false
		default:
			return true
		}
	}
	srv := newServer(newHandler(v, alive, m.registry, logger), logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("node running", "http", "http://"+ln.Addr().String(), "prefix", c.Prefix, "output", c.Output)

	code, failure := exitOK, error(nil)
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx))
	case <-s.Done():
		code, failure = exitFailed, syncerStopped(s.Err())
	case err := <-serveErr:
		code, failure = exitFailed, fmt.Errorf("HTTP server on --listen %s failed: %w", c.Listen, err)
	case err := <-relayErr:
		code, failure = exitFailed, fmt.Errorf("relay server on --relay-listen %s failed: %w", c.RelayListen, err)
	case err := <-etcdErr:
		code, failure = exitFailed, fmt.Errorf("embedded etcd failed: %w", err)
	}

	// The order matters: the syncer and its connections first (it reads
	// etcd and feeds the view), then the HTTP server, then (deferred) the
	// embedded etcd.
	stopSyncer()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("stopping the HTTP server", "err", err)
	}
	if relayServer != nil {
		relayServer.Close() // its streams end; Shutdown waits for them
		if err := relayHTTP.Shutdown(shutdownCtx); err != nil {
			logger.Warn("stopping the relay server", "err", err)
		}
	}
	return code, failure
}

// syncerStopped is the error for a syncer that stopped by itself.
func syncerStopped(err error) error {
	switch {
	case err == nil:
		return errors.New("syncer stopped without an error")
	case errors.Is(err, messages.ErrClusterIDChanged), errors.Is(err, messages.ErrIndexRegressed):
		return fmt.Errorf("syncer stopped: etcd was rebuilt or restored, and --on-cluster-reset is stop: %w", err)
	}
	return fmt.Errorf("syncer stopped itself: %w", err)
}

// codeFor returns the exit code for a start-up failure.
func codeFor(err error) int {
	var fe *flagError
	var ce *supervisor.ConfigError
	if errors.As(err, &fe) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}

// configError names the flag behind a *supervisor.ConfigError.
func configError(err error) error {
	var ce *supervisor.ConfigError
	if errors.As(err, &ce) {
		if f := flagForField(ce.Field); f != "" {
			return &flagError{Flag: f, Err: err}
		}
	}
	return err
}
