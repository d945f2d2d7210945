package relay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/etcdsync/etcdsync/internal/keyspace"
)

// Config configures a Server. Zero values take the defaults documented on
// each field; a Config must not be changed after New.
type Config struct {
	// Prefix is the etcd prefix the upstream syncer syncs (required), in
	// any form keyspace.Prefix maps to the syncer's: "/calico/v1/" is
	// "/calico/v1". A client asking for another prefix is refused.
	Prefix string
	// Logger receives the server's logs; nil: discarded.
	Logger *slog.Logger

	// MaxClients is how many streams may be open at once (default
	// 10000); one more is refused with 503 and a Retry-After.
	MaxClients int
	// RetryAfter is the hint given with that refusal (default 5 s).
	RetryAfter time.Duration
	// MaxConns bounds the connections the relay holds at once, counted
	// from accept (through Server.Listener): streams, and those still in
	// their TLS handshake or request, or being refused. One more is closed
	// at accept. Default MaxClients plus a quarter (at least 32): the
	// headroom lets a full relay still answer 503 and a Retry-After to
	// that many clients at once, and is all that connections which never
	// finish their request can take beyond the streams. It must be at
	// least MaxClients.
	MaxConns int
	// HandshakeTimeout bounds a connection's TLS handshake, and then its
	// request's headers, each (default 5 s): a connection that stalls
	// there is closed (Server.HTTPServer).
	HandshakeTimeout time.Duration

	// LogEntries and LogBytes bound the retained log of encoded frames
	// (defaults 10000 entries and 64 MiB): a client further behind than
	// that gets a fresh snapshot, and a resume from before it a snapshot.
	LogEntries int
	LogBytes   int
	// SnapshotShare is how long a snapshot built for one client is handed
	// to the clients that come after it (default 1 s): they get it, then
	// the log entries since, instead of a snapshot of their own. A
	// snapshot is handed on for longer while the view has not changed, or
	// while a stream still writes it and the log holds what followed it.
	SnapshotShare time.Duration
	// SnapshotBytes bounds the encoded bytes of the snapshots that streams
	// are still writing (default 256 MiB; their zstd forms add about a
	// twentieth): to build a snapshot past it, the server ends the streams
	// that hold the oldest snapshots the log has moved past, the slowest
	// readers. Snapshot memory is then at most SnapshotBytes plus one
	// snapshot.
	SnapshotBytes int

	// PingInterval is the silence after which a client that advertised
	// the ping feature gets a ping (default 10 s).
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client (default 10 s): a client
	// that reads nothing for that long is dropped.
	WriteTimeout time.Duration
	// MaxRequestBytes bounds the request line's path and query (default
	// 4096); the host's http.Server bounds the headers (MaxHeaderBytes).
	MaxRequestBytes int
}

// DefaultConfig returns a Config holding every default: what New uses for
// each field left zero. It has no Prefix, which is required, and no Logger
// (nil: discarded). A host or a command line can start from it, so that no
// default is written twice.
func DefaultConfig() Config {
	return Config{
		MaxClients:      10000,
		RetryAfter:      5 * time.Second,
		LogEntries:      10000,
		LogBytes:        64 << 20,
		SnapshotShare:   time.Second,
		SnapshotBytes:   256 << 20,
		PingInterval:    10 * time.Second,
		WriteTimeout:    10 * time.Second,
		MaxRequestBytes: 4096,
		// MaxConns stays 0: it follows MaxClients (Config.maxConns).
		HandshakeTimeout: 5 * time.Second,
	}
}

// ConfigError names the bad Config field.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "relay: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return cfg, &ConfigError{Field: "Prefix", Err: fmt.Errorf("%q does not start with /", cfg.Prefix)}
	}
	// One form, the syncer's and the leaf's: the hello says it, and a leaf
	// compares it with its own.
	if cfg.Prefix = keyspace.Prefix(cfg.Prefix); cfg.Prefix == "" {
		return cfg, &ConfigError{Field: "Prefix", Err: errors.New("serving the whole keyspace (/) is not supported; name a directory")}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := DefaultConfig()
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxClients", &cfg.MaxClients, def.MaxClients},
		{"LogEntries", &cfg.LogEntries, def.LogEntries},
		{"LogBytes", &cfg.LogBytes, def.LogBytes},
		{"SnapshotBytes", &cfg.SnapshotBytes, def.SnapshotBytes},
		{"MaxRequestBytes", &cfg.MaxRequestBytes, def.MaxRequestBytes},
		{"MaxConns", &cfg.MaxConns, 0}, // 0: derived from MaxClients (maxConns)
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			return cfg, &ConfigError{Field: f.name, Err: fmt.Errorf("%d is negative", *f.v)}
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if cfg.MaxConns != 0 && cfg.MaxConns < cfg.MaxClients {
		return cfg, &ConfigError{Field: "MaxConns", Err: fmt.Errorf("%d is below MaxClients (%d): streams past it could never be accepted", cfg.MaxConns, cfg.MaxClients)}
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RetryAfter", &cfg.RetryAfter, def.RetryAfter},
		{"SnapshotShare", &cfg.SnapshotShare, def.SnapshotShare},
		{"PingInterval", &cfg.PingInterval, def.PingInterval},
		{"WriteTimeout", &cfg.WriteTimeout, def.WriteTimeout},
		{"HandshakeTimeout", &cfg.HandshakeTimeout, def.HandshakeTimeout},
	}
	for _, f := range durations {
		switch {
		case *f.v < 0:
			return cfg, &ConfigError{Field: f.name, Err: fmt.Errorf("%v is negative", *f.v)}
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return cfg, nil
}

// maxConns is MaxConns, or, for 0, its default: MaxClients and a quarter,
// at least 32 more. Derived rather than filled in, so that a Config that
// changes MaxClients from DefaultConfig's gets the headroom of its own.
func (cfg Config) maxConns() int {
	if cfg.MaxConns > 0 {
		return cfg.MaxConns
	}
	return cfg.MaxClients + max(cfg.MaxClients/4, 32)
}
