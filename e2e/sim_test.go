package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"
	"go.uber.org/goleak"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

const prefix = "/calico/v1"

// One spec per recovery path, each on a simulated etcd, each ending with
// The invariant (ARCHITECTURE.md): in-sync, the host's map equals etcd's.
var _ = Describe("Syncer on a simulated etcd", func() {
	var (
		sim *etcdsim.Server
		cfg supervisor.Config
		ctx = context.Background()
	)

	set := func(k, v string) {
		GinkgoHelper()
		_, err := sim.Set(ctx, prefix+k, v, nil)
		Expect(err).NotTo(HaveOccurred())
	}
	inSyncWithEtcd := func(g Gomega, rec interface{ InSyncMap() map[string]string }) {
		g.Expect(rec.InSyncMap()).To(Equal(sim.Map(prefix)))
	}

	BeforeEach(func() {
		sim = etcdsim.NewWithConfig(etcdsim.Config{ClusterID: "c0ffee0000000001"})
		cfg = loopback.Config()
		cfg.KeysAPI = sim
		DeferCleanup(sim.ReleaseWatches)
		DeferCleanup(sim.ReleaseFollower)
		DeferCleanup(sim.Reconnect)
	})

	It("reaches in-sync on an etcd that has never heard of the prefix", func(ctx SpecContext) {
		_, rec := startSyncer(cfg)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{}))
		Expect(rec.Statuses()).To(Equal([]messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync}))
	}, SpecTimeout(10*time.Second))

	It("delivers a first snapshot in batches", func(ctx SpecContext) {
		kv := map[string]string{}
		for i := range 2500 {
			kv[fmt.Sprintf("%s/host/h%d/k%d", prefix, i%10, i)] = fmt.Sprint(i)
		}
		sim.Load(kv)
		cfg.SnapshotBatchSize = 1000
		_, rec := startSyncer(cfg)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(kv))
		calls, updates := rec.Calls()
		Expect(updates).To(Equal(2500))
		// Batches of 1000, which the consumer may coalesce further.
		Expect(calls).To(BeNumerically("<=", 3), "2500 keys in batches of 1000")
	}, SpecTimeout(10*time.Second))

	It("follows sets, deletes, directory deletes, compare-and-swaps and TTL expiries while in sync", func(ctx SpecContext) {
		set("/a", "1")
		_, rec := startSyncer(cfg)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))

		set("/d/x", "2")
		set("/d/y", "3")
		set("/a", "1b")
		_, err := sim.Set(ctx, prefix+"/a", "1c", &client.SetOptions{PrevValue: "1b"})
		Expect(err).NotTo(HaveOccurred())
		_, err = sim.Set(ctx, prefix+"/ttl", "soon gone", &client.SetOptions{TTL: 5 * time.Second})
		Expect(err).NotTo(HaveOccurred())
		Eventually(rec.Map).WithContext(ctx).Should(Equal(sim.Map(prefix)))

		_, err = sim.Delete(ctx, prefix+"/d", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		_, err = sim.Delete(ctx, prefix+"/a", &client.DeleteOptions{PrevValue: "1c"})
		Expect(err).NotTo(HaveOccurred())
		sim.Advance(6 * time.Second)
		Expect(sim.Map(prefix)).To(BeEmpty())
		Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(10*time.Second))

	When("the watch falls out of the 1000-event window", func() {
		It("restarts the watcher, resyncs, and converges", func(ctx SpecContext) {
			events := watchSupervision()
			set("/a", "1")
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))
			Eventually(sim.WatchesInFlight).WithContext(ctx).Should(Equal(1))

			sim.HoldWatches()
			for i := range 1100 {
				set(fmt.Sprintf("/burst/%d", i%300), fmt.Sprint(i))
			}
			_, err := sim.Delete(ctx, prefix+"/a", nil)
			Expect(err).NotTo(HaveOccurred())
			sim.ReleaseWatches()

			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(events.Restarts("watcher")).To(Equal(1))
			Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync,
				messages.Resync, messages.InSync))
			Expect(s.Status()).To(Equal(messages.InSync))
		}, SpecTimeout(10*time.Second))
	})

	When("a stale follower serves the snapshot", func() {
		It("re-reads it with a quorum read, merging nothing of the stale one", func(ctx SpecContext) {
			set("/a", "old")
			sim.FreezeFollower() // for good: as a member cut off from its quorum
			set("/a", "new")
			set("/b", "2")
			_, rec := startSyncer(cfg)
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(rec.Map()).To(Equal(map[string]string{prefix + "/a": "new", prefix + "/b": "2"}))
			Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
		}, SpecTimeout(10*time.Second))
		// That it does not take such a follower for a restored etcd, even under
		// StopOnReset, is checked on the stepper's clock (clock_test.go).
	})

	When("etcd cannot be reached", func() {
		It("waits for it with backoff, not in a tight loop, then syncs", func(ctx SpecContext) {
			set("/a", "1")
			sim.Disconnect()
			cfg.Backoff = supervisor.BackoffConfig{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
			_, rec := startSyncer(cfg)
			Eventually(rec.Status).WithContext(ctx).Should(Equal(messages.WaitForDatastore))
			start := time.Now()
			Consistently(rec.Status).WithContext(ctx).WithTimeout(time.Second).Should(Equal(messages.WaitForDatastore))
			// A tight loop would make thousands of calls a second; the
			// backoff's mean delay at its 200 ms cap allows about ten.
			elapsed := time.Since(start).Seconds()
			Expect(float64(sim.Calls()) / elapsed).To(BeNumerically("<", 40))

			sim.Reconnect()
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
		}, SpecTimeout(10*time.Second))

		It("keeps its watch position through a short outage: no resync", func(ctx SpecContext) {
			set("/a", "1")
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))
			Eventually(sim.WatchesInFlight).WithContext(ctx).Should(Equal(1))

			sim.CutWatches() // one transport error: below WatchErrorLimit
			set("/b", "2")
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
		}, SpecTimeout(10*time.Second))
	})

	When("the watcher fails mid-watch", func() {
		It("is restarted by its supervisor, after a backoff, and the host resyncs", func(ctx SpecContext) {
			events := watchSupervision()
			set("/a", "1")
			cfg.WatchErrorLimit = 2
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))

			sim.Disconnect(etcdsim.OpWatch)
			Eventually(events.Restarts).WithContext(ctx).WithArguments("watcher").Should(BeNumerically(">=", 1))
			Eventually(rec.Status).WithContext(ctx).Should(Equal(messages.Resync))
			set("/b", "2")
			sim.Reconnect()
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
		}, SpecTimeout(10*time.Second))
	})

	When("the cluster is rebuilt with other content", func() {
		BeforeEach(func() {
			set("/kept", "old")
			set("/gone", "old")
		})
		rebuild := func() {
			sim.Reset("c0ffee0000000002", map[string]string{prefix + "/kept": "new", prefix + "/fresh": "1"})
		}

		It("under ResyncOnReset, keeps the host's keys and converges on the new cluster", func(ctx SpecContext) {
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(2))
			Expect(s.ClusterID()).To(Equal("c0ffee0000000001"))
			rebuild()
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(s.ClusterID()).To(Equal("c0ffee0000000002"), "the ID the host is told is the new cluster's")
			Expect(rec.Map()).To(Equal(map[string]string{prefix + "/kept": "new", prefix + "/fresh": "1"}))
			Expect(rec.Statuses()).To(ContainElement(messages.WaitForDatastore))
		}, SpecTimeout(10*time.Second))

		It("gives the new pipeline actors of their own, which no PID of the old one reaches", func(ctx SpecContext) {
			// A goroutine of the old pipeline may post once more after its
			// actor stopped; protoactor resolves its PID by name.
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(2))
			old := pipelineIDs()
			Expect(old).To(HaveLen(4), "watcher, snapshot, merger, cluster-ID poller")
			rebuild()
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(pipelineIDs()).To(HaveLen(4))
			for _, id := range old {
				_, alive := system.ProcessRegistry.GetLocal(id)
				Expect(alive).To(BeFalse(), "%s, of the stopped pipeline, reaches an actor", id)
			}
		}, SpecTimeout(10*time.Second))

		It("under StopOnReset, stops with ErrClusterIDChanged and delivers nothing more", func(ctx SpecContext) {
			cfg.OnClusterReset = supervisor.StopOnReset
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(2))
			rebuild()
			Eventually(s.Done()).WithContext(ctx).Should(BeClosed())
			Expect(s.Err()).To(MatchError(messages.ErrClusterIDChanged))
			before := rec.Map()
			set("/after", "x")
			Consistently(rec.Map).WithContext(ctx).WithTimeout(300 * time.Millisecond).Should(Equal(before))
		}, SpecTimeout(10*time.Second))
	})

	When("the cluster is rebuilt while etcd cannot be read", func() {
		It("hears of the new cluster before anything of it is merged", func(ctx SpecContext) {
			set("/k", "old")
			for i := range 1200 {
				set("/burst", fmt.Sprint(i))
			}
			set("/k", "old again")                // a revision the new cluster's /k stays below
			cfg.ClusterIDPollInterval = time.Hour // the poller must not be the one to notice
			events := watchSupervision()
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveKeyWithValue(prefix+"/k", "old again"))

			By("rebuilding it while GETs fail, so that the watcher's reconnect check cannot run")
			sim.Disconnect(etcdsim.OpGet)
			sim.Reset("c0ffee0000000003", map[string]string{prefix + "/k": "new"})
			for i := range 1300 { // past the old index, and the old position out of the window
				set("/burst", fmt.Sprint(i))
			}
			// The watch, cut by the reset, gets 401 from the new cluster;
			// the restarted watcher cannot read the index yet and fails again.
			Eventually(events.Restarts).WithContext(ctx).WithArguments("watcher").Should(BeNumerically(">=", 2))
			sim.Reconnect()

			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(rec.Violation()).NotTo(HaveOccurred(), "no revision of the new cluster below the old one's")
			// Whichever actor saw the new cluster first, it was judged before
			// the merger heard of it: no in-sync before the host is told
			// that a new cluster generation starts.
			after := rec.Statuses()[3:]
			Expect(after).To(ContainElement(messages.WaitForDatastore))
			Expect(slices.Index(after, messages.WaitForDatastore)).To(BeNumerically("<", slices.Index(after, messages.InSync)))
		}, SpecTimeout(20*time.Second))
	})

	When("etcd is restored from an older backup", func() {
		It("detects the index going back and resyncs from the restored store", func(ctx SpecContext) {
			set("/a", "1")
			backup := sim.Backup()
			set("/b", "2")
			set("/a", "1b")
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(2))

			sim.Restore(backup) // same cluster ID, index back
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(rec.Map()).To(Equal(map[string]string{prefix + "/a": "1"}))
		}, SpecTimeout(10*time.Second))

		It("under StopOnReset, stops with ErrIndexRegressed", func(ctx SpecContext) {
			cfg.OnClusterReset = supervisor.StopOnReset
			set("/a", "1")
			backup := sim.Backup()
			set("/a", "2")
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))
			sim.Restore(backup)
			Eventually(s.Done()).WithContext(ctx).Should(BeClosed())
			Expect(s.Err()).To(MatchError(messages.ErrIndexRegressed))
		}, SpecTimeout(10*time.Second))
	})

	When("the merger fails in the middle of a snapshot", func() {
		It("is restarted, resumes the snapshot, and reports its duration and cause as if nothing happened", func(ctx SpecContext) {
			kv := map[string]string{}
			for i := range 2500 {
				kv[fmt.Sprintf("%s/host/h%d/k%d", prefix, i%10, i)] = fmt.Sprint(i)
			}
			sim.Load(kv)
			cfg.SnapshotBatchSize = 1000
			obs := &failingMerger{}
			cfg.Observer = obs
			events := watchSupervision()
			_, rec := startSyncer(cfg)
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(events.Restarts("merger")).To(Equal(1))
			reads, causes := obs.seen()
			Expect(reads).To(HaveLen(1))
			Expect(reads[0]).To(BeNumerically("<", 10*time.Second), "not the time since the zero time")
			Expect(causes).To(Equal([]string{"start"}))
		}, SpecTimeout(10*time.Second))
	})

	When("the host's callback panics", func() {
		It("delivers the failed batch again, whole, and loses nothing", func(ctx SpecContext) {
			events := watchSupervision()
			set("/a", "1")
			rec := startSyncerWithFaultyHost(cfg, 2) // the first two calls panic
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
			Expect(events.Restarts("consumer")).To(Equal(2))
			set("/b", "2")
			Eventually(func(g Gomega) { inSyncWithEtcd(g, rec) }).WithContext(ctx).Should(Succeed())
		}, SpecTimeout(10*time.Second))

		It("stops with ErrPoisonBatch when one batch keeps failing", func(ctx SpecContext) {
			set("/a", "1")
			cfg.MaxDeliveryAttempts = 3
			rec := recorderThatPanics(func(updates []messages.Update) bool { return true })
			s, err := supervisor.Start(system, withLogger(cfg), rec)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(s.Stop)
			Eventually(s.Done()).WithContext(ctx).Should(BeClosed())
			Expect(s.Err()).To(MatchError(messages.ErrPoisonBatch))
		}, SpecTimeout(10*time.Second))
	})

	When("stopped", func() {
		leakOpts := func() []goleak.Option {
			return []goleak.Option{goleak.IgnoreCurrent(),
				// protoactor's dead-letter throttle: one per actor system, not ours
				goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1")}
		}

		It("leaves no goroutine behind when stopped during a snapshot", func(ctx SpecContext) {
			opts := leakOpts()
			set("/a", "1")
			sim.FreezeFollower()
			set("/a", "2")
			s, err := supervisor.Start(system, withLogger(cfg), recorderThatPanics(nil))
			Expect(err).NotTo(HaveOccurred())
			Eventually(sim.Calls).WithContext(ctx).WithArguments(etcdsim.OpGet).Should(BeNumerically(">=", 3))
			Expect(s.Stop(ctx)).To(Succeed())
			Expect(goleak.Find(opts...)).To(Succeed())
		}, SpecTimeout(10*time.Second))

		It("leaves no goroutine behind, and calls nothing more, when stopped during a watch", func(ctx SpecContext) {
			opts := leakOpts()
			rec := recorderThatPanics(nil)
			s, err := supervisor.Start(system, withLogger(cfg), rec)
			Expect(err).NotTo(HaveOccurred())
			Eventually(rec.InSyncMap).WithContext(ctx).ShouldNot(BeNil())
			Eventually(sim.WatchesInFlight).WithContext(ctx).Should(Equal(1))
			Expect(s.Stop(ctx)).To(Succeed())
			rec.Close()
			set("/late", "x")
			Consistently(rec.Violation).WithTimeout(200 * time.Millisecond).Should(Succeed())
			Expect(goleak.Find(opts...)).To(Succeed())
			Expect(s.Stop(ctx)).To(Succeed(), "Stop is idempotent")
			Expect(errors.Is(s.Err(), nil)).To(BeTrue())
		}, SpecTimeout(10*time.Second))

		It("returns, and calls nothing more, when the host stops it from inside a callback", func(ctx SpecContext) {
			opts := leakOpts()
			set("/a", "1")
			syncer := make(chan *supervisor.Syncer, 1) // the callback may come before Start returns
			stopped := make(chan error, 1)
			host := &stoppingHost{Recorder: recorder.New()}
			host.stop = func() {
				s := <-syncer
				// No deadline: it must return on its own.
				stopped <- s.Stop(context.Background())
				host.Close() // any later call, the status of this batch included, is a violation
			}
			started, err := supervisor.Start(system, withLogger(cfg), host)
			Expect(err).NotTo(HaveOccurred())
			syncer <- started
			Eventually(stopped).WithContext(ctx).Should(Receive(BeNil()))
			set("/late", "x")
			Consistently(host.Violation).WithTimeout(200 * time.Millisecond).Should(Succeed())
			Expect(host.Map()).To(Equal(map[string]string{prefix + "/a": "1"}))
			Eventually(func() error { return goleak.Find(opts...) }).Should(Succeed())
			Expect(started.Stop(ctx)).To(Succeed(), "and again from outside")
		}, SpecTimeout(10*time.Second))

		It("returns, and leaves nothing running, when stopped while a cluster reset is under way", func(ctx SpecContext) {
			set("/a", "1")
			for i := range 20 {
				opts := leakOpts()
				var s atomic.Pointer[supervisor.Syncer]
				stopped := make(chan error, 1)
				cfg.Observer = resetHook{onReset: func() {
					// The root is resetting its pipeline: stop it meanwhile.
					go func() { stopped <- s.Load().Stop(ctx) }()
				}}
				rec := recorder.New()
				started, err := supervisor.Start(system, withLogger(cfg), rec)
				Expect(err).NotTo(HaveOccurred())
				s.Store(started)
				Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1))
				sim.Reset("", map[string]string{prefix + "/a": "1"})
				var stopErr error
				Eventually(stopped).WithContext(ctx).WithTimeout(5*time.Second).Should(Receive(&stopErr), "round %d", i)
				Expect(stopErr).NotTo(HaveOccurred(), "round %d", i)
				Expect(goleak.Find(opts...)).To(Succeed(), "round %d", i)
				calls := sim.Calls()
				Consistently(sim.Calls).WithTimeout(50*time.Millisecond).Should(Equal(calls), "round %d: nothing calls etcd any more", i)
			}
		}, SpecTimeout(60*time.Second))
	})
})

// stoppingHost is a recorder that calls stop, once, from inside its first
// OnUpdates, after applying it.
type stoppingHost struct {
	*recorder.Recorder
	stop func()
	once atomic.Bool
}

func (h *stoppingHost) OnUpdates(updates []messages.Update) {
	h.Recorder.OnUpdates(updates)
	if h.once.CompareAndSwap(false, true) {
		h.stop()
	}
}

// resetHook is an Observer that calls onReset when a reset is escalated (on
// the root's goroutine, as it decides).
type resetHook struct {
	actors.NopObserver
	onReset func()
}

func (h resetHook) ClusterReset() { h.onReset() }

// failingMerger is an Observer that makes the merger fail once, when it has
// merged part of a snapshot, and records snapshot reads and resync causes.
type failingMerger struct {
	actors.NopObserver
	mu     sync.Mutex
	failed bool
	reads  []time.Duration
	causes []string
}

func (o *failingMerger) Merged(keys int, _, _ uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if keys > 0 && keys < 2500 && !o.failed {
		o.failed = true
		panic("a merger that fails mid-snapshot")
	}
}

func (o *failingMerger) SnapshotRead(d time.Duration, _ int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads = append(o.reads, d)
}

func (o *failingMerger) Resync(cause string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.causes = append(o.causes, cause)
}

func (o *failingMerger) seen() ([]time.Duration, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Duration(nil), o.reads...), append([]string(nil), o.causes...)
}
