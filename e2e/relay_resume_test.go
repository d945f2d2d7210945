package e2e_test

import (
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// relayResumeSpecs: leaves resume across relay restarts and broken
// streams, fail over between relays, follow the relay's staleness and its
// cluster reset.
func relayResumeSpecs(e *relayEnv) {
	It("resumes every leaf across a relay restart, with no update for a key that did not change", func(ctx SpecContext) {
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		recs, counters := e.startLeaves(4, e.leafConfig(r.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := e.updates(recs)

		r.stop(ctx)
		_, err := e.keys.Set(ctx, prefix+"/while-down", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []messages.SyncStatus {
			var out []messages.SyncStatus
			for _, rec := range recs {
				out = append(out, rec.Status())
			}
			return out
		}).WithContext(ctx).ShouldNot(ContainElement(messages.InSync), "a leaf cut off from its relay is not in sync")

		startRelay(e.relayConfig(), r.addr)
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		after := e.updates(recs)
		for i := range recs {
			Expect(after[i]-before[i]).To(Equal(1), "leaf %d: only the key written while the relay was down", i)
			Expect(counters[i].streams.Load()).To(BeNumerically(">=", 2))
		}
	}, SpecTimeout(90*time.Second))

	It("resumes from the relay's log, with no snapshot, after the leaf's stream broke", func(ctx SpecContext) {
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		front, err := tcpproxy.New(r.addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(front.Close)
		recs, counters := e.startLeaves(2, e.leafConfig(front.URL()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := e.updates(recs)
		sent := r.server.Stats().SnapshotsSent

		front.CutAll()
		_, err = e.keys.Set(ctx, prefix+"/while-cut", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(r.server.Stats().SnapshotsSent).To(Equal(sent), "the leaves resumed from the log")
		for i, c := range counters {
			Expect(c.resumed.Load()).To(BeNumerically(">=", 1), "leaf %d", i)
		}
		after := e.updates(recs)
		for i := range recs {
			Expect(after[i] - before[i]).To(Equal(1))
		}
	}, SpecTimeout(60*time.Second))

	It("fails over to the next relay when one goes away", func(ctx SpecContext) {
		a := startRelay(e.relayConfig(), "127.0.0.1:0")
		b := startRelay(e.relayConfig(), "127.0.0.1:0")
		recs, _ := e.startLeaves(4, e.leafConfig(a.url(), b.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := e.updates(recs)
		a.stop(ctx)
		b.stop(ctx)
		c := startRelay(e.relayConfig(), b.addr)
		_, err := e.keys.Set(ctx, prefix+"/after-failover", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(c.server.Stats().Clients).To(Equal(len(recs)), "every leaf moved to the relay that is left")
		after := e.updates(recs)
		for i := range recs {
			Expect(after[i] - before[i]).To(Equal(1))
		}
	}, SpecTimeout(90*time.Second))

	It("passes staleness on: no leaf is in sync within 2 s of the relay leaving in-sync, and all are again once it is back", func(ctx SpecContext) {
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		recs, _ := e.startLeaves(4, e.leafConfig(r.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())

		Expect(e.etcd.Kill(0)).To(Succeed())
		Eventually(r.syncer.Status).WithContext(ctx).WithTimeout(30 * time.Second).ShouldNot(Equal(messages.InSync))
		left := time.Now()
		for i, rec := range recs {
			Eventually(rec.Status).WithContext(ctx).WithTimeout(2*time.Second-time.Since(left)).
				ShouldNot(Equal(messages.InSync), "leaf %d", i)
		}
		Expect(e.etcd.Restart(0)).To(Succeed())
		_, err := e.keys.Set(ctx, prefix+"/after-outage", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	}, SpecTimeout(120*time.Second))

	It("carries the relay's cluster reset to the leaves, which converge on the new cluster", func(ctx SpecContext) {
		r := startRelay(e.relayConfig(), "127.0.0.1:0")
		recs, _ := e.startLeaves(3, e.leafConfig(r.url()))
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		stopping := e.leafConfig(r.url())
		stopping.OnClusterReset = supervisor.StopOnReset
		stopper, _ := startSyncer(stopping)

		Expect(e.etcd.Rebuild()).To(Succeed())
		var err error
		e.keys, err = e.etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		for i := range 50 {
			_, err := e.keys.Set(ctx, fmt.Sprintf("%s/host/h%d/k%d", prefix, i%5, i), "rebuilt", nil)
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(e.allInSync(ctx, recs)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
		Eventually(stopper.Done()).WithContext(ctx).Should(BeClosed(), "a leaf under StopOnReset stops")
		Expect(errors.Is(stopper.Err(), messages.ErrUpstreamReset) || errors.Is(stopper.Err(), messages.ErrClusterIDChanged)).
			To(BeTrue(), "got %v", stopper.Err())
	}, SpecTimeout(120*time.Second))
}
