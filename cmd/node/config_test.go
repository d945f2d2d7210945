package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/supervisor"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags(nil) = %v", err)
	}
	want := config{
		Role:                  roleEmbedded,
		EtcdTLS:               tlsFlags{name: "etcd"},
		EtcdLogin:             login{flag: "etcd-username", env: envPassword},
		RelayTLS:              tlsFlags{name: "relay"},
		EmbeddedListen:        "127.0.0.1:2379",
		EmbeddedPeerListen:    "127.0.0.1:2380",
		DataDir:               ".data/etcd",
		Prefix:                "/calico/v1",
		WatchMode:             supervisor.WatchLongPoll,
		OnClusterReset:        supervisor.ResyncOnReset,
		ClusterIDPollInterval: 10 * time.Second,
		Output:                "jsonl",
		Model:                 "raw",
		RelayLogEntries:       10000,    // relay.Config's default
		RelayLogBytes:         64 << 20, // likewise
		RelayMaxClients:       10000,
		processFlags: processFlags{
			Listen:          "127.0.0.1:9095",
			ShutdownTimeout: 5 * time.Second,
			LogFormat:       "text",
			LogLevel:        slog.LevelInfo,
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestParseFlagsExternal(t *testing.T) {
	c, err := parseFlags([]string{
		"--etcd-endpoints", "http://a:2379, https://b:2379",
		"--etcd-cert-file", "c.pem", "--etcd-key-file", "k.pem", "--etcd-ca-file", "ca.pem",
		"--etcd-username", "calico",
		"--prefix", "/other/",
		"--on-cluster-reset", "stop",
		"--watch", "stream",
		"--cluster-id-poll-interval", "250ms",
		"--output", "none",
		"--listen", ":0",
		"--log-format", "json",
		"--log-level", "DEBUG",
	}, env(map[string]string{envPassword: "s3cret", envEndpoints: "http://ignored:1"}), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags = %v", err)
	}
	if got := strings.Join(c.Endpoints, ","); got != "http://a:2379,https://b:2379" {
		t.Errorf("endpoints %q: the flag must win over the environment", got)
	}
	if c.Role != roleExternal || c.EtcdLogin.Password != "s3cret" || c.EtcdLogin.Username != "calico" || c.OnClusterReset != supervisor.StopOnReset || c.WatchMode != supervisor.WatchStream ||
		c.ClusterIDPollInterval != 250*time.Millisecond || c.Output != "none" || c.LogFormat != "json" ||
		c.LogLevel != slog.LevelDebug || c.Prefix != "/other/" {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseFlagsEndpointsFromEnv(t *testing.T) {
	c, err := parseFlags(nil, env(map[string]string{envEndpoints: "http://127.0.0.1:4001"}), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags = %v", err)
	}
	if len(c.Endpoints) != 1 || c.Endpoints[0] != "http://127.0.0.1:4001" || c.Role != roleExternal {
		t.Errorf("endpoints %v, want the environment's", c.Endpoints)
	}
}

func TestParseFlagsRelayListen(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, ""}, // off by default
		{[]string{"--relay-listen", ":7000"}, nil, "127.0.0.1:7000"}, // loopback unless told otherwise
		{[]string{"--relay-listen", "0.0.0.0:7000"}, nil, "0.0.0.0:7000"},
		{nil, map[string]string{envRelay: "127.0.0.1:0"}, "127.0.0.1:0"},
		{[]string{"--relay-listen", "127.0.0.1:7001"}, map[string]string{envRelay: "127.0.0.1:7002"}, "127.0.0.1:7001"}, // the flag wins
	} {
		c, err := parseFlags(tc.args, env(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Errorf("parseFlags(%q, %v) = %v", tc.args, tc.env, err)
			continue
		}
		if c.RelayListen != tc.want {
			t.Errorf("parseFlags(%q, %v): RelayListen %q, want %q", tc.args, tc.env, c.RelayListen, tc.want)
		}
	}
}

func TestParseFlagsLeaf(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--relay-endpoints", "http://a:9096, https://b:9096"}, nil, []string{"http://a:9096", "https://b:9096"}},
		{nil, map[string]string{envRelayEndpoints: "http://a:9096"}, []string{"http://a:9096"}},
		{[]string{"--relay-endpoints", "http://a:9096", "--relay-listen", ":9097"}, nil, []string{"http://a:9096"}}, // a tier
	} {
		c, err := parseFlags(tc.args, env(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Errorf("parseFlags(%q, %v) = %v", tc.args, tc.env, err)
			continue
		}
		if !slices.Equal(c.RelayEndpoints, tc.want) || c.Role != roleLeaf {
			t.Errorf("parseFlags(%q, %v): relays %q (role %v), want %q and a leaf", tc.args, tc.env,
				c.RelayEndpoints, c.Role, tc.want)
		}
	}
}

// A leaf syncs from relays or from etcd: both is exit 2, naming both.
func TestParseFlagsRelayEndpointsExcludeEtcd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--relay-endpoints", "http://r:1", "--etcd-endpoints", "http://e:2379"}, nil},
		{[]string{"--relay-endpoints", "http://r:1"}, map[string]string{envEndpoints: "http://e:2379"}},
		{nil, map[string]string{envRelayEndpoints: "http://r:1", envEndpoints: "http://e:2379"}},
	} {
		_, err := parseFlags(tc.args, env(tc.env), &bytes.Buffer{})
		var fe *flagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "relay-endpoints") || !strings.Contains(err.Error(), "etcd-endpoints") {
			t.Errorf("parseFlags(%q, %v) = %v, want a *flagError naming both --relay-endpoints and --etcd-endpoints", tc.args, tc.env, err)
		} else if code := codeFor(err); code != exitUsage {
			t.Errorf("parseFlags(%q, %v): exit code %d, want %d", tc.args, tc.env, code, exitUsage)
		}
	}
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{[]string{"--on-cluster-reset", "maybe"}, nil, "--on-cluster-reset"},
		{[]string{"--output", "xml"}, nil, "--output"},
		{[]string{"--model", "calicov3"}, nil, "--model"},
		{[]string{"--watch", "poll"}, nil, "--watch"},
		{[]string{"--prefix", "nope"}, nil, "--prefix"},
		{[]string{"--prefix", "/"}, nil, "--prefix"},
		{[]string{"--prefix", ""}, nil, "--prefix"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--cluster-id-poll-interval", "3x"}, nil, "--cluster-id-poll-interval"},
		{[]string{"--cluster-id-poll-interval", "0s"}, nil, "--cluster-id-poll-interval"},
		{[]string{"--cluster-id-poll-interval", "-1s"}, nil, "--cluster-id-poll-interval"},
		{[]string{"--shutdown-timeout", "0s"}, nil, "--shutdown-timeout"},
		{[]string{"--listen", "nowhere"}, nil, "--listen"},
		{[]string{"--listen", "127.0.0.1:http"}, nil, "--listen"},
		{[]string{"--listen"}, nil, "--listen"},
		{[]string{"--bogus"}, nil, "--bogus"},
		{[]string{"--embedded-etcd-listen", "127.0.0.1"}, nil, "--embedded-etcd-listen"},
		{[]string{"--embedded-etcd-listen", "127.0.0.1:0"}, nil, "--embedded-etcd-listen"},
		{[]string{"--embedded-etcd-listen", "127.0.0.1:65535"}, nil, "--embedded-etcd-peer-listen"},
		{[]string{"--embedded-etcd-peer-listen", "127.0.0.1:99999"}, nil, "--embedded-etcd-peer-listen"},
		{[]string{"--embedded-etcd-peer-listen", "127.0.0.1:2379"}, nil, "--embedded-etcd-peer-listen"},
		{[]string{"--data-dir", ""}, nil, "--data-dir"},
		{[]string{"--etcd-endpoints", "127.0.0.1:2379"}, nil, "--etcd-endpoints"},
		{[]string{"--etcd-endpoints", "ftp://x:1"}, nil, "--etcd-endpoints"},
		{[]string{"--etcd-endpoints", ","}, nil, "--etcd-endpoints"},
		{nil, map[string]string{envEndpoints: "x"}, "ETCDSYNC_ETCD_ENDPOINTS"},
		{[]string{"--etcd-ca-file", "ca.pem"}, nil, "--etcd-ca-file"},
		{[]string{"--etcd-username", "u"}, nil, "--etcd-username"},
		{[]string{"--etcd-endpoints", "http://a:1", "--etcd-cert-file", "c.pem"}, nil, "--etcd-key-file"},
		{[]string{"--etcd-endpoints", "http://a:1", "--etcd-key-file", "k.pem"}, nil, "--etcd-cert-file"},
		{[]string{"--etcd-endpoints", "http://a:1"}, map[string]string{envPassword: "p"}, "--etcd-username"},
		{[]string{"--etcd-endpoints", "http://a:1", "--data-dir", "d"}, nil, "--data-dir"},
		{[]string{"--etcd-endpoints", "http://a:1", "--embedded-etcd-listen", "127.0.0.1:1"}, nil, "--embedded-etcd-listen"},
		{[]string{"--relay-listen", "nowhere"}, nil, "--relay-listen"},
		{[]string{"--relay-listen", "127.0.0.1:99999"}, nil, "--relay-listen"},
		{[]string{"--relay-listen", ""}, nil, "--relay-listen"},
		{[]string{"--relay-listen", "127.0.0.1:9095"}, nil, "--relay-listen"}, // --listen's
		{[]string{"--relay-listen", ":7000", "--model", "calicov1"}, nil, "--relay-listen"},
		{nil, map[string]string{envRelay: "bad"}, "--relay-listen (from $" + envRelay + ")"},
		{[]string{"--relay-endpoints", "relay:9096"}, nil, "--relay-endpoints"},
		{[]string{"--relay-endpoints", ","}, nil, "--relay-endpoints"},
		{nil, map[string]string{envRelayEndpoints: "x"}, "--relay-endpoints (from $" + envRelayEndpoints + ")"},
		{[]string{"--relay-endpoints", "http://r:1", "--watch", "stream"}, nil, "--watch"},
		{[]string{"--relay-endpoints", "http://r:1", "--data-dir", "d"}, nil, "--data-dir"},
		{[]string{"--relay-endpoints", "http://r:1", "--etcd-ca-file", "ca.pem"}, nil, "--etcd-ca-file"},
		{[]string{"--relay-endpoints", "http://r:1", "--relay-cert-file", "c.pem"}, nil, "--relay-key-file"},
		{[]string{"--relay-ca-file", "ca.pem"}, nil, "--relay-ca-file"},
		{[]string{"--relay-tls-cert-file", "c.pem"}, nil, "--relay-tls-cert-file"}, // no --relay-listen
		{[]string{"--relay-log-entries", "5"}, nil, "--relay-log-entries"},         // no --relay-listen
		{[]string{"--relay-listen", ":7000", "--relay-log-entries", "0"}, nil, "--relay-log-entries"},
		{[]string{"--relay-listen", ":7000", "--relay-log-bytes", "-1"}, nil, "--relay-log-bytes"},
		{[]string{"--relay-listen", ":7000", "--relay-max-clients", "0"}, nil, "--relay-max-clients"},
		{[]string{"--relay-max-clients", "5"}, nil, "--relay-max-clients"},
		{[]string{"--relay-listen", ":7000", "--relay-tls-cert-file", "c.pem"}, nil, "--relay-tls-key-file"},
		{[]string{"--relay-listen", ":7000", "--relay-tls-key-file", "k.pem"}, nil, "--relay-tls-cert-file"},
		{[]string{"--relay-listen", ":7000", "--relay-client-ca-file", "ca.pem"}, nil, "--relay-client-ca-file"},
		{[]string{"--relay-listen", ":7000", "--relay-tls-cert-file", "c.pem", "--relay-tls-key-file", "k.pem",
			"--relay-allowed-names", "a"}, nil, "--relay-allowed-names"},
	} {
		_, err := parseFlags(tc.args, env(tc.env), &bytes.Buffer{})
		var fe *flagError
		if !errors.As(err, &fe) {
			t.Errorf("parseFlags(%q) = %v, want a *flagError", tc.args, err)
			continue
		}
		if !strings.Contains(fe.Flag, tc.flag) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("parseFlags(%q): %q does not name %s", tc.args, err, tc.flag)
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(--help) = %v, want flag.ErrHelp", err)
	}
	var c config
	fs, _ := newFlagSet(&c)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "--"+f.Name+" ") {
			t.Errorf("--help does not document --%s", f.Name)
		}
	})
	for _, s := range []string{envEndpoints, envPassword, "/healthz", "Exit codes"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}

func TestParseFlagsPasswordNeverAFlag(t *testing.T) {
	for _, name := range []string{"--etcd-password", "--password"} {
		if _, err := parseFlags([]string{"--etcd-endpoints", "http://a:1", name, "p"}, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%s is accepted; the password must come from %s only", name, envPassword)
		}
	}
}

func TestFlagForField(t *testing.T) {
	for field, want := range map[string]string{
		"Endpoints[1]": "--etcd-endpoints", "Prefix": "--prefix", "OnClusterReset": "--on-cluster-reset",
		"ClusterIDPollInterval": "--cluster-id-poll-interval", "WatchMode": "--watch", "Backoff.Max": "",
	} {
		if got := flagForField(field); got != want {
			t.Errorf("flagForField(%q) = %q, want %q", field, got, want)
		}
	}
	err := configError(&supervisor.ConfigError{Field: "Prefix", Err: errors.New("bad")})
	if !strings.Contains(err.Error(), "--prefix") || !strings.Contains(err.Error(), "Prefix") || codeFor(err) != exitUsage {
		t.Errorf("configError = %v (exit %d), want it to name --prefix and Prefix, exit 2", err, codeFor(err))
	}
}
