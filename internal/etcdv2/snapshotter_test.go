package etcdv2_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/internal/etcdv2"
	m "github.com/etcdsync/etcdsync/messages"
)

// read runs one snapshot and returns what it saw.
func read(ctx context.Context, s etcdv2.Snapshotter, prefix string) (index uint64, id string, kvs map[string]m.KV, err error) {
	kvs = map[string]m.KV{}
	err = s.Snapshot(ctx, prefix, false,
		func(i uint64, c string) error { index, id = i, c; return nil },
		func(kv m.KV) { kvs[kv.Key] = kv })
	return index, id, kvs, err
}

var _ = Describe("HTTPSnapshotter", func() {
	When("reading a real etcd", Label("etcd"), Ordered, func() {
		var (
			etcd *etcdproc.Cluster
			keys client.KeysAPI
			snap *etcdv2.HTTPSnapshotter
		)
		BeforeAll(func(ctx SpecContext) {
			var err error
			etcd, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(etcd.Stop)
			keys, err = etcd.KeysAPI()
			Expect(err).NotTo(HaveOccurred())
			for i := range 500 {
				_, err := keys.Set(ctx, fmt.Sprintf("/snap/d%d/e%d/k%d", i%3, i%7, i), fmt.Sprintf(`{"i":%d,"s":"a\"b\\c\u00e9"}`, i), nil)
				Expect(err).NotTo(HaveOccurred())
			}
			_, err = keys.Set(ctx, "/snap/empty", "", nil)
			Expect(err).NotTo(HaveOccurred())
			_, err = keys.Set(ctx, "/snap/emptydir", "", &client.SetOptions{Dir: true})
			Expect(err).NotTo(HaveOccurred())
			// A dead endpoint first: the snapshotter moves on to the next.
			snap = &etcdv2.HTTPSnapshotter{KeysHTTP: &etcdv2.KeysHTTP{
				Endpoints: append([]string{"http://127.0.0.1:1"}, etcd.Endpoints()...), Client: http.DefaultClient}}
		})

		It("streams exactly what client/v2's GET and walk see", func(ctx SpecContext) {
			wantIdx, wantID, want, err := read(ctx, etcdv2.KeysSnapshotter{Keys: keys}, "/snap")
			Expect(err).NotTo(HaveOccurred())
			idx, id, got, err := read(ctx, snap, "/snap")
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(HaveLen(501))
			Expect(got).To(Equal(want))
			Expect(idx).To(Equal(wantIdx))
			Expect(id).To(Equal(wantID))
			Expect(id).NotTo(BeEmpty())
		})

		It("answers a missing prefix with etcd's key-not-found, index included", func(ctx SpecContext) {
			_, _, _, err := read(ctx, snap, "/nothing/here")
			var e client.Error
			Expect(errors.As(err, &e)).To(BeTrue(), "got %v", err)
			Expect(e.Code).To(Equal(client.ErrorCodeKeyNotFound))
			Expect(e.Index).To(BeNumerically(">", 500))
		})

		It("stops before any key when head refuses the index", func(ctx SpecContext) {
			stale := errors.New("stale")
			n := 0
			err := snap.Snapshot(ctx, "/snap", false, func(uint64, string) error { return stale }, func(m.KV) { n++ })
			Expect(err).To(MatchError(stale))
			Expect(n).To(BeZero())
		})
	})

	It("reports a member's 5xx and garbage as errors, not as snapshots", func(ctx SpecContext) {
		broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no leader", http.StatusInternalServerError)
		}))
		DeferCleanup(broken.Close)
		garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Etcd-Index", "7")
			_, _ = w.Write([]byte(`{"action":"get","node":{"key":"/p","dir":true,"nodes":[{"key":"/p/a","value":`))
		}))
		DeferCleanup(garbage.Close)
		// Cut right after a whole key: every key so far is complete, the
		// snapshot is not.
		cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Etcd-Index", "7")
			_, _ = w.Write([]byte(`{"action":"get","node":{"key":"/p","dir":true,"nodes":[{"key":"/p/a","value":"1","modifiedIndex":5}`))
		}))
		DeferCleanup(cut.Close)

		_, _, _, err := read(ctx, &etcdv2.HTTPSnapshotter{KeysHTTP: &etcdv2.KeysHTTP{Endpoints: []string{broken.URL}, Client: http.DefaultClient}}, "/p")
		var ce *client.ClusterError
		Expect(errors.As(err, &ce)).To(BeTrue(), "got %v", err)

		_, _, kvs, err := read(ctx, &etcdv2.HTTPSnapshotter{KeysHTTP: &etcdv2.KeysHTTP{Endpoints: []string{garbage.URL}, Client: http.DefaultClient}}, "/p")
		Expect(err).To(MatchError(ContainSubstring("decoding the snapshot")))
		Expect(kvs).To(BeEmpty())

		_, _, kvs, err = read(ctx, &etcdv2.HTTPSnapshotter{KeysHTTP: &etcdv2.KeysHTTP{Endpoints: []string{cut.URL}, Client: http.DefaultClient}}, "/p")
		Expect(err).To(MatchError(ContainSubstring("decoding the snapshot")))
		Expect(kvs).To(HaveLen(1), "keys read before the cut were delivered; the error says the snapshot is not whole")
	}, SpecTimeout(5*time.Second))
})
