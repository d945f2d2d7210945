package e2e_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// datastoreResetSpecs: the cluster is wiped and rebuilt, or its data dir
// restored from an older copy, and the syncer notices and resyncs.
func datastoreResetSpecs(re realEtcd) {
	When("the cluster is wiped and rebuilt with other content", func() {
		var (
			etcd   *etcdproc.Cluster
			keys   client.KeysAPI
			resets *resetCounter
			cfg    supervisor.Config
		)
		BeforeEach(func(ctx SpecContext) {
			etcd = re.startEtcd(1)
			keys = re.writer(etcd)
			load(ctx, keys, 200, 4)
			resets = &resetCounter{}
			cfg = re.config(etcd.Endpoints()...)
			cfg.Observer = resets
		})
		rebuild := func(ctx context.Context) {
			GinkgoHelper()
			Expect(etcd.Rebuild()).To(Succeed())
			keys = re.writer(etcd)
			for i := range 50 {
				_, err := keys.Set(ctx, fmt.Sprintf("%s/host/h%d/k%d", prefix, i%5, i), "rebuilt", nil)
				Expect(err).NotTo(HaveOccurred())
			}
		}

		It("under ResyncOnReset, converges on the new cluster and counts the reset", func(ctx SpecContext) {
			_, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(200))
			rebuild(ctx)
			Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			Expect(resets.n.Load()).To(BeNumerically(">=", 1))
		}, SpecTimeout(60*time.Second))

		It("under StopOnReset, hands the host the error and delivers nothing more", func(ctx SpecContext) {
			cfg.OnClusterReset = supervisor.StopOnReset
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(200))
			rebuild(ctx)
			Eventually(s.Done()).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeClosed())
			Expect(s.Err()).To(MatchError(messages.ErrClusterIDChanged))
			calls, _ := rec.Calls()
			_, err := keys.Set(ctx, prefix+"/later", "x", nil)
			Expect(err).NotTo(HaveOccurred())
			Consistently(func() int { c, _ := rec.Calls(); return c }).WithTimeout(500 * time.Millisecond).Should(Equal(calls))
		}, SpecTimeout(60*time.Second))
	})

	It("detects a data dir restored from an older copy and resyncs from it", func(ctx SpecContext) {
		etcd := re.startEtcd(1)
		keys := re.writer(etcd)
		load(ctx, keys, 100, 4)
		backup, err := etcd.Backup()
		Expect(err).NotTo(HaveOccurred())
		load(ctx, keys, 300, 4) // after the backup: the restore loses them
		resets := &resetCounter{}
		cfg := re.config(etcd.Endpoints()...)
		cfg.Observer = resets
		_, rec := startSyncer(cfg)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(300))

		Expect(etcd.Restore(backup)).To(Succeed())
		keys = re.writer(etcd)
		Eventually(re.inSyncWith(ctx, keys, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(rec.InSyncMap()).To(HaveLen(100))
		Expect(resets.n.Load()).To(BeNumerically(">=", 1))
	}, SpecTimeout(60*time.Second))
}
