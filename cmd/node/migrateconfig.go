package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/etcdsync/etcdsync/internal/migrate"
	"github.com/etcdsync/etcdsync/supervisor"
)

// envToPassword is the target's v3 password; like the source's, it has no
// flag.
const envToPassword = "ETCDSYNC_TO_PASSWORD"

// migrateConfig is `node migrate`'s validated command line.
type migrateConfig struct {
	// The v2 source, with the node's flags.
	Endpoints             []string
	CAFile                string
	CertFile, KeyFile     string
	Username, Password    string
	WatchMode             supervisor.WatchMode
	OnClusterReset        supervisor.ResetPolicy
	ClusterIDPollInterval time.Duration

	// The v3 target; ToEndpoints defaults to Endpoints.
	ToEndpoints            []string
	ToCAFile               string
	ToCertFile, ToKeyFile  string
	ToUsername, ToPassword string

	Prefix          string
	Once            bool
	Listen          string
	MaxTxnOps       int
	MaxTxnBytes     int
	ParallelTxns    int
	MaxVerifyRounds int
	// ReconcileInterval is how often continuous mode compares the whole
	// prefix again (v2 does not tell watchers of TTL refreshes).
	ReconcileInterval time.Duration
	RequestTimeout    time.Duration
	ShutdownTimeout   time.Duration
	LogFormat         string
	LogLevel          slog.Level
}

type migrateRaw struct {
	endpoints, toEndpoints, watch, onClusterReset, logLevel string
}

func newMigrateFlagSet(c *migrateConfig) (*flag.FlagSet, *migrateRaw) {
	raw := &migrateRaw{}
	fs := flag.NewFlagSet("node migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseMigrateFlags reports errors itself, as parseFlags does
	fs.Usage = func() {}
	fs.StringVar(&raw.endpoints, "etcd-endpoints", "",
		"comma-separated etcd client URLs of the v2 source (env "+envEndpoints+"; the flag wins); required")
	fs.StringVar(&c.CAFile, "etcd-ca-file", "", "PEM CA bundle to verify the source (https endpoints)")
	fs.StringVar(&c.CertFile, "etcd-cert-file", "", "PEM client certificate for the source (with --etcd-key-file)")
	fs.StringVar(&c.KeyFile, "etcd-key-file", "", "PEM client key for the source (with --etcd-cert-file)")
	fs.StringVar(&c.Username, "etcd-username", "",
		"the source's v2 basic-auth user; the password is read from env "+envPassword+" only")
	fs.StringVar(&raw.watch, "watch", "long-poll", "how to watch the source: long-poll or stream")
	fs.StringVar(&raw.onClusterReset, "on-cluster-reset", "resync",
		"when the v2 source is rebuilt or restored: resync (make v3 equal to the new v2) or stop (exit 1)")
	fs.DurationVar(&c.ClusterIDPollInterval, "cluster-id-poll-interval", 10*time.Second,
		"mean interval of the source's cluster-ID poll (±10 % jitter)")
	fs.StringVar(&raw.toEndpoints, "to-endpoints", "",
		"comma-separated etcd client URLs of the v3 target; empty: the source's (one etcd 3.5 serves both APIs)")
	fs.StringVar(&c.ToCAFile, "to-ca-file", "", "PEM CA bundle to verify the target (https endpoints)")
	fs.StringVar(&c.ToCertFile, "to-cert-file", "", "PEM client certificate for the target (with --to-key-file)")
	fs.StringVar(&c.ToKeyFile, "to-key-file", "", "PEM client key for the target (with --to-cert-file)")
	fs.StringVar(&c.ToUsername, "to-username", "",
		"the target's v3 auth user; the password is read from env "+envToPassword+" only")
	fs.StringVar(&c.Prefix, "prefix", "/calico/v1", "the v2 directory to copy, under the same keys in v3")
	fs.BoolVar(&c.Once, "once", false,
		"copy, verify with a final read of both sides, print {\"migrated\":N,\"deleted\":M,\"unchanged\":U,\"revision\":R}\n"+
			"and exit 0; default: mirror every v2 change until SIGINT/SIGTERM")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9095", "host:port of the HTTP server (/healthz, /readyz, /metrics)")
	fs.IntVar(&c.MaxTxnOps, "max-txn-ops", migrate.DefaultMaxTxnOps, "the most ops in one v3 txn (the target's --max-txn-ops)")
	fs.IntVar(&c.MaxTxnBytes, "max-txn-bytes", migrate.DefaultMaxTxnBytes,
		"the most bytes of keys and values in one v3 txn (below the target's --max-request-bytes)")
	fs.IntVar(&c.ParallelTxns, "parallel-txns", 4,
		"how many v3 txns to keep in flight at once (their keys are distinct, so they commute)")
	fs.IntVar(&c.MaxVerifyRounds, "max-verify-rounds", 5,
		"with --once: how many times the final comparison may find v2 changed and write the difference before giving up")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", 5*time.Minute,
		"in continuous mode, how often to compare the whole prefix on both sides again (v2 tells watchers of no TTL refresh)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 10*time.Second, "bound on each request to either etcd")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "bound on each shutdown step")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&raw.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return fs, raw
}

func printMigrateUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "Usage: node migrate --etcd-endpoints SRC [--to-endpoints DST] --prefix /P [--once] [--listen ADDR]\n\n"+
		"Copies the v2 directory --prefix of SRC into etcd's v3 API at DST, under the same\n"+
		"keys, through the syncer: directories flatten to their keys, hidden _ keys are not\n"+
		"copied, TTL keys go on v3 leases, and v3 keys under the prefix that v2 lacks are\n"+
		"deleted. By default it mirrors every v2 change until SIGINT/SIGTERM (/readyz is 200\n"+
		"while v3 equals v2); with --once it copies, verifies and exits. Exit codes: 0 done\n"+
		"(or stopped by a signal), 1 failed (the message names what), 2 bad flag.\n\nFlags:\n")
	printFlags(w, fs)
}

// parseMigrateFlags parses and checks `node migrate`'s args; errors are
// *flagError naming the flag, -h/--help is flag.ErrHelp after the usage.
func parseMigrateFlags(args []string, getenv func(string) string, usageOut io.Writer) (migrateConfig, error) {
	var c migrateConfig
	fs, raw := newMigrateFlagSet(&c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printMigrateUsage(usageOut, fs)
			return c, err
		}
		name := "command line"
		if m := flagInError.FindStringSubmatch(err.Error()); m != nil {
			name = "--" + m[1]
		}
		return c, &flagError{Flag: name, Err: err}
	}
	if fs.NArg() > 0 {
		return c, &flagError{Flag: "command line", Err: fmt.Errorf("unexpected argument %q (every setting is a --flag)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var err error
	if c.Endpoints, _, err = urlList("etcd-endpoints", envEndpoints, raw.endpoints, set, getenv); err != nil {
		return c, err
	}
	if len(c.Endpoints) == 0 {
		return c, badFlag("etcd-endpoints", "missing: name the etcd holding the v2 data, or set $%s (migrate runs no embedded etcd)", envEndpoints)
	}
	if c.ToEndpoints, _, err = urlList("to-endpoints", "", raw.toEndpoints, map[string]bool{"to-endpoints": true}, getenv); err != nil {
		return c, err
	}
	if set["to-endpoints"] && len(c.ToEndpoints) == 0 {
		return c, badFlag("to-endpoints", "empty; leave the flag out to write into the source etcd's v3 API")
	}
	if len(c.ToEndpoints) == 0 {
		c.ToEndpoints = c.Endpoints
	}
	if err := bothOrNeither("etcd-cert-file", c.CertFile, "etcd-key-file", c.KeyFile); err != nil {
		return c, err
	}
	if err := bothOrNeither("to-cert-file", c.ToCertFile, "to-key-file", c.ToKeyFile); err != nil {
		return c, err
	}
	c.Password, c.ToPassword = getenv(envPassword), getenv(envToPassword)
	if c.Password != "" && c.Username == "" {
		return c, badFlag("etcd-username", "missing: %s is set", envPassword)
	}
	if c.ToPassword != "" && c.ToUsername == "" {
		return c, badFlag("to-username", "missing: %s is set", envToPassword)
	}
	if !strings.HasPrefix(c.Prefix, "/") || strings.Trim(c.Prefix, "/") == "" {
		return c, badFlag("prefix", "%q must be a directory path starting with /, e.g. /calico/v1", c.Prefix)
	}
	c.Prefix = strings.TrimSuffix(c.Prefix, "/")
	switch raw.watch {
	case "long-poll":
		c.WatchMode = supervisor.WatchLongPoll
	case "stream":
		c.WatchMode = supervisor.WatchStream
	default:
		return c, badFlag("watch", "%q is neither long-poll nor stream", raw.watch)
	}
	switch raw.onClusterReset {
	case "resync":
		c.OnClusterReset = supervisor.ResyncOnReset
	case "stop":
		c.OnClusterReset = supervisor.StopOnReset
	default:
		return c, badFlag("on-cluster-reset", "%q is neither resync nor stop", raw.onClusterReset)
	}
	positive := []struct {
		name string
		ok   bool
		v    any
	}{
		{"cluster-id-poll-interval", c.ClusterIDPollInterval > 0, c.ClusterIDPollInterval},
		{"request-timeout", c.RequestTimeout > 0, c.RequestTimeout},
		{"shutdown-timeout", c.ShutdownTimeout > 0, c.ShutdownTimeout},
		{"max-txn-ops", c.MaxTxnOps > 0, c.MaxTxnOps},
		{"max-txn-bytes", c.MaxTxnBytes > 0, c.MaxTxnBytes},
		{"parallel-txns", c.ParallelTxns > 0, c.ParallelTxns},
		{"max-verify-rounds", c.MaxVerifyRounds > 0, c.MaxVerifyRounds},
		{"reconcile-interval", c.ReconcileInterval > 0, c.ReconcileInterval},
	}
	for _, p := range positive {
		if !p.ok {
			return c, badFlag(p.name, "%v must be positive", p.v)
		}
	}
	if !c.Once && set["max-verify-rounds"] {
		return c, badFlag("max-verify-rounds", "only applies with --once")
	}
	if c.Once && set["reconcile-interval"] {
		return c, badFlag("reconcile-interval", "does not apply with --once, which compares both sides at its end")
	}
	if err := checkHostPort("listen", c.Listen, true); err != nil {
		return c, err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, badFlag("log-format", "%q is neither text nor json", c.LogFormat)
	}
	if c.LogLevel, err = parseLogLevel(raw.logLevel); err != nil {
		return c, err
	}
	return c, nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, badFlag("log-level", "%q is not one of debug, info, warn, error", s)
}
