package etcdv2_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/internal/etcdv2"
	"github.com/etcdsync/etcdsync/internal/source"
)

// event is what a spec compares of a watch response.
type event struct {
	Action, Key, Value string
	Index              uint64
}

func next(ctx context.Context, w client.Watcher) event {
	GinkgoHelper()
	r, err := w.Next(ctx)
	Expect(err).NotTo(HaveOccurred())
	return event{r.Action, r.Node.Key, r.Node.Value, r.Node.ModifiedIndex}
}

var _ = Describe("StreamWatches", Label("etcd"), Ordered, func() {
	var (
		etcd  *etcdproc.Cluster
		keys  client.KeysAPI
		proxy *tcpproxy.Proxy
		sw    *etcdv2.StreamWatches
	)
	BeforeAll(func() {
		var err error
		etcd, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		keys, err = etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		proxy, err = tcpproxy.New(strings.TrimPrefix(etcd.Endpoints()[0], "http://"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(proxy.Close)
		sw = &etcdv2.StreamWatches{KeysHTTP: &etcdv2.KeysHTTP{Endpoints: []string{proxy.URL()}, Client: &http.Client{}}}
	})

	It("sees what client/v2 sees, catching up from history one request per event, then streaming", func(ctx SpecContext) {
		ctx2, cancel := context.WithCancel(ctx)
		DeferCleanup(cancel)
		start, err := keys.Set(ctx, "/w/start", "0", nil)
		Expect(err).NotTo(HaveOccurred())
		after := start.Node.ModifiedIndex
		for i := range 20 { // history
			_, err := keys.Set(ctx, fmt.Sprintf("/w/d/k%d", i%5), fmt.Sprint(i), nil)
			Expect(err).NotTo(HaveOccurred())
		}
		_, err = keys.Delete(ctx, "/w/d", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())

		opts := &client.WatcherOptions{AfterIndex: after, Recursive: true}
		theirs, ours := keys.Watcher("/w", opts), sw.Watcher("/w", opts)
		for range 21 {
			Expect(next(ctx2, ours)).To(Equal(next(ctx2, theirs)))
		}
		conns := proxy.Accepted()
		for i := range 100 { // live, after catching up
			_, err := keys.Set(ctx, fmt.Sprintf("/w/live/k%d", i), fmt.Sprint(i), nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(next(ctx2, ours)).To(Equal(next(ctx2, theirs)))
		}
		Expect(proxy.Accepted()-conns).To(BeNumerically("<=", 2), "100 live events over one stream")
	})

	It("answers an index out of the event window with client/v2's 401", func(ctx SpecContext) {
		for i := range 1010 {
			_, err := keys.Set(ctx, "/w/burst", fmt.Sprint(i), nil)
			Expect(err).NotTo(HaveOccurred())
		}
		_, err := sw.Watcher("/w", &client.WatcherOptions{AfterIndex: 1, Recursive: true}).Next(ctx)
		var e client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "got %v", err)
		Expect(e.Code).To(Equal(client.ErrorCodeEventIndexCleared))
		Expect(etcdv2.ClassifyWatchError(err)).To(Equal(source.LostSync))
	})

	It("reports a cut stream as a retryable transport error, and resumes from its index", func(ctx SpecContext) {
		resp, err := keys.Get(ctx, "/", &client.GetOptions{Quorum: true})
		Expect(err).NotTo(HaveOccurred())
		w := sw.Watcher("/w", &client.WatcherOptions{AfterIndex: resp.Index, Recursive: true})
		_, err = keys.Set(ctx, "/w/a", "1", nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(next(ctx, w).Key).To(Equal("/w/a"))
		proxy.CutAll()
		_, err = keys.Set(ctx, "/w/b", "2", nil)
		Expect(err).NotTo(HaveOccurred())
		var got []string
		for len(got) == 0 || got[len(got)-1] != "/w/b" {
			r, err := w.Next(ctx)
			if err != nil {
				Expect(etcdv2.ClassifyWatchError(err)).To(Equal(source.Retry), "got %v", err)
				continue
			}
			got = append(got, r.Node.Key)
		}
		Expect(got).To(Equal([]string{"/w/b"}), "nothing lost, nothing twice")
	})
})
