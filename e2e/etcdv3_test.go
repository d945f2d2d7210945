package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// The v3 source on real etcd processes, 3.5 (bin/etcd) and 3.7
// (bin/etcd37, which serves no v2 API): every spec runs on both and ends
// with the host's map checked against a linearizable read.
var _ = Describe("Syncer on real etcd, API v3", Label("etcd", "v3"), func() {
	for _, v := range []etcdproc.Version{etcdproc.V35, etcdproc.V37} {
		Context(fmt.Sprintf("on etcd %v", v), func() { v3Specs(v) })
	}
})

// v3Observer counts resyncs and remembers the highest etcd revision the
// syncer reported seeing.
type v3Observer struct {
	supervisor.NopObserver
	resyncs atomic.Int64
	etcdRev atomic.Uint64
}

func (o *v3Observer) Resync(string) { o.resyncs.Add(1) }
func (o *v3Observer) EtcdIndex(i uint64) {
	for {
		cur := o.etcdRev.Load()
		if i <= cur || o.etcdRev.CompareAndSwap(cur, i) {
			return
		}
	}
}

// v3Map returns every key and value under prefix+"/", by a linearizable read.
func v3Map(ctx context.Context, cli *clientv3.Client) (map[string]string, error) {
	return v3MapOf(ctx, cli, prefix)
}

// v3Load puts n keys under prefix/host/..., 128 to a txn.
func v3Load(ctx context.Context, cli *clientv3.Client, dir string, n int) {
	GinkgoHelper()
	for i := 0; i < n; i += 128 {
		var ops []clientv3.Op
		for j := i; j < min(n, i+128); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/%s/h%d/k%d", prefix, dir, j%10, j), fmt.Sprint("v", j)))
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		Expect(err).NotTo(HaveOccurred())
	}
}

func v3Specs(version etcdproc.Version) {
	config := func(endpoints ...string) supervisor.Config {
		cfg := loopback.Config(endpoints...)
		cfg.API = supervisor.APIv3
		return cfg
	}
	startEtcdWith := func(members int, opts etcdproc.Options) *etcdproc.Cluster {
		GinkgoHelper()
		opts.Output, opts.Version = GinkgoWriter, version
		c, err := etcdproc.StartCluster(members, opts)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		return c
	}
	startEtcd := func(members int) *etcdproc.Cluster { return startEtcdWith(members, etcdproc.Options{}) }
	clientOf := func(c *etcdproc.Cluster) *clientv3.Client {
		GinkgoHelper()
		cli, err := c.Client()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cli.Close)
		return cli
	}
	proxy := func(c *etcdproc.Cluster, member int) *tcpproxy.Proxy {
		GinkgoHelper()
		p, err := tcpproxy.New(strings.TrimPrefix(c.Endpoints()[member], "http://"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(p.Close)
		return p
	}
	inSyncWith := func(ctx context.Context, cli *clientv3.Client, rec *recorder.Recorder) func(Gomega) {
		return func(g Gomega) {
			want, err := v3Map(ctx, cli)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rec.InSyncMap()).To(Equal(want))
		}
	}
	firstSync := []messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync}
	// syncedThroughProxy starts one member holding n keys and a syncer
	// (configured further by tune, if not nil) that reaches it through a
	// proxy and reports to an observer, and waits for it to be in sync.
	syncedThroughProxy := func(ctx context.Context, n int, tune func(*supervisor.Config)) (
		*etcdproc.Cluster, *clientv3.Client, *tcpproxy.Proxy, *v3Observer, *recorder.Recorder) {
		GinkgoHelper()
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", n)
		p := proxy(etcd, 0)
		obs := &v3Observer{}
		cfg := config(p.URL())
		cfg.Observer = obs
		if tune != nil {
			tune(&cfg)
		}
		_, rec := startSyncer(cfg)
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		return etcd, cli, p, obs, rec
	}

	It("follows puts, deletes, prefix deletes, txns and lease expiries, and keeps to the prefix", func(ctx SpecContext) {
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 600)
		// Outside the view: the prefix's own key, and a sibling that
		// shares its first bytes.
		for _, k := range []string{prefix, prefix + "x/a", strings.TrimSuffix(prefix, "1") + "2/a"} {
			_, err := cli.Put(ctx, k, "outside")
			Expect(err).NotTo(HaveOccurred())
		}
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveLen(600))

		By("writing, deleting, deleting ranges, running txns and leasing keys while in sync")
		// One lease for many keys: its expiry deletes them all in one
		// revision.
		shared, err := cli.Grant(ctx, 2)
		Expect(err).NotTo(HaveOccurred())
		for i := range 50 {
			_, err := cli.Put(ctx, fmt.Sprintf("%s/leased/k%d", prefix, i), "leased", clientv3.WithLease(shared.ID))
			Expect(err).NotTo(HaveOccurred())
		}
		r := rand.New(rand.NewPCG(3, 4))
		for i := range 1500 {
			k := fmt.Sprintf("%s/host/h%d/k%d", prefix, r.IntN(10), r.IntN(700))
			switch r.IntN(10) {
			case 0:
				_, err = cli.Delete(ctx, k)
			case 1:
				var lease *clientv3.LeaseGrantResponse
				if lease, err = cli.Grant(ctx, 2); err == nil {
					_, err = cli.Put(ctx, k, "leased", clientv3.WithLease(lease.ID))
				}
			case 2:
				_, err = cli.Txn(ctx).Then(clientv3.OpPut(k, fmt.Sprint("txn", i)), clientv3.OpDelete(k+"0"),
					clientv3.OpPut(k+"1", fmt.Sprint("txn", i))).Commit()
			case 3:
				if i%100 == 0 {
					_, err = cli.Delete(ctx, fmt.Sprintf("%s/host/h%d/", prefix, r.IntN(10)), clientv3.WithPrefix())
				}
			default:
				_, err = cli.Put(ctx, k, fmt.Sprint(i))
			}
			Expect(err).NotTo(HaveOccurred())
		}
		By("a key and a key below it are two keys: deleting one keeps the other")
		for _, k := range []string{prefix + "/d", prefix + "/d/e"} {
			_, err := cli.Put(ctx, k, "both")
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(prefix + "/d/e"))
		_, err = cli.Delete(ctx, prefix+"/d")
		Expect(err).NotTo(HaveOccurred())

		By("waiting for the lease to expire")
		Eventually(func(g Gomega) {
			m, err := v3Map(ctx, cli)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).NotTo(ContainElement("leased"))
		}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveKeyWithValue(prefix+"/d/e", "both"))
		Expect(rec.Map()).NotTo(HaveKey(prefix + "/d"))
		Expect(rec.Statuses()).To(HaveExactElements(firstSync))
	}, SpecTimeout(90*time.Second))

	It("is carried by a relay unchanged, its leaves resuming by revision across a relay restart", func(ctx SpecContext) {
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 200)
		r := startRelay(config(etcd.Endpoints()...), "127.0.0.1:0")
		leaf := loopback.Config()
		leaf.Endpoints, leaf.Relays, leaf.RelayReadTimeout = nil, []string{r.url()}, 3*time.Second
		counter := &leafCounter{}
		leaf.Observer = counter
		_, rec := startSyncer(leaf)
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())

		By("a key and a key below it stay two keys at the leaf")
		for _, k := range []string{prefix + "/d", prefix + "/d/e"} {
			_, err := cli.Put(ctx, k, "both")
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(rec.Map).WithContext(ctx).Should(HaveKey(prefix + "/d/e"))
		_, err := cli.Delete(ctx, prefix+"/d")
		Expect(err).NotTo(HaveOccurred())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveKey(prefix + "/d/e"))

		By("restarting the relay: the leaf resumes, and hears only of the key written meanwhile")
		_, before := rec.Calls()
		r.stop(ctx)
		_, err = cli.Put(ctx, prefix+"/while-down", "x")
		Expect(err).NotTo(HaveOccurred())
		startRelay(config(etcd.Endpoints()...), r.addr)
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		_, after := rec.Calls()
		Expect(after - before).To(Equal(1))
		Expect(counter.streams.Load()).To(BeNumerically(">=", 2))
	}, SpecTimeout(90*time.Second))

	It("reaches in-sync on an empty prefix", func(ctx SpecContext) {
		etcd := startEtcd(1)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.Status).WithContext(ctx).Should(Equal(messages.InSync))
		Expect(rec.Map()).To(BeEmpty())
	}, SpecTimeout(30*time.Second))

	It("resyncs when its revision is compacted while it is held back, and converges", func(ctx SpecContext) {
		etcd, cli, p, obs, rec := syncedThroughProxy(ctx, 100, nil)

		By("holding the syncer back while keys change and etcd compacts its history")
		p.Pause()
		for i := range 300 {
			k := fmt.Sprintf("%s/host/h%d/k%d", prefix, i%10, i%150)
			var err error
			if i%3 == 0 {
				_, err = cli.Delete(ctx, k)
			} else {
				_, err = cli.Put(ctx, k, fmt.Sprint("held", i))
			}
			Expect(err).NotTo(HaveOccurred())
		}
		rev, err := etcd.Revision()
		Expect(err).NotTo(HaveOccurred())
		Expect(etcd.Compact(rev)).To(Succeed())
		p.CutAll() // the watch must resume from its revision, which is gone
		p.Resume()

		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(obs.resyncs.Load()).To(BeNumerically(">=", 2), "the compaction was a resync")
		Expect(rec.Violation()).NotTo(HaveOccurred())
	}, SpecTimeout(60*time.Second))

	It("keeps a quiet prefix's position through a compaction driven by writes elsewhere: no resync", func(ctx SpecContext) {
		etcd, cli, p, obs, rec := syncedThroughProxy(ctx, 10, func(cfg *supervisor.Config) {
			cfg.ClusterIDPollInterval = time.Hour // only the watch's progress reports etcd's revision
		})

		for i := range 200 {
			_, err := cli.Put(ctx, fmt.Sprintf("/elsewhere/k%d", i%20), fmt.Sprint(i))
			Expect(err).NotTo(HaveOccurred())
		}
		rev, err := etcd.Revision()
		Expect(err).NotTo(HaveOccurred())
		By("waiting for a progress notification to carry the watch to etcd's revision")
		Eventually(obs.etcdRev.Load).WithContext(ctx).Should(BeNumerically(">=", uint64(rev)))
		Expect(etcd.Compact(rev)).To(Succeed())
		p.CutAll() // the watch resumes from its position, which the compaction kept

		_, err = cli.Put(ctx, prefix+"/after", "compaction")
		Expect(err).NotTo(HaveOccurred())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveKey(prefix + "/after"))
		Expect(rec.Statuses()).To(HaveExactElements(firstSync))
		Expect(obs.resyncs.Load()).To(BeEquivalentTo(1), "only the first snapshot")
	}, SpecTimeout(60*time.Second))

	It("converges after one delete of 2×10^4 keys", func(ctx SpecContext) {
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "big", 20_000)
		v3Load(ctx, cli, "host", 10)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(20_010))

		// A bare watch measures the largest response the delete makes:
		// one revision is never split, so it must fit the client's
		// receive limit (clientv3's default is math.MaxInt32).
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		largest := make(chan int, 1)
		wch := cli.Watch(wctx, prefix+"/big/", clientv3.WithPrefix())
		go func() {
			defer GinkgoRecover()
			for wr := range wch {
				if len(wr.Events) > 0 {
					size := 0
					for _, ev := range wr.Events {
						size += ev.Kv.Size()
					}
					largest <- size
					return
				}
			}
		}()
		resp, err := cli.Delete(ctx, prefix+"/big/", clientv3.WithPrefix())
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Deleted).To(BeEquivalentTo(20_000))
		var size int
		Eventually(largest).WithContext(ctx).Should(Receive(&size))
		GinkgoWriter.Printf("the delete's watch response: %d bytes of events\n", size)
		Expect(size).To(BeNumerically("<", 4<<20))
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveLen(10))
		Expect(rec.Statuses()).To(HaveExactElements(firstSync))
	}, SpecTimeout(90*time.Second))

	It("sends nothing for unchanged keys when etcd restarts on the same data", func(ctx SpecContext) {
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 100)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		_, before := rec.Calls()

		Expect(etcd.RestartAll()).To(Succeed())
		_, err := cli.Put(ctx, prefix+"/after", "restart")
		Expect(err).NotTo(HaveOccurred())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		_, after := rec.Calls()
		Expect(after-before).To(Equal(1), "only the key written after the restart")
	}, SpecTimeout(60*time.Second))

	It("resyncs to the restored contents when etcd is restored from an older data dir", func(ctx SpecContext) {
		etcd := startEtcd(1)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 50)
		backup, err := etcd.Backup()
		Expect(err).NotTo(HaveOccurred())
		v3Load(ctx, cli, "later", 50)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(100))

		Expect(etcd.Restore(backup)).To(Succeed())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())
		Expect(rec.Map()).To(HaveLen(50))
		Expect(rec.Statuses()).To(ContainElement(messages.WaitForDatastore), "a reset: revisions start over")
	}, SpecTimeout(60*time.Second))

	for _, policy := range []supervisor.ResetPolicy{supervisor.ResyncOnReset, supervisor.StopOnReset} {
		It(fmt.Sprintf("follows the %v policy when etcd is wiped and rebuilt", policy), func(ctx SpecContext) {
			etcd := startEtcd(1)
			cli := clientOf(etcd)
			v3Load(ctx, cli, "host", 50)
			cfg := config(etcd.Endpoints()...)
			cfg.OnClusterReset = policy
			s, rec := startSyncer(cfg)
			Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(50))

			Expect(etcd.Rebuild()).To(Succeed())
			fresh := clientOf(etcd)
			v3Load(ctx, fresh, "rebuilt", 20)
			if policy == supervisor.StopOnReset {
				Eventually(s.Done()).WithContext(ctx).Should(BeClosed())
				Expect(s.Err()).To(MatchError(messages.ErrClusterIDChanged))
				return
			}
			Eventually(inSyncWith(ctx, fresh, rec)).WithContext(ctx).Should(Succeed())
			Expect(rec.Map()).To(HaveLen(20))
		}, SpecTimeout(60*time.Second))
	}

	It("rides out the loss of the leader of a 3-member cluster", Serial, func(ctx SpecContext) {
		etcd := startEtcd(3)
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 100)
		_, rec := startSyncer(config(etcd.Endpoints()...))
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())

		leader, err := etcd.Leader()
		Expect(err).NotTo(HaveOccurred())
		Expect(etcd.Kill(leader)).To(Succeed())
		var others []int
		for i := range 3 {
			if i != leader {
				others = append(others, i)
			}
		}
		live, err := etcd.ClientOf(others...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(live.Close)
		Eventually(func() error {
			_, err := live.Put(ctx, prefix+"/after", "leader loss")
			return err
		}).WithContext(ctx).Should(Succeed())
		v3Load(ctx, live, "after", 50)
		Eventually(inSyncWith(ctx, live, rec)).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(90*time.Second))

	It("leaves a partitioned member for the others", Serial, func(ctx SpecContext) {
		etcd := startEtcdWith(3, etcdproc.Options{PeerProxies: true})
		cli := clientOf(etcd)
		v3Load(ctx, cli, "host", 100)
		leader, err := etcd.Leader()
		Expect(err).NotTo(HaveOccurred())
		cut := (leader + 1) % 3
		_, rec := startSyncer(config(etcd.Endpoints()[cut]))
		eps := etcd.Endpoints()
		_, rec2 := startSyncer(config(eps[cut], eps[(cut+1)%3], eps[(cut+2)%3]))
		Eventually(inSyncWith(ctx, cli, rec2)).WithContext(ctx).Should(Succeed())
		Eventually(inSyncWith(ctx, cli, rec)).WithContext(ctx).Should(Succeed())

		Expect(etcd.Partition(cut)).To(Succeed())
		DeferCleanup(etcd.Heal)
		var others []int
		for i := range 3 {
			if i != cut {
				others = append(others, i)
			}
		}
		live, err := etcd.ClientOf(others...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(live.Close)
		v3Load(ctx, live, "after", 50)
		By("the syncer that can reach the others follows them")
		Eventually(inSyncWith(ctx, live, rec2)).WithContext(ctx).Should(Succeed())
		By("the syncer that can reach only the cut member is not in sync")
		Eventually(rec.Status).WithContext(ctx).ShouldNot(Equal(messages.InSync))
	}, SpecTimeout(90*time.Second))

	if !version.ServesV2() {
		It("refuses the v2 API with a message that names the missing API and the flag to use", func(ctx SpecContext) {
			etcd := startEtcd(1)
			var logs lockedBuffer
			cfg := loopback.Config(etcd.Endpoints()...)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			_, rec := startSyncer(cfg)
			Eventually(logs.String).WithContext(ctx).Should(And(
				ContainSubstring("does not serve the v2 API"), ContainSubstring("--etcd-api v3")))
			Consistently(rec.Status).WithTimeout(time.Second).ShouldNot(Equal(messages.InSync))
		}, SpecTimeout(30*time.Second))
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for logs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
