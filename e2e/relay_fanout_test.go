package e2e_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// relayFanoutSpecs: one relay, or a tier of them, brings many leaves in
// sync and keeps them there, with etcd serving one watch.
func relayFanoutSpecs(e *relayEnv) {
	It("brings every leaf in sync and keeps it there through writes, deletes and directory deletes", func(ctx SpecContext) {
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		recs, _ := e.startLeaves(5, e.leafConfig(r.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())

		for i := range 200 {
			k := fmt.Sprintf("%s/host/h%d/k%d", prefix, i%7, i%60)
			var err error
			switch i % 5 {
			case 0:
				_, err = e.keys.Delete(ctx, k, nil)
				if client.IsKeyNotFound(err) {
					err = nil
				}
			case 1:
				if i%50 == 1 {
					_, err = e.keys.Delete(ctx, fmt.Sprintf("%s/host/h%d", prefix, i%7), &client.DeleteOptions{Recursive: true})
					if client.IsKeyNotFound(err) {
						err = nil
					}
					break
				}
				fallthrough
			default:
				_, err = e.keys.Set(ctx, k, fmt.Sprintf("v%d", i), nil)
			}
			Expect(err).NotTo(HaveOccurred())
		}
		_, err := e.keys.Set(ctx, prefix+"/quiet", "end", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(60*time.Second))

	It("forms tiers: leaves of a relay that syncs from another relay converge and follow", func(ctx SpecContext) {
		top := startRelay(e.relayConfig(), "127.0.0.1:0")
		mid := startRelay(e.leafConfig(top.url()), "127.0.0.1:0")
		recs, _ := e.startLeaves(3, e.leafConfig(mid.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		_, err := e.keys.Set(ctx, prefix+"/tiered", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = e.keys.Delete(ctx, prefix+"/host", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		Expect(mid.server.Stats().Clients).To(Equal(len(recs)))
		Expect(top.server.Stats().Clients).To(Equal(1), "the top relay serves the middle one only")
	}, SpecTimeout(60*time.Second))

	It("keeps etcd's watcher count at the relay's, whatever the number of leaves", func(ctx SpecContext) {
		watchers := func() float64 { return etcdMetric(ctx, e.etcd.Endpoints()[0], "etcd_debugging_store_watchers") }
		idle := watchers()
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		Eventually(r.syncer.Status).WithContext(ctx).Should(Equal(messages.InSync))
		Eventually(watchers).WithContext(ctx).Should(BeNumerically(">", idle))
		one := idle + 1 // the relay's watch (a long poll re-registers per event: at most one)
		recs, _ := e.startLeaves(20, e.leafConfig(r.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		_, err := e.keys.Set(ctx, prefix+"/more", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		Consistently(watchers).WithContext(ctx).WithTimeout(time.Second).Should(BeNumerically("<=", one), "20 leaves, and etcd still sees the relay's watch only")
	}, SpecTimeout(60*time.Second))
}
