package actors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// pausable is an actors.Runner whose mailboxes can be held: while paused,
// an actor that has drained its mailbox is not run again, however many
// messages arrive, as an actor starved of CPU or stuck behind a slow step.
type pausable struct {
	mu     sync.Mutex
	paused bool
	held   []func()
}

func (p *pausable) Schedule(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.held = append(p.held, fn)
		return
	}
	go fn()
}

func (p *pausable) Throughput() int { return 300 }
func (p *pausable) Go(f func())     { go f() }
func (p *pausable) Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *pausable) pause() { p.mu.Lock(); p.paused = true; p.mu.Unlock() }
func (p *pausable) resume() {
	p.mu.Lock()
	held := p.held
	p.paused, p.held = false, nil
	p.mu.Unlock()
	for _, fn := range held {
		go fn()
	}
}

type fixedDelay struct{}

func (fixedDelay) Next() time.Duration { return 10 * time.Millisecond }
func (fixedDelay) Reset()              {}

// floodRelay is a relay that streams deltas as fast as its client reads
// them, up to limit bytes, and stops at the first write its client leaves
// unread for a second.
type floodRelay struct {
	limit   int64
	written atomic.Int64
	stalled atomic.Bool // a write timed out: the client stopped reading
	drained atomic.Bool // the client read all limit bytes
}

func (f *floodRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	raw, _ := wire.Append(nil, &wire.Frame{Type: wire.TypeHello, Version: wire.Version, Prefix: feedPrefix,
		ClusterID: "c0ffee01", Revision: 1, Status: "in-sync"})
	raw, _ = wire.Append(raw, &wire.Frame{Type: wire.TypeSnapshotBegin, ClusterID: "c0ffee01", Revision: 1})
	raw, _ = wire.Append(raw, &wire.Frame{Type: wire.TypeSnapshotEnd, Status: "in-sync"})
	value := strings.Repeat("v", 200)
	rev := uint64(1)
	for f.written.Load() < f.limit {
		fr := &wire.Frame{Type: wire.TypeDelta, ClusterID: "c0ffee01", Changes: make([]wire.Change, 256)}
		for i := range fr.Changes {
			rev++
			fr.Changes[i] = wire.Change{Op: "updated", Key: fmt.Sprintf("%s/k%03d", feedPrefix, rev%100), Value: value, Revision: rev}
		}
		fr.Revision = rev
		raw, _ = wire.Append(raw, fr)
		_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := w.Write(raw)
		f.written.Add(int64(n))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			f.stalled.Store(true)
			return
		}
		if err != nil {
			return
		}
		raw = raw[:0]
	}
	f.drained.Store(true)
	<-r.Context().Done()
}

var _ = Describe("the relay client actor", func() {
	It("stops reading a relay while the actor does not take its frames, and stops promptly", func(ctx SpecContext) {
		relay := &floodRelay{limit: 64 << 20}
		ts := httptest.NewServer(relay)
		DeferCleanup(ts.Close)

		var updates atomic.Int64 // what the merger was sent
		system := actor.NewActorSystem()
		DeferCleanup(system.Shutdown)
		merger := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(m.WatcherUpdate); ok {
				updates.Add(1)
			}
		}))
		runner := &pausable{}
		goroutines := &sync.WaitGroup{}
		env := &actors.Env{
			Prefix: feedPrefix, Clock: clock.RealClock{}, Logger: slog.New(slog.NewTextHandler(GinkgoWriter, nil)),
			Goroutines: goroutines, HostCalls: &sync.WaitGroup{}, Stopped: &atomic.Bool{},
			NewBackoff: func() actors.Delayer { return fixedDelay{} }, Rand: func(int64) int64 { return 0 },
			Observer: actors.NopObserver{}, Runner: runner,
		}
		client := system.Root.Spawn(actors.NewRelayClientProps(env, actors.RelayClientConfig{
			Relays: []string{ts.URL}, Client: &http.Client{}, Cluster: &actors.SharedClusterIDCheck{},
			ReadTimeout: time.Minute, StaleTimeout: time.Minute, StaleRetry: time.Second, BatchSize: 100, Identity: true,
		}))
		system.Root.Send(client, actors.RelayBind{Merger: merger})
		Eventually(updates.Load).WithContext(ctx).Should(BeNumerically(">", 0), "deltas flow")

		By("the actor stops taking frames: the reader stops reading, and the relay's writes stall")
		runner.pause()
		paused := relay.written.Load()
		Eventually(func() bool { return relay.stalled.Load() || relay.drained.Load() }).WithContext(ctx).Should(BeTrue())
		Expect(relay.drained.Load()).To(BeFalse(), "the leaf read all %d MiB the relay had while its actor took nothing", relay.limit>>20)
		Expect(relay.written.Load()-paused).To(BeNumerically("<", 24<<20),
			"what the relay wrote after the pause: socket buffers and the frames in flight")

		By("the actor is stopped while its reader waits for it: the reader ends")
		system.Root.Stop(client) // run before the frames it holds: system messages come first
		runner.resume()
		stopped := make(chan struct{})
		go func() { goroutines.Wait(); close(stopped) }()
		Eventually(stopped).WithContext(ctx).Should(BeClosed())
	}, SpecTimeout(60*time.Second))
})
