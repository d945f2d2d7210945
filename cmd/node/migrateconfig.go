package main

import (
	"flag"
	"fmt"
	"io"
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
	TLS                   tlsFlags // --etcd-ca-file, --etcd-cert-file, --etcd-key-file
	Login                 login    // --etcd-username, $ETCDSYNC_ETCD_PASSWORD
	WatchMode             supervisor.WatchMode
	OnClusterReset        supervisor.ResetPolicy
	ClusterIDPollInterval time.Duration

	// The v3 target; ToEndpoints defaults to Endpoints.
	ToEndpoints []string
	ToTLS       tlsFlags // --to-ca-file, --to-cert-file, --to-key-file
	ToLogin     login    // --to-username, $ETCDSYNC_TO_PASSWORD

	Prefix          string
	Once            bool
	MaxTxnOps       int
	MaxTxnBytes     int
	ParallelTxns    int
	MaxVerifyRounds int
	// ReconcileInterval is how often continuous mode compares the whole
	// prefix again (v2 does not tell watchers of TTL refreshes).
	ReconcileInterval time.Duration
	RequestTimeout    time.Duration

	processFlags // --listen, --shutdown-timeout, --log-format, --log-level
}

type migrateRaw struct {
	endpoints, toEndpoints, logLevel string
}

// newMigrateFlagSet declares node migrate's flags into c, with the
// library's defaults (supervisor.DefaultConfig, internal/migrate's) where
// there is one.
func newMigrateFlagSet(c *migrateConfig) (*flag.FlagSet, *migrateRaw) {
	raw := &migrateRaw{}
	def := supervisor.DefaultConfig()
	fs := flag.NewFlagSet("node migrate", flag.ContinueOnError)
	fs.StringVar(&raw.endpoints, "etcd-endpoints", "",
		"comma-separated etcd client URLs of the v2 source (env "+envEndpoints+"; the flag wins); required")
	c.TLS.declare(fs, "etcd", "the source (https endpoints)", "the source")
	c.Login.declare(fs, "etcd-username", envPassword, "the source's v2 basic-auth user")
	fs.TextVar(&c.WatchMode, "watch", def.WatchMode, "how to watch the source: long-poll or stream")
	fs.TextVar(&c.OnClusterReset, "on-cluster-reset", def.OnClusterReset,
		"when the v2 source is rebuilt or restored: resync (make v3 equal to the new v2) or stop (exit 1)")
	fs.DurationVar(&c.ClusterIDPollInterval, "cluster-id-poll-interval", def.ClusterIDPollInterval,
		"mean interval of the source's cluster-ID poll (±10 % jitter)")
	fs.StringVar(&raw.toEndpoints, "to-endpoints", "",
		"comma-separated etcd client URLs of the v3 target; empty: the source's (one etcd 3.5 serves both APIs)")
	c.ToTLS.declare(fs, "to", "the target (https endpoints)", "the target")
	c.ToLogin.declare(fs, "to-username", envToPassword, "the target's v3 auth user")
	fs.StringVar(&c.Prefix, "prefix", def.Prefix, "the v2 directory to copy, under the same keys in v3")
	fs.BoolVar(&c.Once, "once", false,
		"copy, verify with a final read of both sides, print {\"migrated\":N,\"deleted\":M,\"unchanged\":U,\"revision\":R}\n"+
			"and exit 0; default: mirror every v2 change until SIGINT/SIGTERM")
	fs.IntVar(&c.MaxTxnOps, "max-txn-ops", migrate.DefaultMaxTxnOps, "the most ops in one v3 txn (the target's --max-txn-ops)")
	fs.IntVar(&c.MaxTxnBytes, "max-txn-bytes", migrate.DefaultMaxTxnBytes,
		"the most bytes of keys and values in one v3 txn (below the target's --max-request-bytes)")
	fs.IntVar(&c.ParallelTxns, "parallel-txns", 4,
		"how many v3 txns to keep in flight at once (their keys are distinct, so they commute)")
	fs.IntVar(&c.MaxVerifyRounds, "max-verify-rounds", 5,
		"with --once: how many times the final comparison may find v2 changed and write the difference before giving up")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", 5*time.Minute,
		"in continuous mode, how often to compare the whole prefix on both sides again (v2 tells watchers of no TTL refresh)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", def.RequestTimeout, "bound on each request to either etcd")
	c.declare(fs, "/healthz, /readyz, /metrics", "bound on each shutdown step", &raw.logLevel)
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
	if err := parseCommandLine(fs, args, usageOut, printMigrateUsage); err != nil {
		return c, err
	}
	set, err := flagsSet(fs)
	if err != nil {
		return c, err
	}
	if err := c.readEndpoints(raw, set, getenv); err != nil {
		return c, err
	}
	if err := c.checkCopy(set); err != nil {
		return c, err
	}
	if err := c.checkListen(); err != nil {
		return c, err
	}
	return c, c.checkLogs(raw.logLevel)
}

// readEndpoints reads the source's and the target's endpoints, TLS and
// logins.
func (c *migrateConfig) readEndpoints(raw *migrateRaw, set map[string]bool, getenv func(string) string) error {
	var err error
	if c.Endpoints, _, err = urlList("etcd-endpoints", envEndpoints, raw.endpoints, set, getenv); err != nil {
		return err
	}
	if len(c.Endpoints) == 0 {
		return badFlag("etcd-endpoints", "missing: name the etcd holding the v2 data, or set $%s (migrate runs no embedded etcd)", envEndpoints)
	}
	if c.ToEndpoints, _, err = urlList("to-endpoints", "", raw.toEndpoints, map[string]bool{"to-endpoints": true}, getenv); err != nil {
		return err
	}
	if set["to-endpoints"] && len(c.ToEndpoints) == 0 {
		return badFlag("to-endpoints", "empty; leave the flag out to write into the source etcd's v3 API")
	}
	if len(c.ToEndpoints) == 0 {
		c.ToEndpoints = c.Endpoints
	}
	if err := c.TLS.check(); err != nil {
		return err
	}
	if err := c.ToTLS.check(); err != nil {
		return err
	}
	c.Login.read(getenv)
	c.ToLogin.read(getenv)
	if err := c.Login.check(); err != nil {
		return err
	}
	return c.ToLogin.check()
}

// checkCopy checks the prefix and the copy's bounds.
func (c *migrateConfig) checkCopy(set map[string]bool) error {
	if err := checkPrefix(c.Prefix); err != nil {
		return err
	}
	c.Prefix = strings.TrimSuffix(c.Prefix, "/")
	if err := checkPositive(
		positive{"cluster-id-poll-interval", c.ClusterIDPollInterval > 0, c.ClusterIDPollInterval},
		positive{"request-timeout", c.RequestTimeout > 0, c.RequestTimeout},
		positive{"shutdown-timeout", c.ShutdownTimeout > 0, c.ShutdownTimeout},
		positive{"max-txn-ops", c.MaxTxnOps > 0, c.MaxTxnOps},
		positive{"max-txn-bytes", c.MaxTxnBytes > 0, c.MaxTxnBytes},
		positive{"parallel-txns", c.ParallelTxns > 0, c.ParallelTxns},
		positive{"max-verify-rounds", c.MaxVerifyRounds > 0, c.MaxVerifyRounds},
		positive{"reconcile-interval", c.ReconcileInterval > 0, c.ReconcileInterval},
	); err != nil {
		return err
	}
	if !c.Once && set["max-verify-rounds"] {
		return badFlag("max-verify-rounds", "only applies with --once")
	}
	if c.Once && set["reconcile-interval"] {
		return badFlag("reconcile-interval", "does not apply with --once, which compares both sides at its end")
	}
	return nil
}
