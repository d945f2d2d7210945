package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/messages"
)

// writeSpecs: the syncer follows what etcd is written, live, from its
// event history and across cut connections, and holds what etcd holds.
func writeSpecs(re realEtcd) {
	It("follows steady writes, deletes, directory deletes, TTL expiries and compare-and-swaps over thousands of keys", func(ctx SpecContext) {
		etcd := re.startEtcd(1)
		keys := re.writer(etcd)
		load(ctx, keys, 1500, 8)
		_, rec := startSyncer(re.config(etcd.Endpoints()...))
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
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
	}, SpecTimeout(60*time.Second))

	It("catches up, without a resync, when a burst of TTL expiries makes etcd drop its watch without a word", func(ctx SpecContext) {
		etcd := re.startEtcd(1)
		keys := re.writer(etcd)
		load(ctx, keys, 100, 4)
		_, rec := startSyncer(re.config(etcd.Endpoints()...))
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

		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(rec.Map()).To(HaveKeyWithValue(prefix+"/after", "expiries"))
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync),
			"600 events are within etcd's history: the watch resumes from its position")
	}, SpecTimeout(60*time.Second))

	It("resyncs when a held-back watch falls out of the 1000-event window", func(ctx SpecContext) {
		keys, ps, rec := re.syncedThroughProxy(ctx)

		// Held back: nothing reaches the syncer, and its watch request
		// reaches etcd only after more than the 1000 events etcd keeps.
		// (Cutting the connection matters for a stream: the kernel would
		// otherwise buffer every event of the burst for it.)
		ps[0].Pause()
		ps[0].CutAll()
		load(ctx, keys, 1200, 8)
		ps[0].Resume()
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync,
			messages.Resync, messages.InSync))
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
		keys, ps, rec := re.syncedThroughProxy(ctx)
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
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).NotTo(HaveKey(prefix + "/f/past"))
	}, SpecTimeout(60*time.Second))

	It("never holds a hidden key, whether the watch reads it live or from the history", func(ctx SpecContext) {
		keys, ps, rec := re.syncedThroughProxy(ctx)
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
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).NotTo(HaveKey(ContainSubstring("/_")))
	}, SpecTimeout(60*time.Second))

	It("keeps its position through cut connections while writes go on: no resync", func(ctx SpecContext) {
		keys, ps, rec := re.syncedThroughProxy(ctx)

		stop := background(ctx, keys)
		for range 5 {
			Eventually(rec.Map).WithContext(ctx).Should(HaveKey(ContainSubstring("/load/")))
			ps[0].CutAll() // the watch resumes from its index, from etcd's history
		}
		stop()
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
	}, SpecTimeout(60*time.Second))
}
