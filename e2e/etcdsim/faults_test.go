package etcdsim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

// refused matches the dial error client/v2 returns for a dead member.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(op, syscall.ECONNREFUSED)
}

// clusterError returns the errors inside a *client.ClusterError, or fails.
func clusterError(err error) []error {
	GinkgoHelper()
	var ce *client.ClusterError
	Expect(errors.As(err, &ce)).To(BeTrue(), "want a *client.ClusterError, got %T %v", err, err)
	return ce.Errors
}

var _ = Describe("Fault knobs", func() {
	var sim *etcdsim.Server
	BeforeEach(func() {
		sim = etcdsim.New()
		sim.Load(map[string]string{"/k": "1"}) // index 4
	})

	Describe("FreezeFollower", func() {
		BeforeEach(func(ctx SpecContext) {
			sim.FreezeFollower()
			DeferCleanup(sim.ReleaseFollower)
			must(sim.Set(ctx, "/k", "2", nil))
			must(sim.Set(ctx, "/n", "1", nil))
		})

		It("serves non-quorum reads from the past", func(ctx SpecContext) {
			resp := must(sim.Get(ctx, "/k", nil))
			Expect(resp.Node.Value).To(Equal("1"))
			Expect(resp.Index).To(Equal(uint64(4)))
			_, err := sim.Get(ctx, "/n", nil)
			Expect(err).To(Equal(client.Error{Code: 100, Message: "Key not found", Cause: "/n", Index: 4}))
		})

		It("serves quorum reads from the present", func(ctx SpecContext) {
			resp := must(sim.Get(ctx, "/k", &client.GetOptions{Quorum: true}))
			Expect(resp.Node.Value).To(Equal("2"))
			Expect(resp.Index).To(Equal(uint64(6)))
		})

		It("catches up on release", func(ctx SpecContext) {
			sim.ReleaseFollower()
			Expect(must(sim.Get(ctx, "/k", nil)).Index).To(Equal(uint64(6)))
		})
	})

	Describe("Disconnect", func() {
		It("fails every call as client/v2 does for a dead member, and counts them", func(ctx SpecContext) {
			sim.Disconnect()
			before := sim.Calls()
			_, err := sim.Get(ctx, "/k", nil)
			Expect(clusterError(err)).To(ConsistOf(Satisfy(refused)))
			_, err = sim.Set(ctx, "/k", "2", nil)
			Expect(clusterError(err)).To(ConsistOf(Satisfy(refused)))
			_, err = sim.Update(ctx, "/k", "2")
			Expect(clusterError(err)).To(ConsistOf(Satisfy(refused)))
			_, err = sim.Watcher("/k", nil).Next(ctx)
			Expect(clusterError(err)).To(ConsistOf(Satisfy(refused)))
			// One-shot requests return the dial error itself.
			_, err = sim.Create(ctx, "/new", "1")
			Expect(err).To(Satisfy(refused))
			_, err = sim.Delete(ctx, "/k", nil)
			Expect(err).To(Satisfy(refused))
			Expect(err.Error()).To(Equal("dial tcp 127.0.0.1:2379: connect: connection refused"))

			Expect(sim.Calls() - before).To(Equal(uint64(6)))
			Expect(sim.Calls(etcdsim.OpWatch)).To(Equal(uint64(1)))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/k": "1"}), "nothing happened")

			sim.Reconnect()
			Expect(must(sim.Get(ctx, "/k", nil)).Node.Value).To(Equal("1"))
		})

		It("fails only the kinds named, and cuts waiting watches", func(ctx SpecContext) {
			ch := nextAsync(ctx, sim.Watcher("/k", nil))
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.Disconnect(etcdsim.OpWatch)
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(clusterError(r.err)).To(Equal([]error{io.ErrUnexpectedEOF}))
			_, err := sim.Watcher("/k", nil).Next(ctx)
			Expect(clusterError(err)).To(ConsistOf(Satisfy(refused)))
			must(sim.Get(ctx, "/k", nil))
			must(sim.Set(ctx, "/k", "2", nil))
			Expect(sim.Calls(etcdsim.OpWatch)).To(Equal(uint64(2)))
			Expect(sim.Calls(etcdsim.OpGet, etcdsim.OpSet)).To(Equal(uint64(2)))
		})

		It("names its endpoint", func(ctx SpecContext) {
			sim = etcdsim.NewWithConfig(etcdsim.Config{Endpoint: "http://127.0.0.1:4001"})
			sim.Disconnect(etcdsim.OpDelete)
			_, err := sim.Delete(ctx, "/k", nil)
			Expect(err).To(MatchError(ContainSubstring("dial tcp 127.0.0.1:4001")))
		})
	})

	Describe("CutWatches", func() {
		It("breaks waiting watches once; the watcher then resumes where it was", func(ctx SpecContext) {
			w := sim.Watcher("/k", nil)
			ch := nextAsync(ctx, w)
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.CutWatches()
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(clusterError(r.err)).To(Equal([]error{io.ErrUnexpectedEOF}))
			Expect(r.err.Error()).To(ContainSubstring("unexpected EOF"))

			ch = nextAsync(ctx, w)
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			must(sim.Set(ctx, "/k", "2", nil))
			Eventually(ch).Should(Receive(&r))
			Expect(r.err).NotTo(HaveOccurred())
			Expect(r.resp.Node.Value).To(Equal("2"))
		})
	})

	Describe("HoldWatches", func() {
		BeforeEach(func() {
			sim.HoldWatches()
			DeferCleanup(sim.ReleaseWatches)
		})

		It("holds back events that are there until release", func(ctx SpecContext) {
			w := sim.Watcher("/k", &client.WatcherOptions{AfterIndex: 3})
			ch := nextAsync(ctx, w)
			Consistently(ch).ShouldNot(Receive())
			sim.ReleaseWatches()
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(r.resp.Node.Value).To(Equal("1"))
		})

		It("makes the next request fail with 401 after a burst of more than 1000 writes", func(ctx SpecContext) {
			w := sim.Watcher("/", &client.WatcherOptions{AfterIndex: sim.Index(), Recursive: true})
			ch := nextAsync(ctx, w)
			for i := range etcdsim.HistorySize + 1 {
				must(sim.Set(ctx, "/burst", fmt.Sprint(i), nil))
			}
			Consistently(ch).ShouldNot(Receive())
			sim.ReleaseWatches()
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(r.err).To(MatchError(client.Error{
				Code:    401,
				Message: "The event in requested index is outdated and cleared",
				Cause:   "the requested history has been cleared [6/5]",
				Index:   4 + etcdsim.HistorySize + 1,
			}))
		})

		It("holds back a response already on its way, and the next request then fails", func(ctx SpecContext) {
			sim.ReleaseWatches()
			w := sim.Watcher("/", &client.WatcherOptions{Recursive: true})
			ch := nextAsync(ctx, w)
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.HoldWatches()
			// The first write is the answer; after it, 1001 more push the
			// next index out.
			for i := range etcdsim.HistorySize + 2 {
				must(sim.Set(ctx, "/burst", fmt.Sprint(i), nil))
			}
			Consistently(ch).ShouldNot(Receive())
			sim.ReleaseWatches()
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(r.err).NotTo(HaveOccurred())
			Expect(r.resp.Node.ModifiedIndex).To(Equal(uint64(5)))
			_, err := w.Next(ctx)
			Expect(err).To(MatchError(client.Error{
				Code:    401,
				Message: "The event in requested index is outdated and cleared",
				Cause:   "the requested history has been cleared [7/6]",
				Index:   4 + etcdsim.HistorySize + 2,
			}))
		})
	})

	Describe("Reset", func() {
		It("starts a new cluster: new ID, small index, new content, watches cut", func(ctx SpecContext) {
			ch := nextAsync(ctx, sim.Watcher("/k", nil))
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.Reset("", map[string]string{"/new": "1"})

			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(clusterError(r.err)).To(Equal([]error{io.ErrUnexpectedEOF}))
			Expect(sim.ClusterID()).NotTo(Equal(etcdsim.DefaultClusterID))
			Expect(sim.ClusterID()).To(MatchRegexp("^[0-9a-f]{16}$"))
			Expect(sim.Index()).To(Equal(uint64(etcdsim.DefaultStartIndex + 1)))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/new": "1"}))
			resp := must(sim.Get(ctx, "/new", nil))
			Expect(resp.ClusterID).To(Equal(sim.ClusterID()))
			_, err := sim.Get(ctx, "/k", nil)
			Expect(err).To(Equal(client.Error{Code: 100, Message: "Key not found", Cause: "/k", Index: 4}))
		})

		It("derives cluster IDs from the seed, or takes one", func() {
			other := etcdsim.New()
			sim.Reset("", nil)
			other.Reset("", nil)
			Expect(sim.ClusterID()).To(Equal(other.ClusterID()))
			first := sim.ClusterID()
			sim.Reset("", nil)
			Expect(sim.ClusterID()).NotTo(Equal(first))
			sim.Reset("0123456789abcdef", nil)
			Expect(sim.ClusterID()).To(Equal("0123456789abcdef"))
		})
	})

	Describe("Backup and Restore", func() {
		var b *etcdsim.Backup
		BeforeEach(func(ctx SpecContext) {
			b = sim.Backup()
			must(sim.Set(ctx, "/k", "2", nil))
			must(sim.Set(ctx, "/later", "1", nil))
		})

		It("go back in time under the same cluster ID", func(ctx SpecContext) {
			Expect(b.Index()).To(Equal(uint64(4)))
			sim.Restore(b)
			Expect(sim.Index()).To(Equal(uint64(4)))
			Expect(sim.ClusterID()).To(Equal(etcdsim.DefaultClusterID))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/k": "1"}))
			must(sim.Set(ctx, "/k", "3", nil))
			sim.Restore(b)
			Expect(sim.Map("/")).To(Equal(map[string]string{"/k": "1"}), "restorable again")
		})

		It("leave a watch waiting beyond the restored head waiting, until the index comes round", func(ctx SpecContext) {
			ch := nextAsync(ctx, sim.Watcher("/", &client.WatcherOptions{AfterIndex: sim.Index(), Recursive: true}))
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.Restore(b)
			must(sim.Set(ctx, "/x", "1", nil)) // 5
			must(sim.Set(ctx, "/y", "1", nil)) // 6
			Consistently(ch).ShouldNot(Receive(), "silently missing the writes in between")
			must(sim.Set(ctx, "/z", "1", nil)) // 7
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(r.resp.Node.Key).To(Equal("/z"))
		})

		It("keep TTLs counting", func(ctx SpecContext) {
			must(sim.Set(ctx, "/ttl", "v", &client.SetOptions{TTL: time.Second}))
			b = sim.Backup()
			must(sim.Delete(ctx, "/ttl", nil))
			sim.Restore(b)
			Expect(sim.Map("/")).To(HaveKey("/ttl"))
			sim.Advance(time.Second)
			Expect(sim.Map("/")).NotTo(HaveKey("/ttl"))
		})
	})

	Describe("Restart", func() {
		It("cuts watches and takes an index, keeping content and cluster ID", func(ctx SpecContext) {
			w := sim.Watcher("/", &client.WatcherOptions{AfterIndex: sim.Index(), Recursive: true})
			ch := nextAsync(ctx, w)
			Eventually(sim.WatchesInFlight).Should(Equal(1))
			sim.Restart()
			var r result
			Eventually(ch).Should(Receive(&r))
			Expect(clusterError(r.err)).To(Equal([]error{io.ErrUnexpectedEOF}))
			Expect(sim.Index()).To(Equal(uint64(5)))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/k": "1"}))
			Expect(sim.ClusterID()).To(Equal(etcdsim.DefaultClusterID))

			must(sim.Set(ctx, "/k", "2", nil))
			Expect(must(w.Next(ctx)).Node.ModifiedIndex).To(Equal(uint64(6)), "the restart is no event")
		})
	})

	It("count calls by kind", func(ctx context.Context) {
		before := sim.Calls()
		must(sim.Get(ctx, "/k", nil))
		must(sim.Set(ctx, "/k", "2", nil))
		must(sim.CreateInOrder(ctx, "/q", "v", nil))
		must(sim.Delete(ctx, "/k", nil))
		Expect(sim.Calls(etcdsim.OpGet)).To(Equal(uint64(1)))
		Expect(sim.Calls(etcdsim.OpSet)).To(Equal(uint64(2)), "Load is not a call")
		Expect(sim.Calls(etcdsim.OpDelete)).To(Equal(uint64(1)))
		Expect(sim.Calls() - before).To(Equal(uint64(4)))
		Expect(etcdsim.OpWatch.String()).To(Equal("watch"))
	})
})
