package e2e_test

import (
	"context"
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

// relaySpecs are the specs every watch mode of the relay's syncer must
// pass: fanning out (relay_fanout_test.go) and resuming, failing over and
// passing resets on (relay_resume_test.go).
func relaySpecs(mode supervisor.WatchMode) {
	e := &relayEnv{mode: mode}
	BeforeEach(func(ctx SpecContext) {
		var err error
		e.etcd, err = etcdproc.StartCluster(1, etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(e.etcd.Stop)
		e.keys, err = e.etcd.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		load(ctx, e.keys, 300, 4)
	})
	relayFanoutSpecs(e)
	relayResumeSpecs(e)
}

// relayEnv is what the relay specs of one watch mode share: one etcd
// member, started for each spec, holding 300 keys at its start.
type relayEnv struct {
	mode supervisor.WatchMode
	etcd *etcdproc.Cluster
	keys client.KeysAPI
}

func (e *relayEnv) relayConfig() supervisor.Config {
	cfg := loopback.Config(e.etcd.Endpoints()...)
	cfg.WatchMode = e.mode
	return cfg
}

func (e *relayEnv) leafConfig(relays ...string) supervisor.Config {
	cfg := loopback.Config()
	cfg.Endpoints = nil
	cfg.Relays = relays
	cfg.RelayReadTimeout = 3 * time.Second
	return cfg
}

func (e *relayEnv) startLeaves(n int, cfg supervisor.Config) ([]*recorder.Recorder, []*leafCounter) {
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
func (e *relayEnv) allInSync(ctx context.Context, recs []*recorder.Recorder) func(Gomega) {
	return func(g Gomega) {
		want, err := etcdMap(ctx, e.keys, prefix)
		g.Expect(err).NotTo(HaveOccurred())
		for i, rec := range recs {
			g.Expect(rec.InSyncMap()).To(Equal(want), "leaf %d", i)
		}
	}
}

// updates returns how many updates each leaf's host was given.
func (e *relayEnv) updates(recs []*recorder.Recorder) []int {
	out := make([]int, len(recs))
	for i, rec := range recs {
		_, out[i] = rec.Calls()
	}
	return out
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
