package e2e_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/stepper"
	"github.com/etcdsync/etcdsync/internal/replay"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// pollTimes records, on the stepper's clock, each quorum GET of "/": the
// cluster-ID poll (and the watch's stall check, which these specs keep
// out of the way with a long WatchStallTimeout).
type pollTimes struct {
	supervisor.KeysAPI
	clock *stepper.Clock
	mu    sync.Mutex
	at    []time.Time
}

func (p *pollTimes) Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error) {
	if key == "/" && opts != nil && opts.Quorum {
		p.mu.Lock()
		p.at = append(p.at, p.clock.Now())
		p.mu.Unlock()
	}
	return p.KeysAPI.Get(ctx, key, opts)
}

func (p *pollTimes) gaps() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(p.at); i++ {
		gaps = append(gaps, p.at[i].Sub(p.at[i-1]))
	}
	return gaps
}

// These specs run the syncer on e2e/stepper: its time moves only when
// nothing else can run, so a minute of the syncer's time takes
// milliseconds, and the waits they check are exact, however busy the machine.
var _ = Describe("The syncer on the stepper's clock", func() {
	var (
		st  *stepper.Stepper
		sim *etcdsim.Server
		cfg supervisor.Config
	)
	BeforeEach(func() {
		st = stepper.New(1, etcdsim.DefaultStart)
		sim = etcdsim.NewWithConfig(etcdsim.Config{Park: st.Park})
		cfg = loopback.Config()
		cfg.Clock, cfg.Logger = st.Clock(), logger
		cfg = replay.With(cfg, replay.Hooks{Runner: st})
		cfg.WatchStallTimeout = time.Hour
	})
	start := func(keys supervisor.KeysAPI) (*supervisor.Syncer, *recorder.Recorder) {
		GinkgoHelper()
		cfg.KeysAPI = st.KeysAPI(keys)
		rec := recorder.New()
		s, err := supervisor.Start(system, cfg, rec)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			Expect(st.Stop(s.Stop)).To(Succeed())
			rec.Close()
			Expect(rec.Violation()).NotTo(HaveOccurred())
		})
		Expect(st.RunUntil(func() bool { return rec.Status() == messages.InSync }, time.Minute)).To(BeTrue(), "in sync")
		return s, rec
	}

	DescribeTable("polls the cluster ID every ClusterIDPollInterval, jittered within ±10 %",
		func(draw func(n int64) int64, lo, hi time.Duration) {
			cfg.ClusterIDPollInterval = 10 * time.Second
			cfg = replay.With(cfg, replay.Hooks{Runner: st, Rand: draw})
			polls := &pollTimes{KeysAPI: sim, clock: st.Clock()}
			start(polls)
			polls.mu.Lock()
			polls.at = nil // the start's own quorum reads are not polls
			polls.mu.Unlock()
			Expect(st.RunUntil(func() bool { return len(polls.gaps()) >= 5 }, 2*time.Minute)).To(BeTrue(), "five polls")
			for _, gap := range polls.gaps() {
				Expect(gap).To(And(BeNumerically(">=", lo), BeNumerically("<=", hi)))
			}
		},
		Entry("at the bottom of the range", func(int64) int64 { return 0 }, 9*time.Second, 9*time.Second),
		Entry("at the top of the range", func(n int64) int64 { return n - 1 }, 10999990*time.Microsecond, 11*time.Second),
		Entry("drawn at random", rand.New(rand.NewPCG(7, 0)).Int64N, 9*time.Second, 11*time.Second),
	)

	It("waits out StaleSnapshotTimeout on a follower that stays behind, and does not take it for a restored etcd", func() {
		cfg.OnClusterReset = supervisor.StopOnReset
		cfg.StaleSnapshotTimeout = 30 * time.Second
		_, err := sim.Set(context.Background(), prefix+"/a", "old", nil)
		Expect(err).NotTo(HaveOccurred())
		sim.FreezeFollower()
		DeferCleanup(sim.ReleaseFollower)
		_, err = sim.Set(context.Background(), prefix+"/a", "new", nil)
		Expect(err).NotTo(HaveOccurred())
		s, rec := start(sim)
		Expect(rec.InSyncMap()).To(Equal(map[string]string{prefix + "/a": "new"}))

		// Three timeouts of the syncer's time pass, in milliseconds.
		t0 := st.Clock().Now()
		Expect(st.RunUntil(func() bool { return st.Clock().Now().Sub(t0) >= 3*cfg.StaleSnapshotTimeout }, 2*time.Minute)).To(BeTrue())
		Expect(s.Done()).NotTo(BeClosed())
		Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync))
	})
})
