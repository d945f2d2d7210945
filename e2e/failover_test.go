package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// failoverSchedules returns how many failover schedules to run and the seed
// of the first: ETCDSYNC_FAILOVER_SCHEDULES (default 200; `make soak` runs
// more), from the seed schedules() draws (ETCDSYNC_SCHEDULE_SEED).
func failoverSchedules() (n int, base uint64) {
	_, base = schedules()
	n = 200
	if s := os.Getenv("ETCDSYNC_FAILOVER_SCHEDULES"); s != "" {
		v, err := strconv.Atoi(s)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_FAILOVER_SCHEDULES")
		n = v
	}
	return n, base
}

var _ = Describe("Failover schedules", Label("schedule", "failover"), func() {
	It("never shows an in-sync leaf a map other than etcd's at the leaf's revision, after any callback", func(ctx SpecContext) {
		n, base := failoverSchedules()
		By(fmt.Sprintf("running %d failover schedules from seed %d", n, base))
		start := time.Now()
		checks := 0
		for i := range uint64(n) {
			checks += runFailoverSchedule(ctx, base+i)
			if CurrentSpecReport().Failed() {
				return
			}
		}
		GinkgoWriter.Printf("%d failover schedules, %d in-sync callbacks checked, in %v\n", n, checks, time.Since(start))
	}, NodeTimeout(30*time.Minute))
})

var _ = Describe("A leaf", Label("relay", "failover"), func() {
	It("is never in sync with a directory delete half applied: its host gets one etcd index whole", func(ctx SpecContext) {
		sim := etcdsim.New()
		sim.Load(map[string]string{prefix + "/d/a": "1", prefix + "/d/b": "2", prefix + "/d/c": "3"})
		cfg := loopback.Config()
		cfg.KeysAPI, cfg.Logger = sim, failoverLogger
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		one := serveScheduleRelay(ln, cfg, relay.Config{Prefix: prefix, Logger: failoverLogger})
		DeferCleanup(one.stop)
		leaf := loopback.Config()
		leaf.Relays, leaf.Logger = []string{one.proxy.URL()}, failoverLogger
		o := newFrameOracle(sim, prefix)
		s, err := supervisor.Start(system, leaf, o)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Stop)
		// Writes until the leaf is in sync and holds the last of them.
		Eventually(func(g Gomega) {
			_, err := sim.Set(ctx, prefix+"/e", "4", nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(o.InSyncMap()).To(Equal(sim.Map(prefix)))
		}).WithContext(ctx).WithPolling(50 * time.Millisecond).Should(Succeed())
		// One last write, of a value of its own: once the leaf has it,
		// nothing is left on its way to the host, which is idle when the
		// delete comes (a busy host would get the deletions coalesced).
		_, err = sim.Set(ctx, prefix+"/e", "5", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(o.InSyncMap).WithContext(ctx).Should(HaveKeyWithValue(prefix+"/e", "5"))

		// One etcd index deletes three keys; the relay sends them in one
		// frame, at one position.
		_, err = sim.Delete(ctx, prefix+"/d", &client.DeleteOptions{Dir: true, Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		Eventually(o.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{prefix + "/e": "5"}))
		Expect(o.FrameViolation()).NotTo(HaveOccurred())
		Expect(o.Checks()).To(BeNumerically(">=", 2)) // in sync before the delete, and after it
	}, SpecTimeout(20*time.Second))
})

// frameOracle is a leaf's host that checks, after every callback, the
// invariant a leaf owes its host at every point, not only once quiet: while
// it says in-sync, its map is etcd's state at the leaf's revision.
//
// The leaf's revision is the position the leaf claims: the index its
// syncer gave with InSync (messages.StatusAtCallback: the etcd index at
// which the view is etcd's, for a leaf the relay's resume position it took
// its snapshot at), raised by the revision of every update delivered in
// sync after it (the watch, in revision order). Not the highest revision
// the map holds: a key deleted before the snapshot the leaf started from
// was never delivered, so etcd at the map's newest key can still hold it.
// An update batch that ends inside one etcd index (some of the keys of a
// directory delete) leaves the map at no state of etcd: that is what the
// check is for.
type frameOracle struct {
	*recorder.Recorder
	sim    *etcdsim.Server
	prefix string

	mu        sync.Mutex
	status    messages.SyncStatus
	rev       uint64
	checks    int
	violation error
}

var _ messages.StatusAtCallback = (*frameOracle)(nil)

func newFrameOracle(sim *etcdsim.Server, prefix string) *frameOracle {
	return &frameOracle{Recorder: recorder.New(), sim: sim, prefix: prefix}
}

// OnStatusUpdated implements messages.Callbacks; the syncer calls
// OnStatusAt instead.
func (o *frameOracle) OnStatusUpdated(s messages.SyncStatus) { o.OnStatusAt(s, 0) }

// OnStatusAt implements messages.StatusAtCallback.
func (o *frameOracle) OnStatusAt(s messages.SyncStatus, index uint64) {
	o.Recorder.OnStatusUpdated(s)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status, o.rev = s, index
	o.check(fmt.Sprintf("status %s at %d", s, index))
}

// OnUpdates implements messages.Callbacks.
func (o *frameOracle) OnUpdates(updates []messages.Update) {
	o.Recorder.OnUpdates(updates)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status != messages.InSync {
		return
	}
	for _, u := range updates {
		o.rev = max(o.rev, u.Revision)
	}
	o.check(fmt.Sprintf("a batch of %d updates, the last %v", len(updates), updates[len(updates)-1]))
}

// check compares the map with etcd at the leaf's revision, if in sync.
// Called with mu held.
func (o *frameOracle) check(after string) {
	if o.status != messages.InSync || o.violation != nil {
		return
	}
	o.checks++
	if o.rev == 0 {
		o.violation = fmt.Errorf("after %s: in-sync at no index", after)
		return
	}
	want, err := o.sim.StateAt(o.prefix, o.rev)
	if err != nil {
		o.violation = fmt.Errorf("after %s: %w", after, err)
		return
	}
	got := o.Recorder.Map()
	if maps.Equal(got, want) {
		return
	}
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, struct{}) bool) {
		for k := range got {
			yield(k, struct{}{})
		}
		for k := range want {
			yield(k, struct{}{})
		}
	}))) {
		g, gok := got[k]
		w, wok := want[k]
		if g != w || gok != wok {
			diff = append(diff, fmt.Sprintf("%s: leaf %q (%v), etcd %q (%v)", k, g, gok, w, wok))
		}
	}
	o.violation = fmt.Errorf("after %s: in-sync at %d, and the map differs from etcd's there in %d keys: %v",
		after, o.rev, len(diff), diff[:min(len(diff), 8)])
}

// Checks returns how many callbacks found the leaf in sync and were checked.
func (o *frameOracle) Checks() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.checks
}

// FrameViolation returns the first breach of the per-callback invariant.
func (o *frameOracle) FrameViolation() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.violation
}

// lossyKeys is one relay's view of the simulated etcd: its watches can be
// made to lose sync (etcd's 401) on their own, while the other relays'
// carry on, as when one relay's watch falls out of the event window.
type lossyKeys struct {
	*etcdsim.Server
	lose atomic.Bool // the next watch call fails with 401
}

func (l *lossyKeys) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	return &lossyWatcher{w: l.Server.Watcher(key, opts), l: l}
}

type lossyWatcher struct {
	w client.Watcher
	l *lossyKeys
}

func (w *lossyWatcher) Next(ctx context.Context) (*client.Response, error) {
	if w.l.lose.CompareAndSwap(true, false) {
		return nil, client.Error{Code: client.ErrorCodeEventIndexCleared, Message: "The event in requested index is outdated and cleared",
			Cause: "the requested history has been cleared (a spec's lossyKeys)", Index: w.l.Index()}
	}
	return w.w.Next(ctx)
}

// failoverBackoff keeps a schedule short: its faults come faster than
// loopback.Config's backoff (up to 500 ms) resets.
var failoverBackoff = supervisor.BackoffConfig{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, ResetAfter: time.Second}

// failoverLogger logs warnings and errors only: 200 schedules a run.
var failoverLogger = slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))

// runFailoverSchedule runs one seeded schedule: three relays, each a
// syncer of its own on one simulated etcd, and one or two leaves that know
// them all, through random writes (directory deletes and expiries
// included), watch losses of one relay or all, leaf streams cut (the leaf
// fails over to another relay and resumes there), relay restarts, and
// pauses until every leaf is in sync. Every leaf's host is a frameOracle;
// at the end, every leaf must hold etcd's head. It returns how many
// in-sync callbacks were checked. A failure names the seed.
func runFailoverSchedule(ctx context.Context, seed uint64) int {
	GinkgoHelper()
	why := fmt.Sprintf("failover schedule seed %d (replay: ETCDSYNC_SCHEDULE_SEED=%d ETCDSYNC_FAILOVER_SCHEDULES=1 go test ./e2e -ginkgo.label-filter=failover)", seed, seed)
	GinkgoWriter.Printf("failover schedule %d\n", seed)
	began := time.Now()
	defer func() { GinkgoWriter.Printf("failover schedule %d took %v\n", seed, time.Since(began)) }()
	r := rand.New(rand.NewPCG(seed, 0))
	sim := etcdsim.NewWithConfig(etcdsim.Config{Seed: seed, ClusterID: fmt.Sprintf("%016x", seed)})
	randomKey := func() string {
		return fmt.Sprintf("%s/d%d/s%d/k%d", prefix, r.IntN(3), r.IntN(3), r.IntN(5))
	}
	write := func() {
		switch k := randomKey(); r.IntN(10) {
		case 0:
			_, _ = sim.Delete(ctx, k, nil) // may not exist: etcd says 100
		case 1, 2:
			// One index, every key of the directory: the leaf must never
			// be in sync with some of them gone and some not.
			dir := fmt.Sprintf("%s/d%d", prefix, r.IntN(3))
			if r.IntN(2) == 0 {
				dir += fmt.Sprintf("/s%d", r.IntN(3))
			}
			_, _ = sim.Delete(ctx, dir, &client.DeleteOptions{Recursive: true, Dir: true})
		case 3:
			_, _ = sim.Set(ctx, k, fmt.Sprint(r.IntN(100)), &client.SetOptions{TTL: time.Second})
		case 4:
			sim.Advance(time.Second) // expiries, one index each
		default:
			_, _ = sim.Set(ctx, k, fmt.Sprint(r.IntN(100)), nil)
		}
	}
	for range 10 + r.IntN(30) {
		write()
	}

	var lossy []*lossyKeys
	rel := &scheduleRelays{}
	var urls []string
	for range 3 {
		cfg := loopback.Config()
		keys := &lossyKeys{Server: sim}
		cfg.KeysAPI, cfg.Logger = keys, failoverLogger
		cfg.WatchStallTimeout = 200 * time.Millisecond
		cfg.SnapshotBatchSize = 1 + r.IntN(20)
		cfg.Backoff = failoverBackoff
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		// Pings keep a quiet leaf's stream from going silent past its
		// read deadline; a graceful restart asks the leaves to wait
		// RetryAfter (1 s, the least) before they reconnect.
		one := serveScheduleRelay(ln, cfg, relay.Config{Prefix: prefix, Logger: failoverLogger,
			LogEntries: 20 + r.IntN(200), SnapshotShare: time.Nanosecond, WriteTimeout: time.Second,
			PingInterval: 100 * time.Millisecond, RetryAfter: time.Second})
		lossy, rel.relays, urls = append(lossy, keys), append(rel.relays, one), append(urls, one.proxy.URL())
	}
	var oracles []*frameOracle
	for range 1 + r.IntN(2) {
		leaf := loopback.Config()
		leaf.Relays, leaf.Logger = urls, failoverLogger
		leaf.RelayReadTimeout = 500 * time.Millisecond
		leaf.Backoff = failoverBackoff
		leaf.SnapshotBatchSize = 1 + r.IntN(20)
		o := newFrameOracle(sim, prefix)
		s, err := supervisor.Start(system, leaf, o)
		Expect(err).NotTo(HaveOccurred(), why)
		oracles, rel.leaves, rel.syncers = append(oracles, o), append(rel.leaves, o.Recorder), append(rel.syncers, s)
	}
	defer rel.stop(ctx)
	// inSync waits until every leaf holds etcd's head, marked by a value
	// only this call writes.
	marks := 0
	inSync := func(what string) {
		GinkgoHelper()
		marks++
		_, err := sim.Set(ctx, prefix+"/quiet", fmt.Sprint(marks), nil)
		Expect(err).NotTo(HaveOccurred())
		want := sim.Map(prefix)
		for i, o := range oracles {
			Eventually(func() map[string]string { return o.InSyncMap() }).WithContext(ctx).WithTimeout(20*time.Second).
				Should(Equal(want), "%s: leaf %d in sync with etcd's head: %s", what, i, why)
		}
	}
	for range 20 + r.IntN(40) {
		switch f := r.IntN(30); {
		case f == 0:
			lossy[r.IntN(len(lossy))].lose.Store(true) // one relay resyncs, the others don't
		case f == 1:
			sim.CutWatches() // every relay's watch reconnects where it was
		case f <= 4:
			rel.pick(r).proxy.CutAll() // the leaves on it fail over and resume elsewhere
		case f == 5:
			one := rel.pick(r)
			if r.IntN(4) != 0 {
				// A crash: the leaves see their streams break, not the
				// relay's "shutting-down" and its RetryAfter.
				one.proxy.CutAll()
			}
			one.restart(ctx)
		case f <= 9:
			// Leaves in sync when the next faults hit: the callbacks
			// that follow are the ones the oracle checks.
			inSync("a pause")
		default:
			write()
		}
	}
	inSync("the end")
	checks := 0
	for i, o := range oracles {
		Expect(o.FrameViolation()).NotTo(HaveOccurred(), "leaf %d: %s", i, why)
		checks += o.Checks()
	}
	Expect(checks).To(BeNumerically(">", 0), why)
	return checks
}
