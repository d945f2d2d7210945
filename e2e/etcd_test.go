package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Real etcd processes (bin/etcd, v3.5.35 with --enable-v2): every spec here
// ends with the invariant (ARCHITECTURE.md) checked against a quorum read.
var _ = Describe("Syncer on real etcd", Label("etcd"), func() {
	for _, mode := range []supervisor.WatchMode{supervisor.WatchLongPoll, supervisor.WatchStream} {
		Context(fmt.Sprintf("watching by %v", mode), func() { realEtcdSpecs(mode) })
	}
})

// realEtcdSpecs are the specs every watch mode must pass.
func realEtcdSpecs(mode supervisor.WatchMode) {
	// config is LoopbackConfig in the watch mode under test.
	config := func(endpoints ...string) supervisor.Config {
		cfg := loopback.Config(endpoints...)
		cfg.WatchMode = mode
		return cfg
	}
	startEtcd := func(members int) *etcdproc.Cluster {
		GinkgoHelper()
		c, err := etcdproc.StartCluster(members, etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		return c
	}
	writer := func(c *etcdproc.Cluster) client.KeysAPI {
		GinkgoHelper()
		keys, err := c.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		return keys
	}
	proxies := func(c *etcdproc.Cluster) []*tcpproxy.Proxy {
		GinkgoHelper()
		var ps []*tcpproxy.Proxy
		for _, ep := range c.Endpoints() {
			p, err := tcpproxy.New(strings.TrimPrefix(ep, "http://"))
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(p.Close)
			ps = append(ps, p)
		}
		return ps
	}
	urls := func(ps []*tcpproxy.Proxy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.URL())
		}
		return out
	}
	// inSyncWith passes when the host is in sync and holds exactly what a
	// quorum read of the prefix returns.
	inSyncWith := func(ctx context.Context, keys client.KeysAPI, rec interface{ InSyncMap() map[string]string }) func(Gomega) {
		return func(g Gomega) {
			want, err := etcdMap(ctx, keys, prefix)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rec.InSyncMap()).To(Equal(want))
		}
	}

	// syncedThroughProxy starts one member holding 100 keys and a syncer
	// that reaches it through a proxy, and waits for it to be in sync.
	syncedThroughProxy := func(ctx context.Context) (client.KeysAPI, []*tcpproxy.Proxy, *recorder.Recorder) {
		GinkgoHelper()
		etcd := startEtcd(1)
		keys := writer(etcd)
		load(ctx, keys, 100, 4)
		ps := proxies(etcd)
		_, rec := startSyncer(config(urls(ps)...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(100))
		return keys, ps, rec
	}

	It("follows steady writes, deletes, directory deletes, TTL expiries and compare-and-swaps over thousands of keys", func(ctx SpecContext) {
		etcd := startEtcd(1)
		keys := writer(etcd)
		load(ctx, keys, 1500, 8)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(1500))

		By("writing, deleting and expiring while in sync")
		r := rand.New(rand.NewPCG(1, 2))
		for i := range 1500 {
			k := fmt.Sprintf("%s/host/h%d/k%d", prefix, r.IntN(15), r.IntN(150))
			var err error
			switch r.IntN(8) {
			case 0:
				_, err = keys.Delete(ctx, k, nil)
			case 1:
				_, err = keys.Set(ctx, k, "ttl", &client.SetOptions{TTL: time.Second})
			case 2:
				if resp, gerr := keys.Get(ctx, k, nil); gerr == nil {
					_, err = keys.Set(ctx, k, "cas", &client.SetOptions{PrevIndex: resp.Node.ModifiedIndex})
				}
			case 3:
				if i%100 == 0 {
					_, err = keys.Delete(ctx, fmt.Sprintf("%s/host/h%d", prefix, r.IntN(15)), &client.DeleteOptions{Recursive: true})
				}
			default:
				_, err = keys.Set(ctx, k, fmt.Sprint(i), nil)
			}
			if err != nil && !isEtcdCode(err, client.ErrorCodeKeyNotFound, client.ErrorCodeTestFailed) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		By("waiting for the TTL keys to expire")
		Eventually(func(g Gomega) {
			m, err := etcdMap(ctx, keys, prefix)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).NotTo(ContainElement("ttl"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
	}, SpecTimeout(60*time.Second))

	It("catches up, without a resync, when a burst of TTL expiries makes etcd drop its watch without a word", func(ctx SpecContext) {
		etcd := startEtcd(1)
		keys := writer(etcd)
		load(ctx, keys, 100, 4)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(100))

		// etcd expires every key due in one go, one event each, faster
		// than it writes them to a stream: past 100 queued, it drops the
		// stream watcher and leaves its connection open and silent.
		expiring := map[string]string{}
		for i := range 600 {
			expiring[fmt.Sprintf("%s/ttl/k%d", prefix, i)] = "soon gone"
		}
		loadMap(ctx, keys, expiring, time.Second, 8)
		Eventually(func(g Gomega) {
			m, err := etcdMap(ctx, keys, prefix)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).NotTo(ContainElement("soon gone"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		_, err := keys.Set(ctx, prefix+"/after", "expiries", nil)
		Expect(err).NotTo(HaveOccurred())

		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(rec.Map()).To(HaveKeyWithValue(prefix+"/after", "expiries"))
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync),
			"600 events are within etcd's history: the watch resumes from its position")
	}, SpecTimeout(60*time.Second))

	It("resyncs when a held-back watch falls out of the 1000-event window", func(ctx SpecContext) {
		keys, ps, rec := syncedThroughProxy(ctx)

		// Held back: nothing reaches the syncer, and its watch request
		// reaches etcd only after more than the 1000 events etcd keeps.
		// (Cutting the connection matters for a stream: the kernel would
		// otherwise buffer every event of the burst for it.)
		ps[0].Pause()
		ps[0].CutAll()
		load(ctx, keys, 1200, 8)
		ps[0].Resume()
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync,
			messages.Resync, messages.InSync))
	}, SpecTimeout(60*time.Second))

	It("loses no key and invents none when members die under load, the syncer's first and then the leader", func(ctx SpecContext) {
		etcd := startEtcd(3)
		keys := writer(etcd)
		load(ctx, keys, 300, 4)
		_, rec := startSyncer(config(etcd.Endpoints()...)) // client/v2 talks to the first it reaches
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(300))

		stop := background(ctx, keys)
		Expect(etcd.Kill(0)).To(Succeed())
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(ContainSubstring("/load/")), "writes go on through the survivors")
		Expect(etcd.Restart(0)).To(Succeed())
		leader, err := etcd.Leader()
		Expect(err).NotTo(HaveOccurred())
		Expect(etcd.Kill(leader)).To(Succeed())
		Eventually(etcd.Leader).WithContext(ctx).ShouldNot(Equal(leader))
		Expect(etcd.Restart(leader)).To(Succeed())
		stop()

		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	}, SpecTimeout(90*time.Second))

	It("moves off a member that froze under its watch, while the others go on, and resumes without a resync", func(ctx SpecContext) {
		etcd := startEtcd(3)
		keys := writer(etcd)
		load(ctx, keys, 100, 4)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(100))

		// The member holding the syncer's watch (each member counts its own
		// watchers) freezes: connections stay open, nothing answers, as
		// with a member cut off by the network. v2 has no "require leader".
		var watched int
		Eventually(func() (int, error) {
			var err error
			watched, err = memberWithWatch(ctx, etcd.Endpoints())
			return watched, err
		}).WithContext(ctx).Should(BeNumerically(">=", 0))
		Expect(etcd.Freeze(watched)).To(Succeed())
		var rest []int
		for i := range etcd.Size() {
			if i != watched {
				rest = append(rest, i)
			}
		}
		others, err := etcd.KeysAPIOf(rest...)
		Expect(err).NotTo(HaveOccurred())
		for i := range 50 {
			Eventually(func() error {
				_, err := others.Set(ctx, fmt.Sprintf("%s/while-frozen/k%d", prefix, i), "x", nil)
				return err
			}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		}
		Eventually(inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync),
			"the watch resumed on another member from its position")
		Expect(etcd.Thaw(watched)).To(Succeed())
	}, SpecTimeout(90*time.Second))

	It("takes no member cut off from its quorum for a restored etcd, tries it first, and converges on the others", func(ctx SpecContext) {
		etcd, err := etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter, PeerProxies: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		keys := writer(etcd)
		load(ctx, keys, 100, 4)
		leader, err := etcd.Leader()
		Expect(err).NotTo(HaveOccurred())
		cutOff, rest := (leader+1)%3, []int{leader, (leader + 2) % 3}
		eps := etcd.Endpoints()
		Eventually(func() (uint64, error) { // it has everything so far
			resp, err := keysAPIOf(eps[cutOff]).Get(ctx, "/", nil)
			if err != nil {
				return 0, err
			}
			return resp.Index, nil
		}).WithContext(ctx).Should(BeNumerically(">=", rootIndex(ctx, keys)))
		Expect(etcd.Partition(cutOff)).To(Succeed())
		DeferCleanup(etcd.Heal)
		others, err := etcd.KeysAPIOf(rest...)
		Expect(err).NotTo(HaveOccurred())
		load(ctx, others, 150, 4) // 50 new keys, 100 new values the cut member never sees

		// The cut member first: the syncer's own HTTP client tries endpoints
		// in order. By long poll, the snapshot reader's first snapshot is
		// the stale one; by stream, the poller's quorum read there fails
		// first (after RequestTimeout) and the reader moves on with it.
		cut := proxies(etcd)[cutOff] // to count the syncer's connections to it
		cfg := config(cut.URL(), eps[rest[0]], eps[rest[1]])
		cfg.OnClusterReset = supervisor.StopOnReset
		gets := storeGets(ctx, eps[cutOff])
		s, rec := startSyncer(cfg)
		Eventually(inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(s.Done()).NotTo(BeClosed(), "a member behind is not a restored etcd")
		Expect(cut.Accepted()).To(BeNumerically(">", 0), "the syncer tried the member cut off")
		if mode == supervisor.WatchLongPoll {
			Expect(storeGets(ctx, eps[cutOff])).To(BeNumerically(">", gets), "its first snapshot came from the member cut off")
		}

		_, err = others.Set(ctx, prefix+"/after", "1", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(s.Done()).NotTo(BeClosed())
	}, SpecTimeout(90*time.Second))

	It("rides out every member down for 20 s without a tight retry loop, and recovers", func(ctx SpecContext) {
		etcd := startEtcd(3)
		keys := writer(etcd)
		load(ctx, keys, 200, 4)
		ps := proxies(etcd)
		// The production defaults: backoff 0.8 s doubling to 30 s, a
		// cluster-ID poll every 10 s.
		_, rec := startSyncer(supervisor.Config{Endpoints: urls(ps), WatchMode: mode})
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(200))

		for i := range etcd.Size() {
			Expect(etcd.Kill(i)).To(Succeed())
		}
		before := accepted(ps)
		start := time.Now()
		// Over 20 s the host hears resync and stays there. Every request
		// tries all three members, so each one is three connections.
		Eventually(rec.Status).WithContext(ctx).Should(Equal(messages.Resync))
		Consistently(rec.Status).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal(messages.Resync))
		rate := float64(accepted(ps)-before) / time.Since(start).Seconds()
		GinkgoWriter.Printf("connections per second while etcd was down: %.2f\n", rate)
		Expect(rate).To(BeNumerically("<", 5), "a tight loop would open thousands a second")

		Expect(etcd.RestartAll()).To(Succeed())
		_, err := keys.Set(ctx, prefix+"/after", "outage", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	}, SpecTimeout(150*time.Second))

	When("the cluster is wiped and rebuilt with other content", func() {
		var (
			etcd   *etcdproc.Cluster
			keys   client.KeysAPI
			resets *resetCounter
			cfg    supervisor.Config
		)
		BeforeEach(func(ctx SpecContext) {
			etcd = startEtcd(1)
			keys = writer(etcd)
			load(ctx, keys, 200, 4)
			resets = &resetCounter{}
			cfg = config(etcd.Endpoints()...)
			cfg.Observer = resets
		})
		rebuild := func(ctx context.Context) {
			GinkgoHelper()
			Expect(etcd.Rebuild()).To(Succeed())
			keys = writer(etcd)
			for i := range 50 {
				_, err := keys.Set(ctx, fmt.Sprintf("%s/host/h%d/k%d", prefix, i%5, i), "rebuilt", nil)
				Expect(err).NotTo(HaveOccurred())
			}
		}

		It("under ResyncOnReset, converges on the new cluster and counts the reset", func(ctx SpecContext) {
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(200))
			rebuild(ctx)
			Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			Expect(resets.n.Load()).To(BeNumerically(">=", 1))
		}, SpecTimeout(60*time.Second))

		It("under StopOnReset, hands the host the error and delivers nothing more", func(ctx SpecContext) {
			cfg.OnClusterReset = supervisor.StopOnReset
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(200))
			rebuild(ctx)
			Eventually(s.Done()).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeClosed())
			Expect(s.Err()).To(MatchError(messages.ErrClusterIDChanged))
			calls, _ := rec.Calls()
			_, err := keys.Set(ctx, prefix+"/later", "x", nil)
			Expect(err).NotTo(HaveOccurred())
			Consistently(func() int { c, _ := rec.Calls(); return c }).WithTimeout(500 * time.Millisecond).Should(Equal(calls))
		}, SpecTimeout(60*time.Second))
	})

	It("detects a data dir restored from an older copy and resyncs from it", func(ctx SpecContext) {
		etcd := startEtcd(1)
		keys := writer(etcd)
		load(ctx, keys, 100, 4)
		backup, err := etcd.Backup()
		Expect(err).NotTo(HaveOccurred())
		load(ctx, keys, 300, 4) // after the backup: the restore loses them
		resets := &resetCounter{}
		cfg := config(etcd.Endpoints()...)
		cfg.Observer = resets
		_, rec := startSyncer(cfg)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(300))

		Expect(etcd.Restore(backup)).To(Succeed())
		keys = writer(etcd)
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(rec.InSyncMap()).To(HaveLen(100))
		Expect(resets.n.Load()).To(BeNumerically(">=", 1))
	}, SpecTimeout(60*time.Second))

	// heldBack runs writes while the syncer's connection is paused and cut,
	// so that its watch reads them from etcd's event history afterwards
	// (a long poll re-asks from its index; a stream fills the gap up to
	// its new head), not from live notifications.
	heldBack := func(p *tcpproxy.Proxy, writes func()) {
		p.Pause()
		p.CutAll()
		writes()
		p.Resume()
	}

	It("deletes a file that a directory replaced, seen live or from the history", func(ctx SpecContext) {
		keys, ps, rec := syncedThroughProxy(ctx)
		put := func(k, v string, opts *client.SetOptions) {
			GinkgoHelper()
			_, err := keys.Set(ctx, prefix+k, v, opts)
			Expect(err).NotTo(HaveOccurred())
		}
		put("/f/live", "file", nil)
		put("/f/past", "file", nil)
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(prefix + "/f/past"))

		By("replacing a file by a directory while the watch is live")
		put("/f/live", "", &client.SetOptions{Dir: true})
		put("/f/live/child", "c", nil)
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(prefix + "/f/live/child"))
		Expect(rec.Map()).NotTo(HaveKey(prefix + "/f/live"))

		By("replacing one while the watch is behind")
		heldBack(ps[0], func() {
			put("/f/past", "", &client.SetOptions{Dir: true})
			put("/f/past/child", "c", nil)
		})
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).NotTo(HaveKey(prefix + "/f/past"))
	}, SpecTimeout(60*time.Second))

	It("never holds a hidden key, whether the watch reads it live or from the history", func(ctx SpecContext) {
		keys, ps, rec := syncedThroughProxy(ctx)
		put := func(k, v string) {
			GinkgoHelper()
			_, err := keys.Set(ctx, prefix+k, v, nil)
			Expect(err).NotTo(HaveOccurred())
		}
		By("writing hidden keys while the watch is behind: etcd's history does not hide them")
		heldBack(ps[0], func() {
			put("/_hidden", "h")
			put("/host/_hdir/k", "h")
			put("/visible", "1")
		})
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(prefix + "/visible"))

		By("deleting them while the watch is live: etcd hides that from it")
		_, err := keys.Delete(ctx, prefix+"/_hidden", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = keys.Delete(ctx, prefix+"/host/_hdir", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		put("/_live", "h")
		put("/after", "1")
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).NotTo(HaveKey(ContainSubstring("/_")))
	}, SpecTimeout(60*time.Second))

	It("keeps its position through cut connections while writes go on: no resync", func(ctx SpecContext) {
		keys, ps, rec := syncedThroughProxy(ctx)

		stop := background(ctx, keys)
		for range 5 {
			Eventually(rec.Map).WithContext(ctx).Should(HaveKey(ContainSubstring("/load/")))
			ps[0].CutAll() // the watch resumes from its index, from etcd's history
		}
		stop()
		Eventually(inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
	}, SpecTimeout(60*time.Second))
}

// etcdMap returns every key and value below prefix, by a quorum read.
func etcdMap(ctx context.Context, keys client.KeysAPI, prefix string) (map[string]string, error) {
	out := map[string]string{}
	resp, err := keys.Get(ctx, prefix, &client.GetOptions{Recursive: true, Quorum: true})
	if isEtcdCode(err, client.ErrorCodeKeyNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", prefix, err)
	}
	var walk func(n *client.Node)
	walk = func(n *client.Node) {
		if !n.Dir {
			out[n.Key] = n.Value
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(resp.Node)
	return out, nil
}

func isEtcdCode(err error, codes ...int) bool {
	var e client.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

// load writes n keys below prefix/host/..., from the given number of
// writers, each value new.
func load(ctx context.Context, keys client.KeysAPI, n, writers int) {
	GinkgoHelper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	stamp := time.Now().UnixNano()
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				k := fmt.Sprintf("%s/host/h%d/k%d", prefix, i%10, i)
				if _, err := keys.Set(ctx, k, fmt.Sprint(stamp, i), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(<-errs).NotTo(HaveOccurred())
}

// loadMap sets every key of kv with the given TTL (0: none), from the given
// number of writers.
func loadMap(ctx context.Context, keys client.KeysAPI, kv map[string]string, ttl time.Duration, writers int) {
	GinkgoHelper()
	work := make(chan [2]string, len(kv))
	for k, v := range kv {
		work <- [2]string{k, v}
	}
	close(work)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for kv := range work {
				if _, err := keys.Set(ctx, kv[0], kv[1], &client.SetOptions{TTL: ttl}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(<-errs).NotTo(HaveOccurred())
}

// background writes to prefix/load until the returned stop is called,
// tolerating errors while members die.
func background(ctx context.Context, keys client.KeysAPI) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			wctx, done := context.WithTimeout(ctx, time.Second)
			_, _ = keys.Set(wctx, fmt.Sprintf("%s/load/k%d", prefix, i%200), fmt.Sprint(i), nil)
			done()
		}
	})
	return func() { cancel(); wg.Wait() }
}

// memberWithWatch returns the index of the one member whose watcher count
// (GET /v2/stats/store) is not zero, or -1.
func memberWithWatch(ctx context.Context, endpoints []string) (int, error) {
	found := -1
	for i, ep := range endpoints {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/v2/stats/store", nil)
		if err != nil {
			return -1, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1, err
		}
		var stats struct {
			Watchers int `json:"watchers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&stats)
		resp.Body.Close()
		if err != nil {
			return -1, fmt.Errorf("stats of %s: %w", ep, err)
		}
		if stats.Watchers > 0 {
			if found >= 0 {
				return -1, fmt.Errorf("watchers on members %d and %d", found, i)
			}
			found = i
		}
	}
	return found, nil
}

func accepted(ps []*tcpproxy.Proxy) int64 {
	var n int64
	for _, p := range ps {
		n += p.Accepted()
	}
	return n
}

// resetCounter is an Observer that counts escalated cluster resets.
type resetCounter struct {
	actors.NopObserver
	n atomic.Int64
}

func (r *resetCounter) ClusterReset() { r.n.Add(1) }

// keysAPIOf is a client of the one member at endpoint.
func keysAPIOf(endpoint string) client.KeysAPI {
	GinkgoHelper()
	c, err := client.New(client.Config{Endpoints: []string{endpoint}, HeaderTimeoutPerRequest: 2 * time.Second})
	Expect(err).NotTo(HaveOccurred())
	return client.NewKeysAPI(c)
}

// rootIndex is etcd's index, by a quorum read.
func rootIndex(ctx context.Context, keys client.KeysAPI) uint64 {
	GinkgoHelper()
	resp, err := keys.Get(ctx, "/", &client.GetOptions{Quorum: true})
	Expect(err).NotTo(HaveOccurred())
	return resp.Index
}

// storeGets is how many GETs the member at endpoint has served (its v2
// store's getsSuccess: each member counts its own).
func storeGets(ctx context.Context, endpoint string) uint64 {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v2/stats/store", nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var stats struct {
		Gets uint64 `json:"getsSuccess"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&stats)).To(Succeed())
	return stats.Gets
}
