package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/internal/migrate"
	"github.com/etcdsync/etcdsync/supervisor"
)

func TestParseMigrateFlagsDefaults(t *testing.T) {
	c, err := parseMigrateFlags([]string{"--etcd-endpoints", "http://a:2379"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseMigrateFlags = %v", err)
	}
	want := migrateConfig{
		Endpoints:             []string{"http://a:2379"},
		TLS:                   tlsFlags{name: "etcd"},
		Login:                 login{flag: "etcd-username", env: envPassword},
		ToEndpoints:           []string{"http://a:2379"}, // one etcd 3.5 serves both APIs
		ToTLS:                 tlsFlags{name: "to"},
		ToLogin:               login{flag: "to-username", env: envToPassword},
		WatchMode:             supervisor.WatchLongPoll,
		OnClusterReset:        supervisor.ResyncOnReset,
		ClusterIDPollInterval: 10 * time.Second,
		Prefix:                "/calico/v1",
		MaxTxnOps:             migrate.DefaultMaxTxnOps,
		MaxTxnBytes:           migrate.DefaultMaxTxnBytes,
		ParallelTxns:          4,
		MaxVerifyRounds:       5,
		ReconcileInterval:     5 * time.Minute,
		RequestTimeout:        10 * time.Second,
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

func TestParseMigrateFlagsTargetAndSecrets(t *testing.T) {
	c, err := parseMigrateFlags([]string{
		"--to-endpoints", "https://x:2379,https://y:2379", "--to-ca-file", "ca.pem",
		"--to-cert-file", "c.pem", "--to-key-file", "k.pem", "--to-username", "v3user",
		"--etcd-username", "v2user", "--prefix", "/p/", "--once", "--max-verify-rounds", "2",
	}, env(map[string]string{envEndpoints: "http://a:2379", envPassword: "pw2", envToPassword: "pw3"}), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseMigrateFlags = %v", err)
	}
	if !reflect.DeepEqual(c.ToEndpoints, []string{"https://x:2379", "https://y:2379"}) || c.Endpoints[0] != "http://a:2379" {
		t.Errorf("endpoints: %v -> %v", c.Endpoints, c.ToEndpoints)
	}
	if c.Login.Password != "pw2" || c.ToLogin.Password != "pw3" || c.Prefix != "/p" || !c.Once || c.MaxVerifyRounds != 2 {
		t.Errorf("got %+v", c)
	}
}

func TestParseMigrateFlagsErrorsNameTheFlag(t *testing.T) {
	src := []string{"--etcd-endpoints", "http://a:2379"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{nil, nil, "--etcd-endpoints"},
		{[]string{"--to-endpoints", "x:1"}, nil, "--to-endpoints"},
		{[]string{"--to-endpoints", ""}, nil, "--to-endpoints"},
		{[]string{"--to-cert-file", "c.pem"}, nil, "--to-key-file"},
		{[]string{"--etcd-key-file", "k.pem"}, nil, "--etcd-cert-file"},
		{nil, map[string]string{envToPassword: "x"}, "--to-username"},
		{nil, map[string]string{envPassword: "x"}, "--etcd-username"},
		{[]string{"--prefix", "/"}, nil, "--prefix"},
		{[]string{"--max-txn-ops", "0"}, nil, "--max-txn-ops"},
		{[]string{"--max-txn-bytes", "-1"}, nil, "--max-txn-bytes"},
		{[]string{"--parallel-txns", "0"}, nil, "--parallel-txns"},
		{[]string{"--max-verify-rounds", "3"}, nil, "--max-verify-rounds"}, // without --once
		{[]string{"--watch", "poll"}, nil, "--watch"},
		{[]string{"--on-cluster-reset", "maybe"}, nil, "--on-cluster-reset"},
		{[]string{"--listen", "nowhere"}, nil, "--listen"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--request-timeout", "0s"}, nil, "--request-timeout"},
		{[]string{"--once", "--reconcile-interval", "1m"}, nil, "--reconcile-interval"},
		{[]string{"--bogus"}, nil, "--bogus"},
		{[]string{"extra"}, nil, "command line"},
	} {
		args := tc.args
		if tc.flag != "--etcd-endpoints" {
			args = append(append([]string{}, src...), args...)
		}
		_, err := parseMigrateFlags(args, env(tc.env), &bytes.Buffer{})
		var fe *flagError
		if !errors.As(err, &fe) || fe.Flag != tc.flag {
			t.Errorf("%v: got %v, want an error naming %s", args, err, tc.flag)
		}
	}
}

func TestParseMigrateFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseMigrateFlags([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"--etcd-endpoints", "--to-endpoints", "--to-ca-file", "--prefix", "--once", "--listen", "--max-txn-ops"} {
		if !strings.Contains(out.String(), "  "+f+" ") {
			t.Errorf("--help lacks %s:\n%s", f, out.String())
		}
	}
}
