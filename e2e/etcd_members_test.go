package e2e_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// memberFailureSpecs: members die, freeze, lose their quorum or all go
// down, and the syncer loses no key and invents none.
func memberFailureSpecs(re realEtcd) {
	It("loses no key and invents none when members die under load, the syncer's first and then the leader", func(ctx SpecContext) {
		etcd := re.startEtcd(3)
		keys := re.writer(etcd)
		load(ctx, keys, 300, 4)
		_, rec := startSyncer(re.config(etcd.Endpoints()...)) // client/v2 talks to the first it reaches
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

		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	}, SpecTimeout(90*time.Second))

	It("moves off a member that froze under its watch, while the others go on, and resumes without a resync", func(ctx SpecContext) {
		etcd := re.startEtcd(3)
		keys := re.writer(etcd)
		load(ctx, keys, 100, 4)
		_, rec := startSyncer(re.config(etcd.Endpoints()...))
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
		Eventually(re.inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync),
			"the watch resumed on another member from its position")
		Expect(etcd.Thaw(watched)).To(Succeed())
	}, SpecTimeout(90*time.Second))

	It("takes no member cut off from its quorum for a restored etcd, tries it first, and converges on the others", func(ctx SpecContext) {
		etcd, err := etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter, PeerProxies: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		keys := re.writer(etcd)
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
		cut := re.proxies(etcd)[cutOff] // to count the syncer's connections to it
		cfg := re.config(cut.URL(), eps[rest[0]], eps[rest[1]])
		cfg.OnClusterReset = supervisor.StopOnReset
		gets := storeGets(ctx, eps[cutOff])
		s, rec := startSyncer(cfg)
		Eventually(re.inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(s.Done()).NotTo(BeClosed(), "a member behind is not a restored etcd")
		Expect(cut.Accepted()).To(BeNumerically(">", 0), "the syncer tried the member cut off")
		if re.mode == supervisor.WatchLongPoll {
			Expect(storeGets(ctx, eps[cutOff])).To(BeNumerically(">", gets), "its first snapshot came from the member cut off")
		}

		_, err = others.Set(ctx, prefix+"/after", "1", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(re.inSyncWith(ctx, others, rec)).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(s.Done()).NotTo(BeClosed())
	}, SpecTimeout(90*time.Second))

	It("rides out every member down for 20 s without a tight retry loop, and recovers", func(ctx SpecContext) {
		etcd := re.startEtcd(3)
		keys := re.writer(etcd)
		load(ctx, keys, 200, 4)
		ps := re.proxies(etcd)
		// The production defaults: backoff 0.8 s doubling to 30 s, a
		// cluster-ID poll every 10 s.
		_, rec := startSyncer(supervisor.Config{Endpoints: re.urls(ps), WatchMode: re.mode})
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
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	}, SpecTimeout(150*time.Second))
}
