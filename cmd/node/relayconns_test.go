package main

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestRunRelayBoundsConnectionsFromAccept runs a relay node (its etcd does
// not answer: the relay serves its empty view) and opens twice its
// connection bound of connections that never send their request: the relay
// keeps at most the bound open (--relay-max-clients 4, and 32 more), and
// closes the rest at accept, long before the header timeout (5 s) would.
func TestRunRelayBoundsConnectionsFromAccept(t *testing.T) {
	const maxConns = 4 + 32 // relay.Config's default for MaxClients 4
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0") // a port for the relay (0 would be --listen's)
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := free.Addr().String()
	free.Close()

	ctx, cancel := context.WithCancelCause(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--etcd-endpoints", "http://" + deadAddr, "--output", "none",
			"--relay-listen", relayAddr, "--relay-max-clients", "4"}, env(nil), &stdout, &stderr)
	}()
	defer func() {
		cancel(context.Canceled)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("run did not return after cancel; stderr:\n%s", stderr.String())
		}
	}()
	if !stderr.waitFor("relay serving", 10*time.Second) {
		t.Fatalf("no 'relay serving' line; stderr:\n%s", stderr.String())
	}
	before := openFDs(t)
	var conns []net.Conn
	for range 2 * maxConns {
		c, err := net.Dial("tcp", relayAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Those past the bound are closed at accept: wait for them, well
	// within the 5 s that would close every one of them anyway.
	deadline := time.Now().Add(4 * time.Second)
	closed := closedByServer(conns)
	for closed < maxConns && time.Now().Before(deadline) {
		closed = closedByServer(conns)
	}
	fds := openFDs(t) - before
	if closed != maxConns {
		t.Errorf("the relay closed %d of %d stalled connections within 4 s; want the %d past its bound", closed, len(conns), maxConns)
	}
	// The test's own connections count too: in process, both ends are ours.
	if fds > len(conns)+maxConns {
		t.Errorf("%d more descriptors with %d stalled connections; want at most %d (ours, and the relay's bound)",
			fds, len(conns), len(conns)+maxConns)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// closedByServer counts the connections the server has closed: a read
// returns at once, where on an open, silent one it times out.
func closedByServer(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
			n++
		}
	}
	return n
}
