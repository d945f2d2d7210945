package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Environment variables the node reads. The password has no flag: a flag
// would show in ps and in shell history.
const (
	envEndpoints = "ETCDSYNC_ETCD_ENDPOINTS"
	// envAPI chooses etcd's v2 or v3 API.
	envAPI      = "ETCDSYNC_ETCD_API"
	envPassword = "ETCDSYNC_ETCD_PASSWORD"
	envRelay    = "ETCDSYNC_RELAY_LISTEN"
	// envRelayEndpoints makes the node a leaf, syncing from relays.
	envRelayEndpoints = "ETCDSYNC_RELAY_ENDPOINTS"
)

// config is the node's validated command line.
type config struct {
	// Role is what the node syncs from: decided once, from the endpoints.
	Role role

	// Endpoints are external etcd client URLs; empty unless roleExternal.
	Endpoints []string
	API       supervisor.API // which etcd API the node reads, embedded etcd included
	EtcdTLS   tlsFlags       // --etcd-ca-file, --etcd-cert-file, --etcd-key-file
	EtcdLogin login          // --etcd-username, $ETCDSYNC_ETCD_PASSWORD

	// RelayEndpoints are the relays a leaf syncs from, with its TLS.
	RelayEndpoints []string
	RelayTLS       tlsFlags // --relay-ca-file, --relay-cert-file, --relay-key-file

	EmbeddedListen     string // host:port for the embedded etcd's clients
	EmbeddedPeerListen string // host:port for its peer listener
	DataDir            string

	Prefix                string
	WatchMode             supervisor.WatchMode
	OnClusterReset        supervisor.ResetPolicy
	ClusterIDPollInterval time.Duration

	Output string // "jsonl" or "none"
	Model  string // "raw" or "calicov1"
	// RelayListen is host:port of the relay server; "" (the default): no
	// relay. A bare :port is made loopback. Any role can add a relay.
	RelayListen string
	// The relay listener's TLS: its certificate, and the CA and names a
	// client certificate must have (none: clients need none).
	RelayTLSCertFile, RelayTLSKeyFile string
	RelayClientCAFile                 string
	RelayAllowedNames                 []string
	// The relay's retained log: a client further behind gets a fresh
	// snapshot.
	RelayLogEntries, RelayLogBytes int
	RelayMaxClients                int // streams at once; one more is refused with a retry hint

	processFlags // --listen, --shutdown-timeout, --log-format, --log-level
}

// rawFlags are the flags that need parsing beyond what package flag does.
type rawFlags struct {
	endpoints, relayEndpoints, logLevel, relayListen string
	relayAllowedNames                                string
	version                                          bool
}

// newFlagSet declares every flag of the node into c, with its default: the
// library's (supervisor.DefaultConfig, relay.DefaultConfig) where there is
// one.
func newFlagSet(c *config) (*flag.FlagSet, *rawFlags) {
	raw := &rawFlags{}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	declareSourceFlags(fs, c, raw)
	declareSyncFlags(fs, c)
	declareRelayFlags(fs, c, raw)
	c.declare(fs, "/healthz, /readyz, /state, /metrics",
		"how long each shutdown step (syncer, HTTP server, embedded etcd) may take on SIGINT/SIGTERM", &raw.logLevel)
	fs.BoolVar(&raw.version, "version", false, "print the module version and VCS revision, then exit")
	return fs, raw
}

// declareSourceFlags declares the flags that say what the node syncs from:
// an external etcd, the embedded one, or relays.
func declareSourceFlags(fs *flag.FlagSet, c *config, raw *rawFlags) {
	fs.StringVar(&raw.endpoints, "etcd-endpoints", "",
		"comma-separated etcd client URLs, e.g. http://a:2379,http://b:2379 (env "+envEndpoints+"; the flag wins).\n"+
			"Empty: run an embedded single-member etcd instead")
	fs.TextVar(&c.API, "etcd-api", supervisor.APIv2,
		"etcd API to read: v2 (etcd 3.5 with --enable-v2 and older) or v3 (every etcd 3.x; 3.6 and later serve only v3)\n"+
			"(env "+envAPI+"; the flag wins). The embedded etcd serves both")
	c.EtcdTLS.declare(fs, "etcd", "the etcd servers (https endpoints)", "etcd")
	c.EtcdLogin.declare(fs, "etcd-username", envPassword, "etcd user (v2 basic auth, or v3 auth)")
	fs.StringVar(&raw.relayEndpoints, "relay-endpoints", "",
		"comma-separated relay URLs (other nodes' --relay-listen), e.g. http://relay-a:9096 (env "+envRelayEndpoints+"; the flag wins).\n"+
			"Makes the node a leaf: it syncs from the relays instead of etcd, and runs no etcd")
	c.RelayTLS.declare(fs, "relay", "the relays (https relay endpoints)", "the relays")
	fs.StringVar(&c.EmbeddedListen, "embedded-etcd-listen", "127.0.0.1:2379",
		"host:port the embedded etcd serves clients on (only without --etcd-endpoints)")
	fs.StringVar(&c.EmbeddedPeerListen, "embedded-etcd-peer-listen", "",
		"host:port of the embedded etcd's peer listener; empty: the client port + 1")
	fs.StringVar(&c.DataDir, "data-dir", ".data/etcd", "the embedded etcd's data directory")
}

// declareSyncFlags declares the syncer's flags and the node's output.
func declareSyncFlags(fs *flag.FlagSet, c *config) {
	def := supervisor.DefaultConfig() // the library's defaults are the node's
	fs.StringVar(&c.Prefix, "prefix", def.Prefix, "etcd key prefix to sync; must start with /")
	fs.TextVar(&c.WatchMode, "watch", def.WatchMode,
		"how to watch etcd v2: long-poll (one request per event) or stream (one connection, keeps up with more writes)")
	fs.TextVar(&c.OnClusterReset, "on-cluster-reset", def.OnClusterReset,
		"when etcd is rebuilt or restored: resync (keep running) or stop (exit 1)")
	fs.DurationVar(&c.ClusterIDPollInterval, "cluster-id-poll-interval", def.ClusterIDPollInterval,
		"mean interval of the etcd cluster-ID poll (±10 % jitter)")
	fs.StringVar(&c.Output, "output", "jsonl", "stdout format: jsonl (one JSON object per update or status) or none")
	fs.StringVar(&c.Model, "model", "raw",
		"how keys and values are read: raw (strings) or calicov1 (typed Calico v1 keys and values in the output and /state)")
}

// declareRelayFlags declares the relay server's flags.
func declareRelayFlags(fs *flag.FlagSet, c *config, raw *rawFlags) {
	def := relay.DefaultConfig()
	fs.StringVar(&raw.relayListen, "relay-listen", "",
		"host:port to serve the synced view to relay clients on (env "+envRelay+"; the flag wins).\n"+
			"Empty: no relay. A bare :port listens on 127.0.0.1; name 0.0.0.0 to listen on every interface")
	fs.IntVar(&c.RelayLogEntries, "relay-log-entries", def.LogEntries,
		"how many updates (batches of at most 512) the relay retains for clients to resume from or catch up with")
	fs.IntVar(&c.RelayLogBytes, "relay-log-bytes", def.LogBytes, "the most bytes the relay's retained log may hold")
	fs.IntVar(&c.RelayMaxClients, "relay-max-clients", def.MaxClients,
		"how many relay clients may stream at once; one more is refused with 503 and a retry hint")
	fs.StringVar(&c.RelayTLSCertFile, "relay-tls-cert-file", "", "PEM certificate of the relay listener: it serves https (with --relay-tls-key-file)")
	fs.StringVar(&c.RelayTLSKeyFile, "relay-tls-key-file", "", "PEM key of the relay listener's certificate")
	fs.StringVar(&c.RelayClientCAFile, "relay-client-ca-file", "",
		"PEM CA bundle: relay clients must present a certificate it signed (needs --relay-tls-cert-file)")
	fs.StringVar(&raw.relayAllowedNames, "relay-allowed-names", "",
		"comma-separated names a relay client's certificate must carry, as its common name or a DNS or URI SAN\n"+
			"(needs --relay-client-ca-file); empty: any certificate the CA signed")
}

// printUsage writes the --help text.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "Usage: node [flags]\n\n"+
		"Syncs an etcd v2 key prefix and streams its updates as JSON lines on stdout;\n"+
		"serves /healthz, /readyz, /state and /metrics on --listen. Without\n"+
		"--etcd-endpoints it runs an embedded etcd; with --relay-endpoints it is a\n"+
		"leaf, syncing from relays instead of etcd. Exit codes: 0 after SIGINT or\n"+
		"SIGTERM, 1 when the syncer stops itself or a component fails, 2 for a bad\n"+
		"flag or setting. 'node migrate --help': copying a v2 prefix into v3.\n\nFlags:\n")
	printFlags(w, fs)
}

// errVersion is what parseFlags returns for --version, the version having
// been written to usageOut.
var errVersion = errors.New("version printed")

// parseFlags parses and validates the command line args (without the
// program name), reading the environment through getenv. A bad flag is a
// *flagError naming it; -h/--help is flag.ErrHelp, the usage having been
// written to usageOut.
func parseFlags(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	var c config
	fs, raw := newFlagSet(&c)
	if err := parseCommandLine(fs, args, usageOut, printUsage); err != nil {
		return config{}, err
	}
	if raw.version {
		fmt.Fprintln(usageOut, version())
		return config{}, errVersion
	}
	set, err := flagsSet(fs)
	if err != nil {
		return config{}, err
	}
	if err := c.readSource(raw, set, getenv); err != nil {
		return config{}, err
	}
	if err := c.Role.check(&c, set); err != nil {
		return config{}, err
	}
	if err := c.checkSync(set); err != nil {
		return config{}, err
	}
	if err := c.readRelay(raw, set, getenv); err != nil {
		return config{}, err
	}
	if err := c.checkLogs(raw.logLevel); err != nil {
		return config{}, err
	}
	return c, nil
}

// readSource reads the etcd and relay endpoints, from the flags or the
// environment, and the etcd password and API from the environment; it
// decides the role.
func (c *config) readSource(raw *rawFlags, set map[string]bool, getenv func(string) string) error {
	var err error
	var endpointsFlag, relaysFlag string
	if c.Endpoints, endpointsFlag, err = urlList("etcd-endpoints", envEndpoints, raw.endpoints, set, getenv); err != nil {
		return err
	}
	if set["etcd-endpoints"] && len(c.Endpoints) == 0 {
		return badFlag("etcd-endpoints", "empty; leave the flag out to run the embedded etcd")
	}
	c.EtcdLogin.read(getenv)
	if v := getenv(envAPI); v != "" && !set["etcd-api"] {
		if err := c.API.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
			return badFlag("etcd-api (from $"+envAPI+")", "%w", err)
		}
	}
	if c.RelayEndpoints, relaysFlag, err = urlList("relay-endpoints", envRelayEndpoints, raw.relayEndpoints, set, getenv); err != nil {
		return err
	}
	switch {
	case set["relay-endpoints"] && len(c.RelayEndpoints) == 0:
		return badFlag("relay-endpoints", "empty; leave the flag out to sync from etcd")
	case len(c.RelayEndpoints) > 0 && len(c.Endpoints) > 0:
		return badFlag(relaysFlag, "exclusive with --%s: a node syncs from relays or from etcd, not both", endpointsFlag)
	case len(c.RelayEndpoints) > 0:
		c.Role = roleLeaf
	case len(c.Endpoints) > 0:
		c.Role = roleExternal
	default:
		c.Role = roleEmbedded
	}
	return nil
}

// checkSync checks the syncer's flags and the output's, whatever the role.
func (c *config) checkSync(set map[string]bool) error {
	if err := checkPrefix(c.Prefix); err != nil {
		return err
	}
	if c.API == supervisor.APIv3 && set["watch"] {
		return badFlag("watch", "does not apply with --etcd-api v3: a v3 watch is always one stream")
	}
	if err := checkPositive(
		positive{"cluster-id-poll-interval", c.ClusterIDPollInterval > 0, c.ClusterIDPollInterval},
		positive{"shutdown-timeout", c.ShutdownTimeout > 0, c.ShutdownTimeout},
	); err != nil {
		return err
	}
	if c.Model != "raw" && c.Model != "calicov1" {
		return badFlag("model", "%q is neither raw nor calicov1", c.Model)
	}
	if c.Output != "jsonl" && c.Output != "none" {
		return badFlag("output", "%q is neither jsonl nor none", c.Output)
	}
	return c.checkListen()
}

// readRelay reads --relay-listen (or its environment variable) and checks
// the relay server's flags: they come with --relay-listen only, and the TLS
// ones together.
func (c *config) readRelay(raw *rawFlags, set map[string]bool, getenv func(string) string) error {
	if err := c.readRelayListen(raw.relayListen, set, getenv); err != nil {
		return err
	}
	for _, name := range strings.Split(raw.relayAllowedNames, ",") {
		if name = strings.TrimSpace(name); name != "" {
			c.RelayAllowedNames = append(c.RelayAllowedNames, name)
		}
	}
	if err := checkPositive(
		positive{"relay-log-entries", c.RelayLogEntries > 0, c.RelayLogEntries},
		positive{"relay-log-bytes", c.RelayLogBytes > 0, c.RelayLogBytes},
		positive{"relay-max-clients", c.RelayMaxClients > 0, c.RelayMaxClients},
	); err != nil {
		return err
	}
	if c.RelayListen == "" {
		return refuseSet(set, "only applies to a relay (--relay-listen)", "relay-tls-cert-file", "relay-tls-key-file",
			"relay-client-ca-file", "relay-allowed-names", "relay-log-entries", "relay-log-bytes", "relay-max-clients")
	}
	if err := bothOrNeither("relay-tls-cert-file", c.RelayTLSCertFile, "relay-tls-key-file", c.RelayTLSKeyFile); err != nil {
		return err
	}
	switch {
	case c.RelayClientCAFile != "" && c.RelayTLSCertFile == "":
		return badFlag("relay-client-ca-file", "needs --relay-tls-cert-file: client certificates are checked over TLS")
	case len(c.RelayAllowedNames) > 0 && c.RelayClientCAFile == "":
		return badFlag("relay-allowed-names", "needs --relay-client-ca-file: names are read from verified client certificates")
	}
	return nil
}

// readRelayListen reads --relay-listen, or $ETCDSYNC_RELAY_LISTEN: a bare
// :port is made loopback.
func (c *config) readRelayListen(flagValue string, set map[string]bool, getenv func(string) string) error {
	relayListen, relayFlag := flagValue, "relay-listen"
	if !set["relay-listen"] {
		relayListen, relayFlag = getenv(envRelay), "relay-listen (from $"+envRelay+")"
	}
	if relayListen = strings.TrimSpace(relayListen); relayListen == "" {
		if set["relay-listen"] {
			return badFlag("relay-listen", "empty; leave the flag out for no relay")
		}
		return nil
	}
	if err := checkHostPort(relayFlag, relayListen, true); err != nil {
		return err
	}
	if host, port, _ := net.SplitHostPort(relayListen); host == "" {
		relayListen = net.JoinHostPort("127.0.0.1", port) // loopback unless told otherwise
	}
	if relayListen == c.Listen {
		return badFlag(relayFlag, "%s is also --listen", relayListen)
	}
	if c.Model != "raw" {
		// The decoder leaves the keys it cannot parse out of the
		// stream, so the relay would serve fewer keys than etcd has.
		return badFlag(relayFlag, "needs --model raw: with --model %s the relay would leave out the keys the model cannot parse", c.Model)
	}
	c.RelayListen = relayListen
	return nil
}

// configFlags names the flag behind each supervisor.Config field the node
// sets, to report a *supervisor.ConfigError the way the user can fix it.
var configFlags = map[string]string{
	"Endpoints":             "--etcd-endpoints",
	"API":                   "--etcd-api",
	"Prefix":                "--prefix",
	"WatchMode":             "--watch",
	"OnClusterReset":        "--on-cluster-reset",
	"ClusterIDPollInterval": "--cluster-id-poll-interval",
}

// flagForField returns the flag that sets a supervisor.Config field
// ("Endpoints[1]" is --etcd-endpoints), or "" if none does.
func flagForField(field string) string {
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	return configFlags[field]
}
