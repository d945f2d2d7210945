package relay

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// countingWriter is a ResponseWriter that counts the calls a stream makes
// on the write path, and holds its next Flush until released, so that a
// test can append to the log while the stream is busy.
type countingWriter struct {
	header http.Header

	mu        sync.Mutex
	body      bytes.Buffer
	writes    int
	deadlines int
	flushes   int
	holdAt    int // the Flush, counted from 1, that waits for hold to close
	hold      chan struct{}
	held      chan struct{} // closed when that Flush waits on hold
	want      []byte        // closing wrote when the body first holds it
	wrote     chan struct{}
}

func (c *countingWriter) Header() http.Header { return c.header }
func (c *countingWriter) WriteHeader(int)     {}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	n, err := c.body.Write(b)
	if c.want != nil && bytes.Contains(c.body.Bytes(), c.want) {
		close(c.wrote)
		c.want = nil
	}
	return n, err
}

func (c *countingWriter) SetWriteDeadline(time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines++
	return nil
}

func (c *countingWriter) FlushError() error {
	c.mu.Lock()
	c.flushes++
	wait := c.flushes == c.holdAt
	c.mu.Unlock()
	if wait {
		close(c.held)
		<-c.hold
	}
	return nil
}

// counts returns the writes, deadlines and flushes so far, and the body.
func (c *countingWriter) counts() (writes, deadlines, flushes int, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.deadlines, c.flushes, c.body.String()
}

// TestWokenStreamWritesTheLogAtOnce checks the write path of a stream that
// finds many entries in the log when it looks: it writes them in one Write
// under one deadline and flushes once, rather than one Write and one
// deadline per entry (at 10^3 clients, those were a tenth of the relay's
// CPU per delivered write).
func TestWokenStreamWritesTheLogAtOnce(t *testing.T) {
	s, err := New(Config{Prefix: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.OnStatusUpdated(messages.InSync)
	const entries = 100
	w := &countingWriter{header: http.Header{}, holdAt: 2, hold: make(chan struct{}), held: make(chan struct{}),
		want: []byte(`"k":"/p/k` + strconv.Itoa(entries-1) + `"`), wrote: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, wire.StreamPath+"?prefix=/p", nil)
	done := make(chan struct{})
	go func() { defer close(done); s.ServeHTTP(w, r) }()

	// The stream flushes its hello, then its (empty) snapshot, and waits
	// there; meanwhile the log grows by entries, one OnUpdates each.
	select {
	case <-w.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not flush its snapshot")
	}
	for i := range entries {
		s.OnUpdates([]messages.Update{{Key: "/p/k" + strconv.Itoa(i), Value: "v", Revision: uint64(i + 1), Type: messages.UpdateTypeNew}})
	}
	writes0, deadlines0, flushes0, _ := w.counts()
	close(w.hold)
	select {
	case <-w.wrote:
	case <-time.After(10 * time.Second):
		_, _, _, body := w.counts()
		t.Fatalf("the stream never sent the last entry; body:\n%s", body)
	}
	cancel()
	<-done
	writes, deadlines, flushes, body := w.counts()
	// The entries it found at one look at the log: one of each.
	if got := writes - writes0; got != 1 {
		t.Errorf("%d Writes for %d log entries found at once; want 1", got, entries)
	}
	if got := deadlines - deadlines0; got != 1 {
		t.Errorf("%d write deadlines set for %d log entries found at once; want 1", got, entries)
	}
	if got := flushes - flushes0; got != 1 {
		t.Errorf("%d flushes for %d log entries found at once; want 1", got, entries)
	}
	// In order, each once.
	last := -1
	for i := range entries {
		at := bytes.Index([]byte(body), []byte(`"k":"/p/k`+strconv.Itoa(i)+`"`))
		if at < 0 || at < last {
			t.Fatalf("entry %d missing or out of order in the body:\n%s", i, body)
		}
		last = at
	}
}

// TestStreamBodyIsNotChunked checks that an accepted stream's body is
// delimited by the connection's end, not chunked: net/http would wrap each
// write in a chunk header and trailer, and split a write over its 4 KiB
// buffer into three syscalls.
func TestStreamBodyIsNotChunked(t *testing.T) {
	s, err := New(Config{Prefix: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+wire.StreamPath+"?prefix=/p", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	if len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Errorf("Transfer-Encoding %v, Connection: close %v; want no transfer coding, and the connection closed after it",
			resp.TransferEncoding, resp.Close)
	}
	f, err := wire.NewDecoder(resp.Body, 0).Next()
	if err != nil || f.Type != wire.TypeHello {
		t.Errorf("first frame %+v, %v; want hello", f, err)
	}
}
