package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the node's goroutines and the test,
// which can wait for text to appear in it.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // gets a token after each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written == nil {
		b.written = make(chan struct{}, 1)
	}
	select {
	case b.written <- struct{}{}:
	default: // a token is pending already
	}
	return b.b.Write(p)
}

// waitFor reports whether s appears in the buffer within timeout.
func (b *syncBuffer) waitFor(s string, timeout time.Duration) bool {
	b.mu.Lock()
	if b.written == nil {
		b.written = make(chan struct{}, 1)
	}
	written := b.written
	b.mu.Unlock()
	deadline := time.After(timeout)
	for !strings.Contains(b.String(), s) {
		select {
		case <-written:
		case <-deadline:
			return false
		}
	}
	return true
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"--help"}, env(nil), &stdout, &stderr); code != exitOK {
		t.Errorf("--help exits %d", code)
	}
	if !strings.Contains(stdout.String(), "--etcd-endpoints") || stderr.String() != "" {
		t.Errorf("--help: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

func TestRunBadFlag(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"--output", "xml"}, env(nil), &stdout, &stderr); code != exitUsage {
		t.Errorf("--output xml exits %d", code)
	}
	if !strings.Contains(stderr.String(), "--output") || stdout.String() != "" {
		t.Errorf("--output xml: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

func TestRunListenTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"--listen", l.Addr().String(), "--etcd-endpoints", "http://127.0.0.1:1"},
		env(nil), &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "flag=--listen") {
		t.Errorf("taken --listen: exit %d, stderr %q", code, stderr.String())
	}
}

// TestRunStopsWhenCancelled runs the node against an etcd that does not
// answer (it waits for the datastore) and stops it as a signal would.
func TestRunStopsWhenCancelled(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now: connections are refused

	ctx, cancel := context.WithCancelCause(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--etcd-endpoints", "http://" + deadAddr},
			env(nil), &stdout, &stderr)
	}()
	if !stdout.waitFor(`{"status":"wait-for-datastore"}`, 10*time.Second) {
		t.Fatalf("no wait-for-datastore on stdout; stderr:\n%s", stderr.String())
	}
	cancel(context.Canceled)
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after cancel; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return after cancel; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `msg="node stopped"`) {
		t.Errorf("no 'node stopped' line; stderr:\n%s", stderr.String())
	}
}

// TestRunLeafNeverLogsARelayPassword runs a leaf whose relay endpoint has a
// password, against a relay that refuses connections, until it has logged
// a reconnect: no line (start-up, the syncer's, the relay client's) may
// carry the password.
func TestRunLeafNeverLogsARelayPassword(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	ctx, cancel := context.WithCancelCause(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--relay-endpoints", "http://leaf:s3cr3t@" + deadAddr},
			env(nil), &stdout, &stderr)
	}()
	ok := stderr.waitFor("relay stream failed", 10*time.Second)
	cancel(context.Canceled)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return after cancel; stderr:\n%s", stderr.String())
	}
	if !ok {
		t.Fatalf("no 'relay stream failed' line; stderr:\n%s", stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "s3cr3t") {
			t.Errorf("a password in the log: %s", line)
		}
	}
	if !strings.Contains(stderr.String(), "leaf:xxxxx@") {
		t.Errorf("the relay endpoint is not named, redacted; stderr:\n%s", stderr.String())
	}
}
