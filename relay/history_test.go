package relay_test

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Issue 22: etcd rebuilt with the same configuration has the same cluster
// ID (etcd derives it from the peer URLs and the cluster token) and a new
// history under the same revisions. A relay of it must not resume a client
// whose position names a state of the old history; a relay of the same
// history must, with deltas only.
var _ = Describe("resume positions across etcd histories", func() {
	const sameID = "c0ffee01"

	// newRelay serves a relay.Server whose upstream is a cluster named
	// sameID, and which has been through a resync to in-sync: the state a
	// relay is in once it has synced, whichever etcd it reads.
	newRelay := func() (*upstream, string) {
		GinkgoHelper()
		var id atomic.Pointer[string]
		c := sameID
		id.Store(&c)
		rs, base := startServer(relay.Config{PingInterval: time.Second, RetryAfter: time.Second}, &id) // pings: under the leaf's read timeout; a closed relay sends the leaf on in a second
		up := &upstream{rs: rs, keys: map[string]string{}}
		up.status(messages.WaitForDatastore)
		up.status(messages.Resync)
		return up, base
	}
	// twoHistories returns two relays whose etcds share the cluster ID and
	// the revisions of their last positions (3), and hold other keys
	// there: /k001 at revision 1 with another value, /k002 in one only.
	twoHistories := func() (old *upstream, oldURL string, rebuilt *upstream, rebuiltURL string) {
		GinkgoHelper()
		old, oldURL = newRelay()
		old.set(key(1), "a", key(2), "b")
		old.rs.OnStatusAt(messages.InSync, old.rev)
		old.set(key(3), "c")
		rebuilt, rebuiltURL = newRelay()
		rebuilt.set(key(1), "another a", key(4), "d")
		rebuilt.rs.OnStatusAt(messages.InSync, rebuilt.rev)
		rebuilt.set(key(5), "e")
		Expect(rebuilt.rev).To(Equal(old.rev), "the same revision names a state of either history")
		return old, oldURL, rebuilt, rebuiltURL
	}
	// sameHistory returns two relays of one etcd, given the same batches.
	sameHistory := func() (a *upstream, aURL string, b *upstream, bURL string) {
		GinkgoHelper()
		a, aURL = newRelay()
		b, bURL = newRelay()
		for _, u := range []*upstream{a, b} {
			u.set(key(1), "a", key(2), "b")
			u.rs.OnStatusAt(messages.InSync, u.rev)
		}
		return a, aURL, b, bURL
	}

	Describe("a client of the relay.Server", func() {
		It("at a position of one history, resuming on a relay of the rebuilt etcd, gets a snapshot of the new history", func(ctx SpecContext) {
			old, oldURL, rebuilt, rebuiltURL := twoHistories()
			c, resp := dial(ctx, oldURL, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(old.Map()))
			Eventually(func() uint64 { return c.mirror().Revision }).WithContext(ctx).Should(Equal(old.rev))
			resp.Body.Close()
			Eventually(c.ended).WithContext(ctx).Should(BeTrue())
			m := c.mirror()
			Expect(m.Digest).NotTo(BeEmpty(), "a position carries the digest of the view there")

			r, _ := dial(ctx, rebuiltURL, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(r.Map).WithContext(ctx).Should(Equal(rebuilt.Map()), "not the old history's keys")
			Expect(r.mirror().Resumed).To(BeFalse())
			Expect(r.Snapshots()).To(Equal(1))
			Expect(rebuilt.rs.Stats().Resumes).To(BeZero())
		}, SpecTimeout(10*time.Second))

		It("failing over to another relay of the same history, resumes with deltas only", func(ctx SpecContext) {
			a, aURL, b, bURL := sameHistory()
			c, resp := dial(ctx, aURL, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(a.Map()))
			resp.Body.Close()
			Eventually(c.ended).WithContext(ctx).Should(BeTrue())
			m := c.mirror()
			for _, u := range []*upstream{a, b} {
				u.set(key(3), "c")
				u.del(key(1))
			}

			r, _ := dial(ctx, bURL, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(r.Map).WithContext(ctx).Should(Equal(b.Map()))
			Expect(r.mirror().Resumed).To(BeTrue())
			Expect(r.Snapshots()).To(BeZero())
			Expect(b.rs.Stats().Resumes).To(BeEquivalentTo(1))
			Expect(b.rs.Stats().SnapshotsSent).To(BeZero())
		}, SpecTimeout(10*time.Second))

		It("that sends no digest (older than digests) gets a snapshot", func(ctx SpecContext) {
			a, aURL := newRelay()
			a.set(key(1), "a")
			a.rs.OnStatusAt(messages.InSync, a.rev)
			c, resp := dial(ctx, aURL, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(a.Map()))
			resp.Body.Close()
			Eventually(c.ended).WithContext(ctx).Should(BeTrue())
			m := c.mirror()
			m.Digest = "" // what an old client holds

			r, _ := dial(ctx, aURL, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(r.Map).WithContext(ctx).Should(Equal(a.Map()))
			Expect(r.Snapshots()).To(Equal(1))
			Expect(a.rs.Stats().Resumes).To(BeZero())
		}, SpecTimeout(10*time.Second))
	})

	Describe("a leaf (a syncer of relays)", func() {
		var system *actor.ActorSystem
		BeforeEach(func() {
			system = supervisor.NewSystem(slog.New(slog.NewTextHandler(GinkgoWriter, nil)))
			DeferCleanup(system.Shutdown)
		})
		startLeaf := func(relays ...string) *recorder.Recorder {
			GinkgoHelper()
			return startLeaf(system, nil, prefix, relays...)
		}

		It("failing over to a relay of etcd rebuilt with the same cluster ID, converges on the new history", func(ctx SpecContext) {
			old, oldURL, rebuilt, rebuiltURL := twoHistories()
			rec := startLeaf(rebuiltURL, oldURL) // starts at the old one
			Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(old.Map()))

			By("the old relay goes away: the leaf moves to the rebuilt etcd's")
			old.rs.Close()
			Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(rebuilt.Map()))
			Consistently(rec.InSyncMap).WithContext(ctx).WithTimeout(200 * time.Millisecond).Should(Equal(rebuilt.Map()))
			Expect(rebuilt.rs.Stats().Resumes).To(BeZero())
		}, SpecTimeout(30*time.Second))

		It("failing over to another relay of the same history, resumes with deltas only", func(ctx SpecContext) {
			a, aURL, b, bURL := sameHistory()
			rec := startLeaf(bURL, aURL) // starts at A
			Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(a.Map()))

			By("A goes away while both relays take a write")
			a.rs.Close()
			for _, u := range []*upstream{a, b} {
				u.set(key(3), "c")
				u.del(key(1))
			}
			Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(b.Map()))
			Eventually(func() uint64 { return b.rs.Stats().Resumes }).WithContext(ctx).Should(BeEquivalentTo(1))
			Expect(b.rs.Stats().SnapshotsSent).To(BeZero(), "a failover within one history is no snapshot")
		}, SpecTimeout(30*time.Second))
	})
})
