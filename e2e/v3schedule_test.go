package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/supervisor"
)

// v3Schedules says how many random v3 schedules to run on each etcd
// version (ETCDSYNC_V3_SCHEDULES, default 50: 100 per make test) and from
// which seed (ETCDSYNC_V3_SCHEDULE_SEED, default random; schedule i runs
// seed base+i, and a failure prints its seed).
func v3Schedules() (n int, base uint64) {
	n, base = 50, rand.Uint64()>>1
	if s := os.Getenv("ETCDSYNC_V3_SCHEDULES"); s != "" {
		v, err := strconv.Atoi(s)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_V3_SCHEDULES")
		n = v
	}
	if s := os.Getenv("ETCDSYNC_V3_SCHEDULE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_V3_SCHEDULE_SEED")
		base = v
	}
	return n, base
}

// Random fault schedules for the v3 source on real etcd: writes, deletes,
// range deletes, txns and leases, with cut and stalled connections,
// compactions at random revisions, member restarts, restores and rebuilds
// between them; after each quiet period the host's map must equal etcd's.
// Real etcd is not deterministic, so a seed replays the schedule's
// operations, not their timing.
var _ = Describe("Random schedules on real etcd, API v3", Label("etcd", "v3", "v3schedule"), func() {
	for _, v := range []etcdproc.Version{etcdproc.V35, etcdproc.V37} {
		It(fmt.Sprintf("keeps the invariant after every quiet period, on etcd %v", v), func(ctx SpecContext) {
			etcd, err := etcdproc.StartCluster(1, etcdproc.Options{Output: GinkgoWriter, Version: v})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(etcd.Stop)
			n, base := v3Schedules()
			By(fmt.Sprintf("running %d schedules from seed %d", n, base))
			for i := range uint64(n) {
				runV3Schedule(ctx, etcd, base+i)
				if CurrentSpecReport().Failed() {
					return
				}
			}
		}, NodeTimeout(15*time.Minute))
	}
})

// runV3Schedule runs the schedule of seed against etcd, under a prefix of
// its own, with a syncer of its own behind a proxy.
func runV3Schedule(ctx context.Context, etcd *etcdproc.Cluster, seed uint64) {
	GinkgoHelper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pfx := fmt.Sprintf("/sched/%d", seed)
	replay := fmt.Sprintf("v3 schedule %d (replay: ETCDSYNC_V3_SCHEDULE_SEED=%d ETCDSYNC_V3_SCHEDULES=1 go test ./e2e -run TestE2E -ginkgo.label-filter=v3schedule)", seed, seed)
	var trail []string // the faults, for the failure message
	why := func() string { return replay + "; faults: " + strings.Join(trail, ", ") }
	fault := func(name string) {
		trail = append(trail, name)
		GinkgoWriter.Printf("%s v3 schedule %d: %s\n", time.Now().Format("15:04:05.000"), seed, name)
	}

	cli, err := etcd.Client()
	Expect(err).NotTo(HaveOccurred())
	defer cli.Close()
	p, err := tcpproxy.New(strings.TrimPrefix(etcd.Endpoints()[0], "http://"))
	Expect(err).NotTo(HaveOccurred())
	defer p.Close()
	cfg := loopback.Config(p.URL())
	cfg.API, cfg.Prefix, cfg.Logger = supervisor.APIv3, pfx, logger
	rec := recorder.New()
	s, err := supervisor.Start(system, cfg, rec)
	Expect(err).NotTo(HaveOccurred())
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		Expect(s.Stop(sctx)).To(Succeed(), why())
		rec.Close()
		Expect(rec.Violation()).NotTo(HaveOccurred(), why())
	}()

	// Few keys, so that operations collide; "k1" and "k1/x" are two keys.
	key := func() string {
		k := fmt.Sprintf("%s/d%d/k%d", pfx, r.IntN(3), r.IntN(6))
		if r.IntN(5) == 0 {
			k += "/x"
		}
		return k
	}
	// op writes, tolerating a member that is restarting: a failed write
	// changes nothing the check relies on, as the check reads etcd.
	op := func(f func(ctx context.Context) error) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = f(wctx)
	}
	var backup *etcdproc.Backup
	heavy, heavyRound, heavyDone := r.IntN(10), r.IntN(3), false // heavy 3..9: none
	for round := range 3 {
		for range 5 + r.IntN(25) {
			switch f := r.IntN(35); {
			case f < 14:
				k, v := key(), fmt.Sprint(r.IntN(1000))
				op(func(ctx context.Context) error { _, err := cli.Put(ctx, k, v); return err })
			case f < 19:
				k := key()
				op(func(ctx context.Context) error { _, err := cli.Delete(ctx, k); return err })
			case f < 21:
				dir := fmt.Sprintf("%s/d%d/", pfx, r.IntN(3))
				op(func(ctx context.Context) error { _, err := cli.Delete(ctx, dir, clientv3.WithPrefix()); return err })
			case f < 24:
				a, b, v := key(), key(), fmt.Sprint("txn", r.IntN(1000))
				op(func(ctx context.Context) error {
					_, err := cli.Txn(ctx).Then(clientv3.OpPut(a, v), clientv3.OpDelete(b)).Commit()
					return err
				})
			case f < 25:
				k := key()
				op(func(ctx context.Context) error {
					l, err := cli.Grant(ctx, 2)
					if err == nil {
						_, err = cli.Put(ctx, k, "leased", clientv3.WithLease(l.ID))
					}
					return err
				})
			case f < 29:
				fault("cut")
				p.CutAll()
			case f < 32:
				fault("stall")
				p.Pause()
				for range r.IntN(20) {
					k := key()
					op(func(ctx context.Context) error { _, err := cli.Put(ctx, k, "stalled"); return err })
				}
				if r.IntN(2) == 0 {
					fault("compact-while-stalled")
					compactAtRandom(etcd, r)
					p.CutAll()
				}
				p.Resume()
			default:
				fault("compact")
				compactAtRandom(etcd, r)
			}
			// At most one fault that restarts etcd per schedule, in the
			// middle of one round: each costs seconds, and a few
			// schedules in ten having one covers them.
			if round == heavyRound && !heavyDone && r.IntN(3) == 0 {
				heavyDone = true
				switch heavy {
				case 0:
					fault("restart")
					Expect(etcd.RestartAll()).To(Succeed(), why())
				case 1:
					fault("backup") // restored at the end of a round
					backup, err = etcd.Backup()
					Expect(err).NotTo(HaveOccurred(), why())
				case 2:
					fault("rebuild")
					Expect(etcd.Rebuild()).To(Succeed(), why())
				}
			}
		}
		// A restore is detectable only while etcd's revision is below what
		// the syncer applied (the watch of a restored etcd waits in
		// silence for revisions it will reach with other writes), so it
		// happens here, and the next write waits until the syncer has
		// seen it.
		if backup != nil {
			fault("restore")
			// A marker the host must see proves the syncer has applied a
			// revision above the backup's (written twice, so that the
			// backup is behind even if no other write followed it).
			var marker string
			for i := range 2 {
				marker = fmt.Sprintf("restore-%d-%d", round, i)
				Eventually(func() error {
					_, err := cli.Put(ctx, pfx+"/marker", marker)
					return err
				}).WithContext(ctx).WithTimeout(20*time.Second).Should(Succeed(), why())
			}
			Eventually(func() string { return rec.Map()[pfx+"/marker"] }).WithContext(ctx).WithTimeout(20*time.Second).
				Should(Equal(marker), "the marker: %s", why())
			resets := countResets(rec)
			Expect(etcd.Restore(backup)).To(Succeed(), why())
			backup = nil
			Eventually(func() int { return countResets(rec) }).WithContext(ctx).WithTimeout(20*time.Second).
				Should(BeNumerically(">", resets), "the restore was a reset: %s", why())
		}
		// A last write of a value only this round writes: a host holding
		// it has applied etcd's head.
		marker := fmt.Sprintf("round-%d", round)
		Eventually(func() error {
			_, err := cli.Put(ctx, pfx+"/quiet", marker)
			return err
		}).WithContext(ctx).WithTimeout(20*time.Second).Should(Succeed(), why())
		var want, got map[string]string
		Eventually(func(g Gomega) {
			var err error
			want, err = v3MapOf(ctx, cli, pfx)
			g.Expect(err).NotTo(HaveOccurred())
			got = rec.InSyncMap()
			g.Expect(got).NotTo(BeNil(), "in sync")
			g.Expect(maps.Equal(got, want)).To(BeTrue())
		}).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "round %d: %s", round, why())
		Expect(got).To(Equal(want), "round %d: %s", round, why())
		Expect(rec.Violation()).NotTo(HaveOccurred(), why())
	}
}

// compactAtRandom compacts etcd at a random revision at or below its head.
func compactAtRandom(etcd *etcdproc.Cluster, r *rand.Rand) {
	rev, err := etcd.Revision()
	if err != nil {
		return // a member restarting: no compaction this time
	}
	// A revision below the last compaction is refused; that is fine.
	_ = etcd.Compact(rev - r.Int64N(min(rev, 20)))
}

// v3MapOf is v3Map for any prefix.
func v3MapOf(ctx context.Context, cli *clientv3.Client, pfx string) (map[string]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, pfx+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading %s/: %w", pfx, err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out, nil
}
