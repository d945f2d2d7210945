package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/etcdsync/etcdsync/internal/redact"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/model/calicov1"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Exit codes.
const (
	exitOK     = 0 // stopped by SIGINT or SIGTERM, or --help, --version
	exitFailed = 1 // the syncer stopped itself, or a component failed
	exitUsage  = 2 // a bad flag or setting
)

// run is the node: it parses args, starts the components of its role (the
// embedded etcd unless --etcd-endpoints or --relay-endpoints, a relay
// server with --relay-listen, the HTTP server and the syncer), waits for
// ctx to be done or for one of them to fail, stops them in reverse order
// and returns the exit code.
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
	logger := newLogger(c.processFlags, stderr)
	code, err := runNode(ctx, c, logger, stdout)
	if err != nil {
		logger.Error("exiting on error", append([]any{"err", err, "exitCode", code}, errorArgs(err)...)...)
	} else {
		logger.Info("node stopped")
	}
	return code
}

// newLogger returns the logger for --log-format and --log-level.
func newLogger(c processFlags, w io.Writer) *slog.Logger {
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
func actorSystemLogger(c processFlags, logger *slog.Logger) *slog.Logger {
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
	cs, ls, err := nodeComponents(c, logger, stdout)
	if err != nil {
		return codeFor(err), err
	}
	switch c.Role {
	case roleLeaf:
		logger.Info("a leaf: syncing from relays, not etcd", "relays", redact.URLs(c.RelayEndpoints),
			"tls", c.RelayTLS.on())
	case roleExternal:
		logger.Info("using an external etcd", describeEndpoints(c)...)
	}
	if err := cs.start(ctx); errors.Is(err, errStoppedStarting) {
		return exitOK, nil
	} else if err != nil {
		return codeFor(err), err
	}
	logger.Info("node running", "http", "http://"+ls.http.Addr().String(), "prefix", c.Prefix, "output", c.Output)
	failure := cs.wait(ctx)
	cs.stop(ctx)
	if failure != nil {
		return exitFailed, failure
	}
	return exitOK, nil
}

// nodeComponents returns the node's components for its role, in start
// order: the listeners, the embedded etcd (roleEmbedded), the relay server
// (--relay-listen), the HTTP server and the syncer. So they stop in the
// order the node has always stopped in: the syncer and its connections
// first (it reads etcd and feeds the view and the relay), then the HTTP
// server, the relay server and the embedded etcd. It also returns the
// listeners, to say where they listen once bound. Nothing has started yet;
// an error is a file named by a flag that cannot be used, or a bad relay
// setting.
func nodeComponents(c config, logger *slog.Logger, stdout io.Writer) (*components, *listeners, error) {
	m := newMetrics()
	var out io.Writer
	if c.Output == "jsonl" {
		out = stdout
	}
	v := newView(out, logger, m.setStatus)
	sy, err := newSyncer(c, logger, m)
	if err != nil {
		return nil, nil, err
	}
	cs := newComponents(logger, c.ShutdownTimeout)
	ls := &listeners{httpAddr: c.Listen, relayAddr: c.RelayListen}
	cs.add(ls)
	sy.host, sy.fail = v, cs.fail
	if c.Role == roleEmbedded {
		emb := newEmbeddedEtcd(c, logger, cs.fail)
		sy.cfg.Endpoints = []string{emb.clientURL}
		cs.add(emb)
	}
	if c.RelayListen != "" {
		r, err := newRelayServer(c, logger, m, &ls.relay, cs.fail)
		if err != nil {
			return nil, nil, err
		}
		sy.host = fanout{view: v, relay: r.server} // Start hands r.server the cluster ID
		cs.add(r)
	}
	srv := newServer(newHandler(v, sy.alive, m.registry, logger), logger)
	cs.add(&httpServer{srv: srv, ln: &ls.http, addr: c.Listen, fail: cs.fail})
	cs.add(sy)
	return cs, ls, nil
}

// newSyncer returns the syncer component for c, without its host.
func newSyncer(c config, logger *slog.Logger, m *metrics) (*syncer, error) {
	cfg := supervisor.Config{
		Endpoints:             c.Endpoints,
		API:                   c.API,
		Username:              c.EtcdLogin.Username,
		Password:              c.EtcdLogin.Password,
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
	if c.Role == roleLeaf {
		cfg.Endpoints, cfg.Relays, cfg.API = nil, c.RelayEndpoints, supervisor.APIv2
	}
	var err error
	if cfg.TLS, err = etcdTLS(c); err != nil {
		return nil, err
	}
	return &syncer{cfg: cfg, systemLogger: actorSystemLogger(c.processFlags, logger), stopped: syncerStopped}, nil
}

// newRelayServer returns the relay server component for c, serving on the
// listener *ln will hold.
func newRelayServer(c config, logger *slog.Logger, m *metrics, ln *net.Listener, fail func(error)) (*relayServer, error) {
	relayTLSConfig, err := relayTLS(c)
	if err != nil {
		return nil, err
	}
	relayLogger := logger.With("component", "relay")
	server, err := relay.New(relay.Config{Prefix: c.Prefix, Logger: relayLogger,
		LogEntries: c.RelayLogEntries, LogBytes: c.RelayLogBytes, MaxClients: c.RelayMaxClients})
	if err != nil {
		return nil, fmt.Errorf("starting the relay server: %w", err)
	}
	m.registry.MustRegister(newRelayCollector(server))
	return &relayServer{server: server, tls: relayTLSConfig, ln: ln, c: c, logger: logger, fail: fail}, nil
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

// notUsage marks an error that names a flag yet is no usage error: the
// etcd the flag names cannot be used (exit 1, not 2).
type notUsage struct{ error }

func (e notUsage) Unwrap() error { return e.error }

// codeFor returns the exit code for a start-up failure.
func codeFor(err error) int {
	var fe *flagError
	var ce *supervisor.ConfigError
	if errors.As(err, new(notUsage)) {
		return exitFailed
	}
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
