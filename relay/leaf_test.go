package relay_test

import (
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Real leaves (syncers with Config.Relays) of relay.Servers in process,
// whose upstreams the spec plays: failovers and relay histories no etcd
// run reproduces on demand.
var _ = Describe("a leaf of relay.Servers", func() {
	var (
		system *actor.ActorSystem
		logs   *gbytes.Buffer // everything the leaf logged
	)
	BeforeEach(func() {
		logs = gbytes.NewBuffer()
		system = supervisor.NewSystem(slog.New(slog.NewTextHandler(GinkgoWriter, nil)))
		DeferCleanup(system.Shutdown)
	})

	// newRelay serves a relay.Server for cfg, of cluster c0ffee01, with an
	// upstream that has synced /k001 and /k002 and is in sync at their
	// revision, a resume position.
	newRelay := func(cfg relay.Config) (*upstream, string) {
		GinkgoHelper()
		var id atomic.Pointer[string]
		c := "c0ffee01"
		id.Store(&c)
		rs, base := startServer(cfg, &id)
		up := &upstream{rs: rs, keys: map[string]string{}}
		up.status(messages.WaitForDatastore)
		up.status(messages.Resync)
		up.set(key(1), "a", key(2), "b")
		rs.OnStatusAt(messages.InSync, up.rev)
		return up, base
	}
	startLeaf := func(prefix string, relays ...string) *recorder.Recorder {
		GinkgoHelper()
		return startLeaf(system, logs, prefix, relays...)
	}

	It("fails over without keeping a key the first relay's resync sent and etcd deleted since", func(ctx SpecContext) {
		a, aURL := newRelay(relay.Config{RetryAfter: time.Second})
		b, bURL := newRelay(relay.Config{})
		rec := startLeaf(prefix, bURL, aURL) // starts at A
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(a.Map()))

		By("both relays lose their watch; A resyncs while etcd holds /k003 (written at 3), and sends it with no position")
		a.status(messages.Resync)
		a.set(key(3), "c")
		Eventually(func() uint64 { return a.rs.Stats().MaxLag }).WithContext(ctx).Should(BeZero(), "A wrote it to the leaf")
		By("B resyncs after etcd deleted /k003 at 4: its view already is etcd's, so it sends nothing but its statuses")
		b.status(messages.Resync)
		b.rev = 4
		b.rs.OnStatusAt(messages.InSync, b.rev)

		By("A goes away: the leaf moves to B")
		a.rs.Close()
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(b.Map()), "in sync, without /k003")
		Consistently(rec.InSyncMap).WithContext(ctx).WithTimeout(200 * time.Millisecond).Should(Equal(b.Map()))
	}, SpecTimeout(20*time.Second))

	It("syncs from a relay of a quiet etcd that supervisor.Start alone set up: the relay knows the cluster before the first delivery", func(ctx SpecContext) {
		sim := etcdsim.New()
		sim.Load(map[string]string{key(1): "a", key(2): "b"})
		rs, err := relay.New(relay.Config{Prefix: prefix, Logger: slog.New(slog.NewTextHandler(GinkgoWriter, nil))})
		Expect(err).NotTo(HaveOccurred())
		cfg := loopback.Config()
		cfg.Endpoints, cfg.KeysAPI = nil, sim
		up, err := supervisor.Start(system, cfg, rs) // and no SetClusterIDSource: Start's job
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(up.Stop)
		ts := httptest.NewServer(rs)
		DeferCleanup(ts.Close)
		DeferCleanup(rs.Close) // first: httptest waits for the streams to end

		rec := startLeaf(prefix, ts.URL)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(sim.Map(prefix)), "in sync with no write after the relay's")
	}, SpecTimeout(20*time.Second))

	It("syncs from a relay whose prefix was given with a trailing slash", func(ctx SpecContext) {
		up, url := newRelay(relay.Config{Prefix: prefix + "/"})
		rec := startLeaf(prefix, url)
		Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(up.Map()))
	}, SpecTimeout(10*time.Second))

	It("never logs the password of a relay endpoint", func(ctx SpecContext) {
		up, url := newRelay(relay.Config{})
		up.rs.Close() // every stream is refused: the leaf logs it, and retries
		withPassword := "http://leaf:s3cr3t@" + url[len("http://"):]
		startLeaf(prefix, withPassword)
		Eventually(logs).WithContext(ctx).Should(gbytes.Say("relay stream failed"))
		Eventually(logs).WithContext(ctx).Should(gbytes.Say("relay stream failed"), "a reconnect, and its error")
		Expect(string(logs.Contents())).To(And(ContainSubstring("syncer started"), ContainSubstring("leaf:xxxxx@")))
		Expect(string(logs.Contents())).NotTo(ContainSubstring("s3cr3t"))
	}, SpecTimeout(20*time.Second))
})
