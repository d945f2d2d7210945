package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/stepper"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/internal/replay"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// schedules returns how many random schedules to run and the seed of the
// first: ETCDSYNC_SCHEDULES (default 500; `make soak` runs thousands) and
// ETCDSYNC_SCHEDULE_SEED (default random) set them.
func schedules() (n int, base uint64) {
	n, base = 500, rand.Uint64()>>1
	if s := os.Getenv("ETCDSYNC_SCHEDULES"); s != "" {
		v, err := strconv.Atoi(s)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_SCHEDULES")
		n = v
	}
	if s := os.Getenv("ETCDSYNC_SCHEDULE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_SCHEDULE_SEED")
		base = v
	}
	return n, base
}

var _ = Describe("Stepped schedules", Label("schedule"), func() {
	It("replay exactly: the same seed delivers the same updates and statuses, in the same order", func(ctx SpecContext) {
		_, base := schedules()
		seed := base - base%3 // a stepped one
		first := runSchedule(ctx, seed)
		Expect(first).NotTo(BeEmpty())
		second := runSchedule(ctx, seed)
		i := 0
		for i < min(len(first), len(second)) && first[i] == second[i] {
			i++
		}
		if i < len(first) || i < len(second) {
			Fail(fmt.Sprintf("schedule seed %d delivered differently from entry %d on:\n  first:  %q\n  second: %q",
				seed, i, first[max(0, i-3):min(len(first), i+4)], second[max(0, i-3):min(len(second), i+4)]))
		}
	}, NodeTimeout(5*time.Minute))
})

var _ = Describe("Random schedules on a simulated etcd", Label("schedule"), func() {
	It("keeps the invariant after every quiet period", func(ctx SpecContext) {
		n, base := schedules()
		By(fmt.Sprintf("running %d schedules from seed %d", n, base))
		for i := range uint64(n) {
			seed := base + i
			runSchedule(ctx, seed)
			if CurrentSpecReport().Failed() {
				return
			}
		}
	}, NodeTimeout(30*time.Minute))

	It("keeps the invariant at the leaves of relays, through relay restarts, failovers and cut or stalled leaf streams", func(ctx SpecContext) {
		n, base := relaySchedules()
		By(fmt.Sprintf("running %d relayed schedules from seed %d", n, base))
		for i := range uint64(n) {
			runScheduleWith(ctx, base+i, true)
			if CurrentSpecReport().Failed() {
				return
			}
		}
	}, NodeTimeout(30*time.Minute))
})

// relaySchedules is schedules for the relayed ones:
// ETCDSYNC_RELAY_SCHEDULES (default 30, about 3 s each), from the same seed.
func relaySchedules() (n int, base uint64) {
	_, base = schedules()
	n = 30
	if s := os.Getenv("ETCDSYNC_RELAY_SCHEDULES"); s != "" {
		v, err := strconv.Atoi(s)
		Expect(err).NotTo(HaveOccurred(), "ETCDSYNC_RELAY_SCHEDULES")
		n = v
	}
	return n, base
}

// runSchedule runs one seeded schedule: a few rounds of random writes and
// faults, each followed by a quiet period after which the host's map must
// equal etcd's. A failure names the seed; ETCDSYNC_SCHEDULE_SEED=<seed>
// ETCDSYNC_SCHEDULES=1 replays it.
func runSchedule(ctx context.Context, seed uint64) (journal []string) {
	GinkgoHelper()
	return runScheduleWith(ctx, seed, false)
}

// runScheduleWith runs a schedule, with one to three relays between the
// simulated etcd and two leaf syncers if relayed: then relays are
// restarted, and the leaves' streams cut or stalled (so that they fail over
// from one relay to another), among the faults, and every leaf's map must
// equal etcd's after each quiet period. A relayed schedule runs over
// HTTP, so it does not replay exactly.
func runScheduleWith(ctx context.Context, seed uint64, relayed bool) (journal []string) {
	GinkgoHelper()
	r := rand.New(rand.NewPCG(seed, 0))
	why := func() string {
		if relayed {
			return fmt.Sprintf("relayed schedule seed %d (replay: ETCDSYNC_SCHEDULE_SEED=%d ETCDSYNC_SCHEDULES=0 ETCDSYNC_RELAY_SCHEDULES=1 go test ./e2e -ginkgo.label-filter=schedule)", seed, seed)
		}
		return fmt.Sprintf("schedule seed %d (replay: ETCDSYNC_SCHEDULE_SEED=%d ETCDSYNC_SCHEDULES=1 go test ./e2e -ginkgo.label-filter=schedule)", seed, seed)
	}
	sim := etcdsim.NewWithConfig(etcdsim.Config{Seed: seed, ClusterID: fmt.Sprintf("%016x", seed)})
	keys := sim // the writers' client
	// Names with "_" are hidden keys and directories, which etcd's history
	// shows and its GETs and live notifications don't.
	name := func(kind string, n int) string {
		if r.IntN(8) == 0 {
			return fmt.Sprintf("_%s%d", kind, r.IntN(n))
		}
		return fmt.Sprintf("%s%d", kind, r.IntN(n))
	}
	randomKey := func() string {
		return fmt.Sprintf("%s/%s/%s/%s", prefix, name("d", 3), name("s", 3), name("k", 6))
	}
	randomDir := func() string {
		if r.IntN(2) == 0 {
			return fmt.Sprintf("%s/%s", prefix, name("d", 3))
		}
		return fmt.Sprintf("%s/%s/%s", prefix, name("d", 3), name("s", 3))
	}
	write := func() {
		switch k := randomKey(); r.IntN(11) {
		case 0, 1:
			_, _ = keys.Delete(ctx, k, nil) // may not exist: etcd says 100
		case 2:
			_, _ = keys.Delete(ctx, randomDir(), &client.DeleteOptions{Recursive: true, Dir: true})
		case 3:
			_, _ = keys.Set(ctx, k, fmt.Sprint(r.IntN(100)), &client.SetOptions{TTL: time.Duration(1+r.IntN(3)) * time.Second})
		case 4:
			if resp, err := keys.Get(ctx, k, nil); err == nil {
				_, _ = keys.Set(ctx, k, "cas", &client.SetOptions{PrevIndex: resp.Node.ModifiedIndex})
			}
		case 5:
			// A directory over a file (or a new one): the file is gone.
			_, _ = keys.Set(ctx, k, "", &client.SetOptions{Dir: true})
		default:
			_, _ = keys.Set(ctx, k, fmt.Sprint(r.IntN(100)), nil)
		}
	}
	for range r.IntN(30) {
		write()
	}

	// The syncer talks to the simulation directly (a KeysAPI, long poll),
	// or over HTTP (client/v2 and the streaming snapshot), by long poll or
	// stream.
	cfg := loopback.Config()
	mode := []string{"stepped", "http long-poll", "http stream"}[seed%3]
	if relayed && mode == "stepped" {
		mode = "http long-poll" // the relay's HTTP server and its clients are not stepped
	}
	// Stepped, everything the syncer does runs one thing at a time, in an
	// order drawn from the seed, on the stepper's clock: the schedule
	// replays exactly. Over HTTP, the client's and server's goroutines run
	// as the machine schedules them.
	var st *stepper.Stepper
	if mode == "stepped" {
		st = stepper.New(seed, etcdsim.DefaultStart)
		sim.SetPark(st.Park)
		cfg.KeysAPI, cfg.Clock = st.KeysAPI(sim), st.Clock()
		rnd := rand.New(rand.NewPCG(seed, 1))
		cfg = replay.With(cfg, replay.Hooks{Runner: st, Rand: rnd.Int64N})
	} else {
		srv := httptest.NewServer(sim)
		defer srv.Close()
		defer sim.Reconnect() // a handler that waits for a held watch would hold up Close
		cfg.Endpoints = []string{srv.URL}
		if mode == "http stream" {
			cfg.WatchMode = supervisor.WatchStream
		}
	}
	GinkgoWriter.Printf("schedule %d: %s\n", seed, mode)
	cfg.WatchStallTimeout = 200 * time.Millisecond
	cfg.Logger = logger
	cfg.WatchErrorLimit = 1 + r.IntN(3)
	cfg.SnapshotBatchSize = 1 + r.IntN(20)
	rec := recorder.New()
	// hosts are the recorders the invariant is checked at: the syncer's,
	// or with a relay, the leaves'.
	hosts := []*recorder.Recorder{rec}
	var rel *scheduleRelays
	if relayed {
		rel = startScheduleRelays(ctx, cfg, r)
		defer rel.stop(ctx)
		hosts = rel.leaves
	} else {
		s, err := supervisor.Start(system, cfg, rec)
		Expect(err).NotTo(HaveOccurred(), why())
		defer func() {
			if st != nil {
				Expect(st.Stop(s.Stop)).To(Succeed(), why())
			} else {
				Expect(s.Stop(ctx)).To(Succeed(), why())
			}
			rec.Close()
			Expect(rec.Violation()).NotTo(HaveOccurred(), why())
			journal = rec.Journal()
		}()
	}
	// interleave lets the syncer take a few steps between two of the
	// schedule's actions (stepped), or just go on (over HTTP).
	interleave := func() {
		if st != nil {
			for range r.IntN(4) {
				if !st.Step() {
					return
				}
			}
		}
	}
	// eventually waits for cond: stepped, until the syncer is quiet with
	// cond holding; else by polling.
	eventually := func(cond func() bool, timeout time.Duration, what string) {
		GinkgoHelper()
		if st != nil {
			Expect(st.RunUntil(cond, timeout)).To(BeTrue(), "%s: %s (after %d steps)", what, why(), st.Steps())
			return
		}
		Eventually(cond).WithContext(ctx).WithTimeout(timeout).Should(BeTrue(), "%s: %s", what, why())
	}

	var backup *etcdsim.Backup
	var backupID string // the cluster the backup was taken of
	for round := range 3 {
		for range 5 + r.IntN(30) {
			f := r.IntN(40)
			if f <= 10 || (rel != nil && f <= 13) {
				GinkgoWriter.Printf("schedule %d round %d: fault %d at index %d\n", seed, round, f, sim.Index())
			}
			switch {
			case f == 0:
				sim.CutWatches()
			case f == 1:
				sim.Disconnect(etcdsim.OpWatch)
			case f == 2:
				sim.Disconnect()
			case f == 3:
				sim.Reconnect()
			case f == 4:
				sim.FreezeFollower()
			case f == 5:
				sim.ReleaseFollower()
			case f == 6:
				// Overflow the window behind a held watch.
				sim.HoldWatches()
				for range 1000 + r.IntN(200) {
					_, _ = keys.Set(ctx, randomKey(), "burst", nil)
				}
				sim.ReleaseWatches()
			case f == 7:
				sim.Advance(time.Duration(r.IntN(4)) * time.Second)
			case f == 10 && r.IntN(2) == 0:
				// Hundreds of keys expiring at once: more events in one go
				// than a stream's buffer holds.
				for i := range 50 + r.IntN(300) {
					_, _ = keys.Set(ctx, fmt.Sprintf("%s/ttl/k%d", prefix, i), "burst", &client.SetOptions{TTL: time.Second})
				}
				sim.Advance(time.Second)
			case f == 8 && r.IntN(3) == 0:
				sim.Reset("", nil)
				for range r.IntN(20) {
					write()
				}
			case f == 9 && backup == nil:
				backup, backupID = sim.Backup(), sim.ClusterID()
			case rel != nil && f == 11:
				rel.pick(r).proxy.CutAll() // the leaves reconnect and resume, here or at another relay
			case rel != nil && f == 12:
				rel.pick(r).proxy.Pause() // the leaves' streams stall past their read deadline
			case rel != nil && f == 13 && r.IntN(2) == 0:
				rel.pick(r).restart(ctx)
			default:
				write()
			}
			interleave()
		}
		// Quiet: no more faults, and the watch may drain.
		sim.Reconnect()
		sim.ReleaseFollower()
		sim.ReleaseWatches()
		if rel != nil {
			rel.resume()
		}
		// A last write, of a value this round alone writes: a map that
		// merely equals etcd's can belong to a watch still behind writes
		// that changed no value (a burst sets keys to what they hold),
		// about to find its position cleared and resync. The host holding
		// this value has applied etcd's head.
		_, err := keys.Set(ctx, prefix+"/quiet", fmt.Sprintf("round-%d", round), nil)
		Expect(err).NotTo(HaveOccurred())
		want := sim.Map(prefix)
		for i, h := range hosts {
			// The map judged is the one that passed: read again, it could
			// already be nil, a leaf having dropped to resync since (a
			// stream silent past RelayReadTimeout on a loaded machine).
			var got map[string]string
			eventually(func() bool { got = h.InSyncMap(); return got != nil && maps.Equal(got, want) }, 20*time.Second,
				fmt.Sprintf("round %d: host %d in sync with etcd", round, i))
			Expect(got).To(Equal(want), "round %d of %s, host %d", round, why(), i)
			Expect(h.Violation()).NotTo(HaveOccurred(), why())
		}

		// A restore from backup is detectable only while etcd's index is
		// below what the syncer applied, so it happens here, in sync, and
		// the next writes wait until the syncer has seen it.
		if backup != nil && backupID == sim.ClusterID() && r.IntN(2) == 0 {
			// A marker the host must see proves the syncer has applied
			// etcd's head. Written twice, so that the head is at least
			// two above the backup: the restart after the restore takes
			// one index itself, and a gap it fills cannot be seen. The
			// two values differ, or the host could be seen to hold the
			// marker with only the first write applied, level with the
			// restarted etcd.
			var marker string
			for i := range 2 {
				marker = fmt.Sprintf("restore-%d-%d", round, i)
				_, err := keys.Set(ctx, prefix+"/marker", marker, nil)
				Expect(err).NotTo(HaveOccurred())
			}
			for _, h := range hosts {
				eventually(func() bool { return h.Map()[prefix+"/marker"] == marker }, 10*time.Second, "the marker")
			}
			resets := make([]int, len(hosts))
			for i, h := range hosts {
				resets[i] = countResets(h)
			}
			sim.Restore(backup)
			sim.Restart() // as a real restore does: watches cut, one more index
			backup = nil
			for i, h := range hosts {
				eventually(func() bool { return countResets(h) > resets[i] }, 10*time.Second, "the restore seen")
			}
		}
	}
	return nil // the deferred Stop fills it in
}

// scheduleRelay is one relay of scheduleRelays: a syncer whose host is a
// relay.Server, served over HTTP on a
// fixed loopback address (so that it can be restarted there), behind a
// proxy that can cut or stall the leaves' streams.
type scheduleRelay struct {
	cfg   supervisor.Config
	relay relay.Config
	addr  string
	proxy *tcpproxy.Proxy

	syncer *supervisor.Syncer
	server *relay.Server
	http   *http.Server
	served chan struct{}
}

// scheduleRelays are one to three relays, each a syncer of its own on the
// same simulated etcd, and two leaves that know them all: a leaf starts at
// a random relay and fails over to another when its stream breaks, so it
// resumes on a relay whose log and view are not the first one's.
type scheduleRelays struct {
	relays  []*scheduleRelay
	leaves  []*recorder.Recorder
	syncers []*supervisor.Syncer
}

func startScheduleRelays(ctx context.Context, cfg supervisor.Config, r *rand.Rand) *scheduleRelays {
	GinkgoHelper()
	sr := &scheduleRelays{}
	var urls []string
	for range 1 + r.IntN(3) {
		one := startScheduleRelay(ctx, cfg, r)
		sr.relays, urls = append(sr.relays, one), append(urls, one.proxy.URL())
	}
	GinkgoWriter.Printf("relays: %d\n", len(sr.relays))
	for range 2 {
		leaf := loopback.Config()
		leaf.Endpoints, leaf.Relays = nil, urls
		leaf.RelayReadTimeout = 500 * time.Millisecond
		leaf.Logger = logger
		leaf.SnapshotBatchSize = 1 + r.IntN(20)
		rec := recorder.New()
		s, err := supervisor.Start(system, leaf, rec)
		Expect(err).NotTo(HaveOccurred())
		sr.leaves, sr.syncers = append(sr.leaves, rec), append(sr.syncers, s)
	}
	return sr
}

// pick returns one of the relays, drawn from r.
func (sr *scheduleRelays) pick(r *rand.Rand) *scheduleRelay { return sr.relays[r.IntN(len(sr.relays))] }

// resume lets every relay's proxy forward again.
func (sr *scheduleRelays) resume() {
	for _, one := range sr.relays {
		one.proxy.Resume()
	}
}

// stop stops the leaves, then the relays, and checks the leaves' contract.
// The relays are stopped whatever the leaves report: a relay left running
// holds its watch on the sim's HTTP server, whose Close would then wait for
// it, hiding the failure behind a hang.
func (sr *scheduleRelays) stop(ctx context.Context) {
	GinkgoHelper()
	defer func() {
		for _, one := range sr.relays {
			one.stop(ctx)
		}
	}()
	var errs []error
	for i, s := range sr.syncers {
		errs = append(errs, s.Stop(ctx))
		sr.leaves[i].Close()
		errs = append(errs, sr.leaves[i].Violation())
	}
	Expect(errors.Join(errs...)).NotTo(HaveOccurred(), "stopping the leaves")
}

func startScheduleRelay(ctx context.Context, cfg supervisor.Config, r *rand.Rand) *scheduleRelay {
	GinkgoHelper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	// A small log and no sharing: leaves fall behind it, and get fresh
	// snapshots, on their own streams.
	return serveScheduleRelay(ln, cfg, relay.Config{Prefix: prefix, Logger: logger,
		LogEntries: 20 + r.IntN(500), SnapshotShare: time.Nanosecond, WriteTimeout: time.Second})
}

// serveScheduleRelay serves a relay of syncer cfg and server rcfg on ln,
// behind a proxy.
func serveScheduleRelay(ln net.Listener, cfg supervisor.Config, rcfg relay.Config) *scheduleRelay {
	GinkgoHelper()
	var err error
	sr := &scheduleRelay{cfg: cfg, addr: ln.Addr().String(), relay: rcfg}
	sr.serve(ln)
	sr.proxy, err = tcpproxy.New(sr.addr)
	Expect(err).NotTo(HaveOccurred())
	return sr
}

// serve starts the relay's syncer and server on ln.
func (sr *scheduleRelay) serve(ln net.Listener) {
	GinkgoHelper()
	var err error
	sr.server, err = relay.New(sr.relay)
	Expect(err).NotTo(HaveOccurred())
	sr.syncer, err = supervisor.Start(system, sr.cfg, sr.server)
	Expect(err).NotTo(HaveOccurred())
	sr.http, sr.served = &http.Server{Handler: sr.server}, make(chan struct{})
	go func(h *http.Server, done chan struct{}) { defer close(done); _ = h.Serve(ln) }(sr.http, sr.served)
}

// halt stops the relay's server and syncer.
func (sr *scheduleRelay) halt(ctx context.Context) {
	GinkgoHelper()
	sr.server.Close()
	Expect(sr.http.Shutdown(ctx)).To(Succeed())
	<-sr.served
	Expect(sr.syncer.Stop(ctx)).To(Succeed())
}

// restart replaces the relay by a new one on the same address, as a
// restarted relay process would be.
func (sr *scheduleRelay) restart(ctx context.Context) {
	GinkgoHelper()
	sr.halt(ctx)
	var ln net.Listener
	Eventually(func() (err error) { ln, err = net.Listen("tcp", sr.addr); return err }).Should(Succeed())
	sr.serve(ln)
}

// stop stops the relay and its proxy.
func (sr *scheduleRelay) stop(ctx context.Context) {
	GinkgoHelper()
	Expect(sr.proxy.Close()).To(Succeed())
	sr.halt(ctx)
}

// countResets counts the cluster generations the host has been told of.
func countResets(rec *recorder.Recorder) int {
	n := 0
	for _, s := range rec.Statuses() {
		if s == messages.WaitForDatastore {
			n++
		}
	}
	return n
}
