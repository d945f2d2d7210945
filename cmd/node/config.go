package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

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
	// Endpoints are external etcd client URLs; empty means the embedded etcd.
	Endpoints          []string
	API                supervisor.API // which etcd API the node reads, embedded etcd included
	CAFile             string
	CertFile, KeyFile  string
	Username, Password string

	// RelayEndpoints, when set, make the node a leaf: it syncs from these
	// relays instead of etcd, and runs no etcd.
	RelayEndpoints              []string
	RelayCAFile                 string
	RelayCertFile, RelayKeyFile string

	EmbeddedListen     string // host:port for the embedded etcd's clients
	EmbeddedPeerListen string // host:port for its peer listener
	DataDir            string

	Prefix                string
	WatchMode             supervisor.WatchMode
	OnClusterReset        supervisor.ResetPolicy
	ClusterIDPollInterval time.Duration
	ShutdownTimeout       time.Duration

	Output string // "jsonl" or "none"
	Model  string // "raw" or "calicov1"
	Listen string // host:port of the HTTP server
	// RelayListen is host:port of the relay server; "" (the default): no
	// relay. A bare :port is made loopback.
	RelayListen string
	// The relay listener's TLS: its certificate, and the CA and names a
	// client certificate must have (none: clients need none).
	RelayTLSCertFile, RelayTLSKeyFile string
	RelayClientCAFile                 string
	RelayAllowedNames                 []string
	// The relay's retained log: a client further behind gets a fresh
	// snapshot.
	RelayLogEntries, RelayLogBytes int
	RelayMaxClients                int    // streams at once; one more is refused with a retry hint
	LogFormat                      string // "text" or "json"
	LogLevel                       slog.Level
}

// embedded reports whether the node runs its own etcd.
func (c config) embedded() bool { return len(c.Endpoints) == 0 && !c.leaf() }

// leaf reports whether the node syncs from relays.
func (c config) leaf() bool { return len(c.RelayEndpoints) > 0 }

// refuseSet returns a *flagError, saying why, for the first of names that
// is set.
func refuseSet(set map[string]bool, why string, names ...string) error {
	for _, name := range names {
		if set[name] {
			return badFlag(name, "%s", why)
		}
	}
	return nil
}

// bothOrNeither returns a *flagError naming the missing one of two flags
// that only go together (a certificate and its key).
func bothOrNeither(aFlag, a, bFlag, b string) error {
	switch {
	case a == "" && b != "":
		return badFlag(aFlag, "missing: --%s needs it", bFlag)
	case a != "" && b == "":
		return badFlag(bFlag, "missing: --%s needs it", aFlag)
	}
	return nil
}

// urlList reads the comma-separated URLs of flag name, or, if the flag is
// not set, of environment variable env, and returns them with how to name
// their source in errors ("--etcd-endpoints (from $ENV)").
func urlList(name, env, flagValue string, set map[string]bool, getenv func(string) string) ([]string, string, error) {
	list, source := flagValue, name
	if !set[name] {
		list, source = getenv(env), name+" (from $"+env+")"
	}
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if err := supervisor.ValidateEndpoint(u); err != nil {
			return nil, source, badFlag(source, "%w", err)
		}
		urls = append(urls, u)
	}
	return urls, source, nil
}

// checkRelayTLS checks the relay listener's flags: the TLS ones come
// together, and all only with --relay-listen.
func checkRelayTLS(c config, set map[string]bool) error {
	if c.RelayLogEntries <= 0 {
		return badFlag("relay-log-entries", "%d must be positive", c.RelayLogEntries)
	}
	if c.RelayLogBytes <= 0 {
		return badFlag("relay-log-bytes", "%d must be positive", c.RelayLogBytes)
	}
	if c.RelayMaxClients <= 0 {
		return badFlag("relay-max-clients", "%d must be positive", c.RelayMaxClients)
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

// flagError is a bad command line; Flag names the culprit ("--prefix").
type flagError struct {
	Flag string
	Err  error
}

func (e *flagError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *flagError) Unwrap() error { return e.Err }

func badFlag(name, format string, args ...any) error {
	return &flagError{Flag: "--" + name, Err: fmt.Errorf(format, args...)}
}

// newFlagSet declares every flag of the node into c, with its default.
func newFlagSet(c *config) (*flag.FlagSet, *rawFlags) {
	raw := &rawFlags{}
	def := supervisor.DefaultConfig() // the library's defaults are the node's
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	// parseFlags reports errors itself: package flag would print the whole
	// usage after every mistake, burying the one line that matters.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&raw.endpoints, "etcd-endpoints", "",
		"comma-separated etcd client URLs, e.g. http://a:2379,http://b:2379 (env "+envEndpoints+"; the flag wins).\n"+
			"Empty: run an embedded single-member etcd instead")
	fs.TextVar(&c.API, "etcd-api", supervisor.APIv2,
		"etcd API to read: v2 (etcd 3.5 with --enable-v2 and older) or v3 (every etcd 3.x; 3.6 and later serve only v3)\n"+
			"(env "+envAPI+"; the flag wins). The embedded etcd serves both")
	fs.StringVar(&c.CAFile, "etcd-ca-file", "", "PEM CA bundle to verify the etcd servers (https endpoints)")
	fs.StringVar(&c.CertFile, "etcd-cert-file", "", "PEM client certificate for etcd (with --etcd-key-file)")
	fs.StringVar(&c.KeyFile, "etcd-key-file", "", "PEM client key for etcd (with --etcd-cert-file)")
	fs.StringVar(&c.Username, "etcd-username", "",
		"etcd user (v2 basic auth, or v3 auth); the password is read from env "+envPassword+" only")
	fs.StringVar(&raw.relayEndpoints, "relay-endpoints", "",
		"comma-separated relay URLs (other nodes' --relay-listen), e.g. http://relay-a:9096 (env "+envRelayEndpoints+"; the flag wins).\n"+
			"Makes the node a leaf: it syncs from the relays instead of etcd, and runs no etcd")
	fs.StringVar(&c.RelayCAFile, "relay-ca-file", "", "PEM CA bundle to verify the relays (https relay endpoints)")
	fs.StringVar(&c.RelayCertFile, "relay-cert-file", "", "PEM client certificate for the relays (with --relay-key-file)")
	fs.StringVar(&c.RelayKeyFile, "relay-key-file", "", "PEM client key for the relays (with --relay-cert-file)")
	fs.StringVar(&c.EmbeddedListen, "embedded-etcd-listen", "127.0.0.1:2379",
		"host:port the embedded etcd serves clients on (only without --etcd-endpoints)")
	fs.StringVar(&c.EmbeddedPeerListen, "embedded-etcd-peer-listen", "",
		"host:port of the embedded etcd's peer listener; empty: the client port + 1")
	fs.StringVar(&c.DataDir, "data-dir", ".data/etcd", "the embedded etcd's data directory")
	fs.StringVar(&c.Prefix, "prefix", def.Prefix, "etcd key prefix to sync; must start with /")
	fs.TextVar(&c.WatchMode, "watch", def.WatchMode,
		"how to watch etcd v2: long-poll (one request per event) or stream (one connection, keeps up with more writes)")
	fs.TextVar(&c.OnClusterReset, "on-cluster-reset", def.OnClusterReset,
		"when etcd is rebuilt or restored: resync (keep running) or stop (exit 1)")
	fs.DurationVar(&c.ClusterIDPollInterval, "cluster-id-poll-interval", def.ClusterIDPollInterval,
		"mean interval of the etcd cluster-ID poll (±10 % jitter)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second,
		"how long each shutdown step (syncer, HTTP server, embedded etcd) may take on SIGINT/SIGTERM")
	fs.StringVar(&c.Output, "output", "jsonl", "stdout format: jsonl (one JSON object per update or status) or none")
	fs.StringVar(&c.Model, "model", "raw",
		"how keys and values are read: raw (strings) or calicov1 (typed Calico v1 keys and values in the output and /state)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9095", "host:port of the HTTP server (/healthz, /readyz, /state, /metrics)")
	fs.StringVar(&raw.relayListen, "relay-listen", "",
		"host:port to serve the synced view to relay clients on (env "+envRelay+"; the flag wins).\n"+
			"Empty: no relay. A bare :port listens on 127.0.0.1; name 0.0.0.0 to listen on every interface")
	fs.IntVar(&c.RelayLogEntries, "relay-log-entries", 10000,
		"how many updates (batches of at most 512) the relay retains for clients to resume from or catch up with")
	fs.IntVar(&c.RelayLogBytes, "relay-log-bytes", 64<<20, "the most bytes the relay's retained log may hold")
	fs.IntVar(&c.RelayMaxClients, "relay-max-clients", 10000,
		"how many relay clients may stream at once; one more is refused with 503 and a retry hint")
	fs.StringVar(&c.RelayTLSCertFile, "relay-tls-cert-file", "", "PEM certificate of the relay listener: it serves https (with --relay-tls-key-file)")
	fs.StringVar(&c.RelayTLSKeyFile, "relay-tls-key-file", "", "PEM key of the relay listener's certificate")
	fs.StringVar(&c.RelayClientCAFile, "relay-client-ca-file", "",
		"PEM CA bundle: relay clients must present a certificate it signed (needs --relay-tls-cert-file)")
	fs.StringVar(&raw.relayAllowedNames, "relay-allowed-names", "",
		"comma-separated names a relay client's certificate must carry, as its common name or a DNS or URI SAN\n"+
			"(needs --relay-client-ca-file); empty: any certificate the CA signed")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&raw.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&raw.version, "version", false, "print the module version and VCS revision, then exit")
	return fs, raw
}

// printUsage writes the --help text: like flag.PrintDefaults, but with the
// double dashes the docs use.
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

// printFlags lists fs's flags, with their usage and defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, typ, strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch {
		case f.DefValue == "":
		case typ == "string":
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// rawFlags are the flags that need parsing beyond what package flag does.
type rawFlags struct {
	endpoints, relayEndpoints, logLevel, relayListen string
	relayAllowedNames                                string
	version                                          bool
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(usageOut, fs)
			return config{}, err
		}
		// Package flag's messages name the flag with a single dash:
		// "invalid value "x" for flag -cluster-id-poll-interval: ...",
		// "flag provided but not defined: -bogus".
		name := "command line"
		if m := flagInError.FindStringSubmatch(err.Error()); m != nil {
			name = "--" + m[1]
		}
		return config{}, &flagError{Flag: name, Err: err}
	}
	if raw.version {
		fmt.Fprintln(usageOut, version())
		return config{}, errVersion
	}
	if fs.NArg() > 0 {
		return config{}, &flagError{Flag: "command line", Err: fmt.Errorf("unexpected argument %q (every setting is a --flag)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var err error
	var endpointsFlag, relaysFlag string
	if c.Endpoints, endpointsFlag, err = urlList("etcd-endpoints", envEndpoints, raw.endpoints, set, getenv); err != nil {
		return config{}, err
	}
	if set["etcd-endpoints"] && len(c.Endpoints) == 0 {
		return config{}, badFlag("etcd-endpoints", "empty; leave the flag out to run the embedded etcd")
	}
	c.Password = getenv(envPassword)
	if v := getenv(envAPI); v != "" && !set["etcd-api"] {
		if err := c.API.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
			return config{}, badFlag("etcd-api (from $"+envAPI+")", "%w", err)
		}
	}

	if c.RelayEndpoints, relaysFlag, err = urlList("relay-endpoints", envRelayEndpoints, raw.relayEndpoints, set, getenv); err != nil {
		return config{}, err
	}
	if set["relay-endpoints"] && !c.leaf() {
		return config{}, badFlag("relay-endpoints", "empty; leave the flag out to sync from etcd")
	}
	if c.leaf() && len(c.Endpoints) > 0 {
		return config{}, badFlag(relaysFlag, "exclusive with --%s: a node syncs from relays or from etcd, not both", endpointsFlag)
	}
	if !c.leaf() {
		if err := refuseSet(set, "only applies to a leaf (--relay-endpoints)",
			"relay-ca-file", "relay-cert-file", "relay-key-file"); err != nil {
			return config{}, err
		}
	}

	if c.leaf() {
		if err := refuseSet(set, "does not apply to a leaf (--relay-endpoints), which reads no etcd",
			"etcd-ca-file", "etcd-cert-file", "etcd-key-file", "etcd-username",
			"embedded-etcd-listen", "embedded-etcd-peer-listen", "data-dir", "watch", "cluster-id-poll-interval",
			"etcd-api"); err != nil {
			return config{}, err
		}
		if err := bothOrNeither("relay-cert-file", c.RelayCertFile, "relay-key-file", c.RelayKeyFile); err != nil {
			return config{}, err
		}
	} else if c.embedded() {
		if err := refuseSet(set, "only applies to an external etcd (--etcd-endpoints)",
			"etcd-ca-file", "etcd-cert-file", "etcd-key-file", "etcd-username"); err != nil {
			return config{}, err
		}
		// Port 0 is refused: etcd would advertise it as is.
		if err := checkHostPort("embedded-etcd-listen", c.EmbeddedListen, false); err != nil {
			return config{}, err
		}
		if c.EmbeddedPeerListen == "" {
			host, port, _ := net.SplitHostPort(c.EmbeddedListen)
			p, _ := strconv.Atoi(port)
			if p == 65535 {
				return config{}, badFlag("embedded-etcd-peer-listen",
					"needed when --embedded-etcd-listen's port is %s (there is no port + 1)", port)
			}
			c.EmbeddedPeerListen = net.JoinHostPort(host, strconv.Itoa(p+1))
		} else if err := checkHostPort("embedded-etcd-peer-listen", c.EmbeddedPeerListen, false); err != nil {
			return config{}, err
		}
		if c.EmbeddedPeerListen == c.EmbeddedListen {
			return config{}, badFlag("embedded-etcd-peer-listen", "%s is also --embedded-etcd-listen", c.EmbeddedPeerListen)
		}
		if c.DataDir == "" {
			return config{}, badFlag("data-dir", "empty")
		}
	} else {
		if err := refuseSet(set, "only applies to the embedded etcd, not with --etcd-endpoints",
			"embedded-etcd-listen", "embedded-etcd-peer-listen", "data-dir"); err != nil {
			return config{}, err
		}
		if err := bothOrNeither("etcd-cert-file", c.CertFile, "etcd-key-file", c.KeyFile); err != nil {
			return config{}, err
		}
		if c.Password != "" && c.Username == "" {
			return config{}, badFlag("etcd-username", "missing: %s is set", envPassword)
		}
	}

	if !strings.HasPrefix(c.Prefix, "/") || strings.Trim(c.Prefix, "/") == "" {
		return config{}, badFlag("prefix", "%q must be a directory path starting with /, e.g. /calico/v1", c.Prefix)
	}
	if c.API == supervisor.APIv3 && set["watch"] {
		return config{}, badFlag("watch", "does not apply with --etcd-api v3: a v3 watch is always one stream")
	}
	if c.ClusterIDPollInterval <= 0 {
		return config{}, badFlag("cluster-id-poll-interval", "%v must be positive", c.ClusterIDPollInterval)
	}
	if c.ShutdownTimeout <= 0 {
		return config{}, badFlag("shutdown-timeout", "%v must be positive", c.ShutdownTimeout)
	}
	if c.Model != "raw" && c.Model != "calicov1" {
		return config{}, badFlag("model", "%q is neither raw nor calicov1", c.Model)
	}
	if c.Output != "jsonl" && c.Output != "none" {
		return config{}, badFlag("output", "%q is neither jsonl nor none", c.Output)
	}
	if err := checkHostPort("listen", c.Listen, true); err != nil {
		return config{}, err
	}
	relayListen, relayFlag := raw.relayListen, "relay-listen"
	if !set["relay-listen"] {
		relayListen, relayFlag = getenv(envRelay), "relay-listen (from $"+envRelay+")"
	}
	if relayListen = strings.TrimSpace(relayListen); relayListen != "" {
		if err := checkHostPort(relayFlag, relayListen, true); err != nil {
			return config{}, err
		}
		if host, port, _ := net.SplitHostPort(relayListen); host == "" {
			relayListen = net.JoinHostPort("127.0.0.1", port) // loopback unless told otherwise
		}
		if relayListen == c.Listen {
			return config{}, badFlag(relayFlag, "%s is also --listen", relayListen)
		}
		if c.Model != "raw" {
			// The decoder leaves the keys it cannot parse out of the
			// stream, so the relay would serve fewer keys than etcd has.
			return config{}, badFlag(relayFlag, "needs --model raw: with --model %s the relay would leave out the keys the model cannot parse", c.Model)
		}
		c.RelayListen = relayListen
	} else if set["relay-listen"] {
		return config{}, badFlag("relay-listen", "empty; leave the flag out for no relay")
	}
	for _, name := range strings.Split(raw.relayAllowedNames, ",") {
		if name = strings.TrimSpace(name); name != "" {
			c.RelayAllowedNames = append(c.RelayAllowedNames, name)
		}
	}
	if err := checkRelayTLS(c, set); err != nil {
		return config{}, err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return config{}, badFlag("log-format", "%q is neither text nor json", c.LogFormat)
	}
	switch strings.ToLower(raw.logLevel) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return config{}, badFlag("log-level", "%q is not one of debug, info, warn, error", raw.logLevel)
	}
	return c, nil
}

var flagInError = regexp.MustCompile(` -{1,2}([A-Za-z0-9][A-Za-z0-9_.-]*)(:|$)`)

// checkHostPort checks that the flag's value is a host:port with a numeric
// port; 0 (any free port) only if allowZero.
func checkHostPort(name, v string, allowZero bool) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return badFlag(name, "%q is not host:port: %w", v, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return badFlag(name, "%q: port %q is not a number from 0 to 65535", v, port)
	}
	if p == 0 && !allowZero {
		return badFlag(name, "%q: port 0 is not allowed here; name a port", v)
	}
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
