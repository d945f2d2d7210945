package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// SnapshotTimeout bounds one measured snapshot.
const SnapshotTimeout = 2 * time.Minute

// Floor is the least any syncer must do to learn a prefix: one recursive
// GET through client/v2 (which reads the whole body, then decodes it) and a
// walk of the returned nodes. It returns how many keys it found.
func Floor(ctx context.Context, keys client.KeysAPI, prefix string) (int, error) {
	resp, err := keys.Get(ctx, prefix, &client.GetOptions{Recursive: true})
	if err != nil {
		return 0, err
	}
	return countLeaves(resp.Node), nil
}

func countLeaves(n *client.Node) int {
	if n == nil {
		return 0
	}
	if !n.Dir {
		return 1
	}
	leaves := 0
	for _, c := range n.Nodes {
		leaves += countLeaves(c)
	}
	return leaves
}

// RawFloor is the physical floor: the same recursive GET as Floor, over
// Go's net/http, its body read into io.Discard and nothing decoded. It
// returns how many bytes the body held.
func RawFloor(ctx context.Context, hc *http.Client, endpoint, prefix string) (int64, error) {
	u := strings.TrimSuffix(endpoint, "/") + "/v2/keys" + (&url.URL{Path: prefix}).EscapedPath() + "?recursive=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// WarmUp reads the prefix once, off the clock, so that the first
// measurement of a process does not pay for etcd growing its heap to
// answer (at 10^6 keys the first GET after the load took twice as long).
func WarmUp(tb testing.TB, endpoint, prefix string) {
	hc := &http.Client{Transport: Transport(1)}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
	defer cancel()
	if _, err := RawFloor(ctx, hc, endpoint, prefix); err != nil {
		tb.Fatalf("warming etcd up: %v", err)
	}
}

// MeasureRawFloor times RawFloor against endpoint, b.N times, and reports
// the body's size ("body-MB") and the peak heap ("peak-heap-MB") as
// MeasureFloor does.
func MeasureRawFloor(b *testing.B, endpoint, prefix string) {
	hc := &http.Client{Transport: Transport(2)}
	defer hc.CloseIdleConnections()
	var peak uint64
	var size int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h := StartHeapSampler()
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
		n, err := RawFloor(ctx, hc, endpoint, prefix)
		cancel()
		b.StopTimer()
		peak = max(peak, h.Stop())
		if err != nil {
			b.Fatalf("raw GET of %s: %v", prefix, err)
		}
		size = n
	}
	b.ReportMetric(float64(size)/(1<<20), "body-MB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// MeasureFloor times Floor, b.N times, and reports its peak heap
// ("peak-heap-MB") as MeasureSnapshot does. It fails b unless every GET
// finds want keys.
func MeasureFloor(b *testing.B, keys client.KeysAPI, prefix string, want int) {
	var peak uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h := StartHeapSampler()
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
		n, err := Floor(ctx, keys, prefix)
		cancel()
		b.StopTimer()
		peak = max(peak, h.Stop())
		if err != nil {
			b.Fatalf("floor GET of %s: %v", prefix, err)
		}
		if n != want {
			b.Fatalf("floor GET of %s found %d keys, want %d", prefix, n, want)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// StartFunc starts a fresh syncer delivering to cb and returns how to stop
// it; stop must wait for everything the syncer started.
type StartFunc func(cb messages.Callbacks) (stop func() error, err error)

// MeasureSnapshot times, b.N times, a fresh syncer from start until its
// host has been told InSync after at least want updates. It reports the
// host's OnUpdates calls per snapshot ("calls") and the heap's peak above
// its level before start ("peak-heap-MB", the highest of the iterations).
// Stopping is off the clock.
func MeasureSnapshot(b *testing.B, want int, start StartFunc) {
	var peak uint64
	var calls int64
	b.ResetTimer()
	for range b.N {
		c := NewCounter(want)
		p, _ := syncOnce(b, want, start, c, c)
		peak = max(peak, p)
		calls = c.Calls()
	}
	b.ReportMetric(float64(calls), "calls")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// MeasureHeld is MeasureSnapshot with a Holder for host, which keeps every
// key and value as a real host does, sleeping delay per update (0: none).
// Besides the time and the peak heap above start ("peak-heap-MB"), it
// reports what the host's copy alone takes ("host-MB": the live heap once
// the syncer is stopped, above start) and the difference per key
// ("beyond-host-B/key"): what the syncer needs on top of the host's view.
func MeasureHeld(b *testing.B, want int, delay time.Duration, start StartFunc) {
	var peak, host uint64
	var calls int64
	b.ResetTimer()
	for range b.N {
		holder := NewHolder(want, delay)
		p, base := syncOnce(b, want, start, holder, holder.Counter)
		if n := holder.Len(); n != want {
			b.Fatalf("the host holds %d keys, want %d", n, want)
		}
		live := LiveHeap()
		hostNow := live - min(base, live)
		runtime.KeepAlive(holder)
		if p > peak {
			peak, host = p, hostNow
		}
		calls = holder.Calls()
	}
	b.ReportMetric(float64(calls), "calls")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(host)/(1<<20), "host-MB")
	b.ReportMetric((float64(peak)-float64(host))/float64(want), "beyond-host-B/key")
}

// syncOnce starts a fresh syncer for host, whose count c is, and keeps the
// clock running from the start until c is done (in sync with want keys);
// stopping the syncer is off the clock. It returns the peak heap above
// what was live at the start, and that base.
func syncOnce(b *testing.B, want int, start StartFunc, host messages.Callbacks, c *Counter) (peak, base uint64) {
	b.StopTimer()
	runtime.GC()
	h := StartHeapSampler()
	b.StartTimer()
	stop, err := start(host)
	if err != nil {
		b.Fatalf("starting the syncer: %v", err)
	}
	timeout := time.NewTimer(SnapshotTimeout)
	defer timeout.Stop()
	inSync := false
	select {
	case <-c.Done():
		inSync = true
	case <-timeout.C:
	}
	b.StopTimer()
	peak = h.Stop()
	if err := stop(); err != nil {
		b.Fatalf("stopping the syncer: %v", err)
	}
	if !inSync {
		b.Fatalf("not in sync with %d keys within %v: %d updates delivered", want, SnapshotTimeout, c.Updates())
	}
	return peak, h.Base()
}
