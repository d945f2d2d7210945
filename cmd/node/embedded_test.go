package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/supervisor"
)

func TestCheckDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkDataDir(filepath.Join(dir, "a", "b")); err != nil {
		t.Errorf("checkDataDir of a new nested directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkDataDir(filepath.Join(file, "etcd"))
	var fe *flagError
	if !errors.As(err, &fe) || fe.Flag != "--data-dir" {
		t.Errorf("checkDataDir under a file = %v, want a --data-dir error", err)
	}
}

func TestClassifyStartError(t *testing.T) {
	c := config{EmbeddedListen: "127.0.0.1:2379", EmbeddedPeerListen: "127.0.0.1:2380", DataDir: "/tmp/d"}
	listenErr := func(port int) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
			Err: errors.New("bind: address already in use")}
	}
	for _, tc := range []struct {
		err  error
		flag string
	}{
		{listenErr(2379), "--embedded-etcd-listen"},
		{listenErr(2380), "--embedded-etcd-peer-listen"},
		{&os.PathError{Op: "open", Path: "/tmp/d/member/wal", Err: os.ErrPermission}, "--data-dir"},
		{errors.New("something else"), ""},
	} {
		err := classifyStartError(c, tc.err)
		var fe *flagError
		switch {
		case tc.flag == "" && errors.As(err, &fe):
			t.Errorf("classifyStartError(%v) blames %s", tc.err, fe.Flag)
		case tc.flag != "" && (!errors.As(err, &fe) || fe.Flag != tc.flag):
			t.Errorf("classifyStartError(%v) = %v, want it to name %s", tc.err, err, tc.flag)
		case !errors.Is(err, tc.err):
			t.Errorf("classifyStartError(%v) = %v does not wrap the cause", tc.err, err)
		}
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:2379": "127.0.0.1:2379", ":2379": "127.0.0.1:2379", "[::]:2379": "[::1]:2379",
		"10.0.0.1:2379": "10.0.0.1:2379", "localhost:2379": "localhost:2379",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
	e := &embeddedEtcd{clientURL: "http://127.0.0.1:2379"}
	if got, want := e.tryCommand(supervisor.APIv2, "/calico/v1"),
		"curl -X PUT http://127.0.0.1:2379/v2/keys/calico/v1/config/Example -d value=hello"; got != want {
		t.Errorf("tryCommand = %q, want %q", got, want)
	}
	if !strings.HasPrefix(e.tryCommand(supervisor.APIv2, "/other"), "curl -X PUT http://127.0.0.1:2379/v2/keys/other/") {
		t.Errorf("tryCommand ignores the prefix: %q", e.tryCommand(supervisor.APIv2, "/other"))
	}
}
