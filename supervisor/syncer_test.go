package supervisor_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

var _ = Describe("Syncer on a real etcd", Label("etcd"), Ordered, func() {
	var (
		etcd *etcdproc.Cluster
		keys client.KeysAPI
	)

	BeforeAll(func() {
		var err error
		etcd, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		keys, err = etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
	})

	It("reaches in-sync on an empty etcd, then follows writes and deletes", func(ctx SpecContext) {
		rec := recorder.New()
		cfg := loopback.Config(etcd.Endpoints()...)
		cfg.Prefix = "/smoke"
		cfg.Logger = logger
		s, err := supervisor.Start(system, cfg, rec)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			Expect(s.Stop(ctx)).To(Succeed())
		})

		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{}))
		Expect(rec.Statuses()).To(Equal([]messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync}))

		_, err = keys.Set(ctx, "/smoke/a", "1", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = keys.Set(ctx, "/smoke/d/b", "2", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(rec.Map).WithContext(ctx).Should(Equal(map[string]string{"/smoke/a": "1", "/smoke/d/b": "2"}))

		_, err = keys.Delete(ctx, "/smoke/d", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		Eventually(rec.Map).WithContext(ctx).Should(Equal(map[string]string{"/smoke/a": "1"}))
		Expect(rec.Violation()).NotTo(HaveOccurred())
		Expect(s.Status()).To(Equal(messages.InSync))
	}, SpecTimeout(30*time.Second))
})
