package etcdsim_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

type result struct {
	resp *client.Response
	err  error
}

// nextAsync runs w.Next in a goroutine; its result arrives on the channel.
func nextAsync(ctx context.Context, w client.Watcher) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := w.Next(ctx)
		ch <- result{resp, err}
	}()
	return ch
}

var _ = Describe("Watcher", func() {
	var sim *etcdsim.Server
	BeforeEach(func() { sim = etcdsim.New() })

	It("returns the first event after AfterIndex, then goes on from its index", func(ctx SpecContext) {
		sim.Load(map[string]string{"/a": "1", "/b": "1"}) // 4, 5
		must(sim.Set(ctx, "/a", "2", nil))                // 6
		w := sim.Watcher("/", &client.WatcherOptions{AfterIndex: 4, Recursive: true})
		first := must(w.Next(ctx))
		Expect(first.Node.Key).To(Equal("/b"))
		Expect(first.Index).To(Equal(uint64(6)), "the store's index when the request started")
		Expect(first.ClusterID).To(Equal(etcdsim.DefaultClusterID))
		second := must(w.Next(ctx))
		Expect(second.Node.ModifiedIndex).To(Equal(uint64(6)))
		Expect(second.PrevNode.Value).To(Equal("1"))

		ch := nextAsync(ctx, w)
		Eventually(sim.WatchesInFlight).Should(Equal(1))
		Consistently(ch).ShouldNot(Receive())
		must(sim.Set(ctx, "/c", "1", nil))
		var r result
		Eventually(ch).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.resp.Node.Key).To(Equal("/c"))
		Expect(r.resp.Index).To(Equal(uint64(6)))
	}, SpecTimeout(10*time.Second))

	It("waits for the next event when AfterIndex is 0", func(ctx SpecContext) {
		must(sim.Set(ctx, "/k", "old", nil))
		ch := nextAsync(ctx, sim.Watcher("/k", nil))
		Eventually(sim.WatchesInFlight).Should(Equal(1))
		must(sim.Set(ctx, "/k", "new", nil))
		var r result
		Eventually(ch).Should(Receive(&r))
		Expect(r.resp.Action).To(Equal("set"))
		Expect(r.resp.Node.Value).To(Equal("new"))
		Expect(r.resp.Index).To(Equal(uint64(4)))
		Expect(sim.WatchesInFlight()).To(BeZero())
	}, SpecTimeout(10*time.Second))

	It("sees keys below its own only if recursive, hidden ones never while waiting", func(ctx SpecContext) {
		plain := nextAsync(ctx, sim.Watcher("/d", nil))
		recursive := nextAsync(ctx, sim.Watcher("/d", &client.WatcherOptions{Recursive: true}))
		Eventually(sim.WatchesInFlight).Should(Equal(2))
		must(sim.Set(ctx, "/d/_hidden", "h", nil))
		must(sim.Set(ctx, "/d/x", "1", nil))
		var r result
		Eventually(recursive).Should(Receive(&r))
		Expect(r.resp.Node.Key).To(Equal("/d/x"))
		Consistently(plain).ShouldNot(Receive())
	}, SpecTimeout(10*time.Second))

	It("sees a directory's deletion as one event, also from a key below it", func(ctx SpecContext) {
		sim.Load(map[string]string{"/d/a": "1", "/d/b": "2"})
		from := sim.Index()
		must(sim.Delete(ctx, "/d", &client.DeleteOptions{Recursive: true}))
		w := sim.Watcher("/d", &client.WatcherOptions{AfterIndex: from, Recursive: true})
		resp := must(w.Next(ctx))
		Expect(resp.Action).To(Equal("delete"))
		Expect(resp.Node).To(Equal(&client.Node{Key: "/d", Dir: true, CreatedIndex: 4, ModifiedIndex: 6}))
		below := must(sim.Watcher("/d/a", &client.WatcherOptions{AfterIndex: from}).Next(ctx))
		Expect(below.Node.Key).To(Equal("/d"))

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		Consistently(nextAsync(cctx, w)).ShouldNot(Receive(), "no event per child")
	}, SpecTimeout(10*time.Second))

	It("returns ctx.Err() when its context ends", func(ctx SpecContext) {
		cctx, cancel := context.WithCancel(ctx)
		ch := nextAsync(cctx, sim.Watcher("/k", nil))
		Eventually(sim.WatchesInFlight).Should(Equal(1))
		cancel()
		var r result
		Eventually(ch).Should(Receive(&r))
		Expect(r.err).To(Equal(context.Canceled))
		Eventually(sim.WatchesInFlight).Should(BeZero())
	}, SpecTimeout(10*time.Second))

	It("fails with 401 once its index left the 1000-event history", func(ctx SpecContext) {
		start := sim.Index()
		w := sim.Watcher("/", &client.WatcherOptions{AfterIndex: start, Recursive: true})
		for i := range etcdsim.HistorySize {
			must(sim.Set(ctx, "/k", fmt.Sprint(i), nil))
		}
		Expect(must(w.Next(ctx)).Node.ModifiedIndex).To(Equal(start+1), "the oldest event kept")

		late := sim.Watcher("/", &client.WatcherOptions{AfterIndex: start, Recursive: true})
		must(sim.Set(ctx, "/k", "one more", nil))
		_, err := late.Next(ctx)
		Expect(err).To(Equal(client.Error{
			Code:    client.ErrorCodeEventIndexCleared,
			Message: "The event in requested index is outdated and cleared",
			Cause:   fmt.Sprintf("the requested history has been cleared [%d/%d]", start+2, start+1),
			Index:   start + etcdsim.HistorySize + 1,
		}))
		Expect(must(w.Next(ctx)).Node.ModifiedIndex).To(Equal(start+2), "still inside")
	}, SpecTimeout(10*time.Second))

	It("serves many goroutines at once, every event in order", func(ctx SpecContext) {
		const writers, writes, watchers = 4, 100, 4
		start := sim.Index()
		var wg sync.WaitGroup
		seen := make([][]uint64, watchers)
		for i := range watchers {
			w := sim.Watcher("/c", &client.WatcherOptions{AfterIndex: start, Recursive: true})
			wg.Go(func() {
				defer GinkgoRecover()
				for range writers * writes {
					resp, err := w.Next(ctx)
					Expect(err).NotTo(HaveOccurred())
					seen[i] = append(seen[i], resp.Node.ModifiedIndex)
				}
			})
		}
		for i := range writers {
			wg.Go(func() {
				defer GinkgoRecover()
				for j := range writes {
					_, err := sim.Set(ctx, fmt.Sprintf("/c/w%d/k%d", i, j%7), "v", nil)
					Expect(err).NotTo(HaveOccurred())
					_, err = sim.Get(ctx, "/c", &client.GetOptions{Recursive: true})
					Expect(err).NotTo(HaveOccurred())
				}
			})
		}
		wg.Wait()
		want := make([]uint64, writers*writes)
		for i := range want {
			want[i] = start + 1 + uint64(i)
		}
		for i := range watchers {
			Expect(seen[i]).To(Equal(want))
		}
	}, SpecTimeout(20*time.Second))
})
