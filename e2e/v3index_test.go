package e2e_test

import (
	"context"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

var _ = Describe("A v3 syncer's host", Label("etcd", "v3"), func() {
	It("gets a range delete in one batch: none ends inside one revision", func(ctx SpecContext) {
		etcd, err := etcdproc.StartCluster(1, etcdproc.Options{Output: GinkgoWriter, Version: etcdproc.V35})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		cli, err := etcd.Client()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cli.Close)
		v3Load(ctx, cli, "host", 10)

		// The batches as the host got them: Panic sees each one first.
		var mu sync.Mutex
		var batches [][]messages.Update
		rec := recorder.New()
		rec.Panic = func(us []messages.Update) bool {
			mu.Lock()
			defer mu.Unlock()
			batches = append(batches, slices.Clone(us))
			return false
		}
		cfg := loopback.Config(etcd.Endpoints()...)
		cfg.API, cfg.Logger = supervisor.APIv3, logger
		s, err := supervisor.Start(system, cfg, rec)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			Expect(s.Stop(ctx)).To(Succeed())
			rec.Close()
			Expect(rec.Violation()).NotTo(HaveOccurred())
		})
		inSync := func(g Gomega) {
			want, err := v3Map(ctx, cli)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rec.InSyncMap()).To(Equal(want))
		}
		Eventually(inSync).WithContext(ctx).Should(Succeed())

		resp, err := cli.Delete(ctx, prefix+"/host/", clientv3.WithPrefix())
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Deleted).To(BeEquivalentTo(10))
		Eventually(inSync).WithContext(ctx).Should(Succeed())
		rev := uint64(resp.Header.Revision)
		mu.Lock()
		defer mu.Unlock()
		for _, b := range batches {
			n := 0
			for _, u := range b {
				if u.Revision == rev {
					n++
				}
			}
			// A host in sync after some of them (a relay, which would
			// announce rev as a resume position) holds a state etcd
			// never had.
			Expect(n).To(Or(BeZero(), Equal(10)), "a batch with %d of revision %d's 10 deletions: %v", n, rev, b)
		}
	}, SpecTimeout(60*time.Second))
})
