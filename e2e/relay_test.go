package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// A relay (a syncer on real etcd whose host is a relay.Server, served over
// loopback HTTP) and in-process leaves (syncers with Config.Relays): every
// spec ends with each leaf holding what a quorum read of etcd returns.
var _ = Describe("Syncer reading from relays", Label("etcd", "relay"), func() {
	for _, mode := range []supervisor.WatchMode{supervisor.WatchLongPoll, supervisor.WatchStream} {
		Context(fmt.Sprintf("with the relay watching by %v", mode), func() { relaySpecs(mode) })
	}
})

// relayProc is a relay: its syncer, its server and its HTTP listener.
type relayProc struct {
	syncer *supervisor.Syncer
	server *relay.Server
	http   *http.Server
	addr   string
	done   chan struct{}
}

// startRelay starts a relay on etcd endpoints, listening on addr
// ("127.0.0.1:0" for any port).
func startRelay(cfg supervisor.Config, addr string) *relayProc {
	GinkgoHelper()
	rs, err := relay.New(relay.Config{Prefix: prefix, Logger: logger.With("relay", addr)})
	Expect(err).NotTo(HaveOccurred())
	cfg.Logger = logger.With("relaySyncer", addr)
	s, err := supervisor.Start(system, cfg, rs)
	Expect(err).NotTo(HaveOccurred())
	rs.SetClusterIDSource(s.ClusterID)
	var ln net.Listener
	Eventually(func() (err error) { ln, err = net.Listen("tcp", addr); return err }).
		WithTimeout(10*time.Second).Should(Succeed(), "the port of a relay that was stopped must free up")
	p := &relayProc{syncer: s, server: rs, http: &http.Server{Handler: rs, ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr().String(), done: make(chan struct{})}
	go func() { defer close(p.done); _ = p.http.Serve(ln) }()
	DeferCleanup(p.stop)
	return p
}

func (p *relayProc) url() string { return "http://" + p.addr }

// stop stops the relay as a node does: streams end with shutting-down,
// then the listener, then the syncer. Safe to call twice.
func (p *relayProc) stop(ctx context.Context) {
	p.server.Close()
	Expect(p.http.Shutdown(ctx)).To(Or(Succeed(), MatchError(http.ErrServerClosed)))
	<-p.done
	Expect(p.syncer.Stop(ctx)).To(Succeed())
}

// leafCounter counts the streams of a leaf's relay client.
type leafCounter struct {
	supervisor.NopObserver
	streams, resumed, dropped atomic.Int64
}

func (c *leafCounter) RelayStream(_ string, resumed bool) {
	c.streams.Add(1)
	if resumed {
		c.resumed.Add(1)
	}
}
func (c *leafCounter) RelayDisconnected(string, error) { c.dropped.Add(1) }

func relaySpecs(mode supervisor.WatchMode) {
	var (
		etcd *etcdproc.Cluster
		keys client.KeysAPI
	)
	relayConfig := func() supervisor.Config {
		cfg := loopback.Config(etcd.Endpoints()...)
		cfg.WatchMode = mode
		return cfg
	}
	leafConfig := func(relays ...string) supervisor.Config {
		cfg := loopback.Config()
		cfg.Endpoints = nil
		cfg.Relays = relays
		cfg.RelayReadTimeout = 3 * time.Second
		return cfg
	}
	startLeaves := func(n int, cfg supervisor.Config) ([]*recorder.Recorder, []*leafCounter) {
		GinkgoHelper()
		recs, counters := make([]*recorder.Recorder, n), make([]*leafCounter, n)
		for i := range recs {
			counters[i] = &leafCounter{}
			cfg.Observer = counters[i]
			_, recs[i] = startSyncer(cfg)
		}
		return recs, counters
	}
	// allInSync passes when every leaf is in sync with a quorum read.
	allInSync := func(ctx context.Context, recs []*recorder.Recorder) func(Gomega) {
		return func(g Gomega) {
			want, err := etcdMap(ctx, keys, prefix)
			g.Expect(err).NotTo(HaveOccurred())
			for i, rec := range recs {
				g.Expect(rec.InSyncMap()).To(Equal(want), "leaf %d", i)
			}
		}
	}
	updates := func(recs []*recorder.Recorder) []int {
		out := make([]int, len(recs))
		for i, rec := range recs {
			_, out[i] = rec.Calls()
		}
		return out
	}

	BeforeEach(func(ctx SpecContext) {
		var err error
		etcd, err = etcdproc.StartCluster(1, etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(etcd.Stop)
		keys, err = etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		load(ctx, keys, 300, 4)
	})

	It("brings every leaf in sync and keeps it there through writes, deletes and directory deletes", func(ctx SpecContext) {
		r := startRelay(relayConfig(), "127.0.0.1:0")
		recs, _ := startLeaves(5, leafConfig(r.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())

		for i := range 200 {
			k := fmt.Sprintf("%s/host/h%d/k%d", prefix, i%7, i%60)
			var err error
			switch i % 5 {
			case 0:
				_, err = keys.Delete(ctx, k, nil)
				if client.IsKeyNotFound(err) {
					err = nil
				}
			case 1:
				if i%50 == 1 {
					_, err = keys.Delete(ctx, fmt.Sprintf("%s/host/h%d", prefix, i%7), &client.DeleteOptions{Recursive: true})
					if client.IsKeyNotFound(err) {
						err = nil
					}
					break
				}
				fallthrough
			default:
				_, err = keys.Set(ctx, k, fmt.Sprintf("v%d", i), nil)
			}
			Expect(err).NotTo(HaveOccurred())
		}
		_, err := keys.Set(ctx, prefix+"/quiet", "end", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(60*time.Second))

	It("forms tiers: leaves of a relay that syncs from another relay converge and follow", func(ctx SpecContext) {
		top := startRelay(relayConfig(), "127.0.0.1:0")
		mid := startRelay(leafConfig(top.url()), "127.0.0.1:0")
		recs, _ := startLeaves(3, leafConfig(mid.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		_, err := keys.Set(ctx, prefix+"/tiered", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = keys.Delete(ctx, prefix+"/host", &client.DeleteOptions{Recursive: true})
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		Expect(mid.server.Stats().Clients).To(Equal(len(recs)))
		Expect(top.server.Stats().Clients).To(Equal(1), "the top relay serves the middle one only")
	}, SpecTimeout(60*time.Second))

	It("keeps etcd's watcher count at the relay's, whatever the number of leaves", func(ctx SpecContext) {
		watchers := func() float64 { return etcdMetric(ctx, etcd.Endpoints()[0], "etcd_debugging_store_watchers") }
		idle := watchers()
		r := startRelay(relayConfig(), "127.0.0.1:0")
		Eventually(r.syncer.Status).WithContext(ctx).Should(Equal(messages.InSync))
		Eventually(watchers).WithContext(ctx).Should(BeNumerically(">", idle))
		one := idle + 1 // the relay's watch (a long poll re-registers per event: at most one)
		recs, _ := startLeaves(20, leafConfig(r.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		_, err := keys.Set(ctx, prefix+"/more", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		Consistently(watchers).WithContext(ctx).WithTimeout(time.Second).Should(BeNumerically("<=", one), "20 leaves, and etcd still sees the relay's watch only")
	}, SpecTimeout(60*time.Second))

	It("resumes every leaf across a relay restart, with no update for a key that did not change", func(ctx SpecContext) {
		r := startRelay(relayConfig(), "127.0.0.1:0")
		recs, counters := startLeaves(4, leafConfig(r.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := updates(recs)

		r.stop(ctx)
		_, err := keys.Set(ctx, prefix+"/while-down", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []messages.SyncStatus {
			var out []messages.SyncStatus
			for _, rec := range recs {
				out = append(out, rec.Status())
			}
			return out
		}).WithContext(ctx).ShouldNot(ContainElement(messages.InSync), "a leaf cut off from its relay is not in sync")

		startRelay(relayConfig(), r.addr)
		Eventually(allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		after := updates(recs)
		for i := range recs {
			Expect(after[i]-before[i]).To(Equal(1), "leaf %d: only the key written while the relay was down", i)
			Expect(counters[i].streams.Load()).To(BeNumerically(">=", 2))
		}
	}, SpecTimeout(90*time.Second))

	It("resumes from the relay's log, with no snapshot, after the leaf's stream broke", func(ctx SpecContext) {
		r := startRelay(relayConfig(), "127.0.0.1:0")
		front, err := tcpproxy.New(r.addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(front.Close)
		recs, counters := startLeaves(2, leafConfig(front.URL()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := updates(recs)
		sent := r.server.Stats().SnapshotsSent

		front.CutAll()
		_, err = keys.Set(ctx, prefix+"/while-cut", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(r.server.Stats().SnapshotsSent).To(Equal(sent), "the leaves resumed from the log")
		for i, c := range counters {
			Expect(c.resumed.Load()).To(BeNumerically(">=", 1), "leaf %d", i)
		}
		after := updates(recs)
		for i := range recs {
			Expect(after[i] - before[i]).To(Equal(1))
		}
	}, SpecTimeout(60*time.Second))

	It("fails over to the next relay when one goes away", func(ctx SpecContext) {
		a := startRelay(relayConfig(), "127.0.0.1:0")
		b := startRelay(relayConfig(), "127.0.0.1:0")
		recs, _ := startLeaves(4, leafConfig(a.url(), b.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		before := updates(recs)
		a.stop(ctx)
		b.stop(ctx)
		c := startRelay(relayConfig(), b.addr)
		_, err := keys.Set(ctx, prefix+"/after-failover", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(c.server.Stats().Clients).To(Equal(len(recs)), "every leaf moved to the relay that is left")
		after := updates(recs)
		for i := range recs {
			Expect(after[i] - before[i]).To(Equal(1))
		}
	}, SpecTimeout(90*time.Second))

	It("passes staleness on: no leaf is in sync within 2 s of the relay leaving in-sync, and all are again once it is back", func(ctx SpecContext) {
		r := startRelay(relayConfig(), "127.0.0.1:0")
		recs, _ := startLeaves(4, leafConfig(r.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())

		Expect(etcd.Kill(0)).To(Succeed())
		Eventually(r.syncer.Status).WithContext(ctx).WithTimeout(30 * time.Second).ShouldNot(Equal(messages.InSync))
		left := time.Now()
		for i, rec := range recs {
			Eventually(rec.Status).WithContext(ctx).WithTimeout(2*time.Second-time.Since(left)).
				ShouldNot(Equal(messages.InSync), "leaf %d", i)
		}
		Expect(etcd.Restart(0)).To(Succeed())
		_, err := keys.Set(ctx, prefix+"/after-outage", "x", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(allInSync(ctx, recs)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	}, SpecTimeout(120*time.Second))

	It("carries the relay's cluster reset to the leaves, which converge on the new cluster", func(ctx SpecContext) {
		r := startRelay(relayConfig(), "127.0.0.1:0")
		recs, _ := startLeaves(3, leafConfig(r.url()))
		Eventually(allInSync(ctx, recs)).WithContext(ctx).Should(Succeed())
		stopping := leafConfig(r.url())
		stopping.OnClusterReset = supervisor.StopOnReset
		stopper, _ := startSyncer(stopping)

		Expect(etcd.Rebuild()).To(Succeed())
		var err error
		keys, err = etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		for i := range 50 {
			_, err := keys.Set(ctx, fmt.Sprintf("%s/host/h%d/k%d", prefix, i%5, i), "rebuilt", nil)
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(allInSync(ctx, recs)).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
		Eventually(stopper.Done()).WithContext(ctx).Should(BeClosed(), "a leaf under StopOnReset stops")
		Expect(errors.Is(stopper.Err(), messages.ErrUpstreamReset) || errors.Is(stopper.Err(), messages.ErrClusterIDChanged)).
			To(BeTrue(), "got %v", stopper.Err())
	}, SpecTimeout(120*time.Second))
}

// etcdMetric reads one unlabelled series from an etcd member's /metrics.
func etcdMetric(ctx context.Context, endpoint, series string) float64 {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/metrics", nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	Expect(m).NotTo(BeNil(), "etcd's /metrics has no %s", series)
	v, err := strconv.ParseFloat(string(m[1]), 64)
	Expect(err).NotTo(HaveOccurred())
	return v
}
