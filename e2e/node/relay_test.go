package node_test

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// relayClient is a lightweight relay client: it applies every frame of its
// stream to a wire.Mirror, on a goroutine of its own.
type relayClient struct {
	mu   sync.Mutex
	m    *wire.Mirror
	err  error
	done chan struct{}
}

// dialRelay opens a stream at streamURL, resuming from m's position if m is
// not nil. The stream is closed when the spec ends.
func dialRelay(ctx context.Context, streamURL string, m *wire.Mirror) (*relayClient, func()) {
	GinkgoHelper()
	q := url.Values{wire.ParamPrefix: {"/calico/v1"}, wire.ParamFeatures: {wire.FeaturePing}}
	c := &relayClient{m: wire.NewMirror(), done: make(chan struct{})}
	if m != nil {
		m.Position().AddTo(q)
		c.m = m.Resuming()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL+"?"+q.Encode(), nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		dec := wire.NewDecoder(resp.Body, 0)
		for {
			f, err := dec.Next()
			c.mu.Lock()
			if err == nil {
				err = c.m.Apply(f)
			}
			c.err = err
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	stop := func() { cancel(); <-c.done }
	DeferCleanup(stop)
	return c, stop
}

// mirror returns a copy of what the client holds.
func (c *relayClient) mirror() *wire.Mirror {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Clone()
}

// view returns the client's keys while the relay is in sync and no
// snapshot is half received, else nil.
func (c *relayClient) view() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m.Status != messages.InSync || c.m.InSnapshot() {
		return nil
	}
	return c.m.Map()
}

var relayServing = regexp.MustCompile(`msg="relay serving" url=(\S+)`)

var _ = Describe("The node with --relay-listen", func() {
	It("serves its view to a relay client, which converges, sees a delete, and resumes without a snapshot", func(ctx SpecContext) {
		n := startEmbeddedNode("--relay-listen", "127.0.0.1:0")
		var streamURL string
		Eventually(func() []string { return relayServing.FindStringSubmatch(string(n.session.Err.Contents())) }).
			WithContext(ctx).WithTimeout(20 * time.Second).Should(HaveLen(2))
		streamURL = relayServing.FindStringSubmatch(string(n.session.Err.Contents()))[1]
		Eventually(n.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))

		const a, b, c = "/calico/v1/config/A", "/calico/v1/config/B", "/calico/v1/host/h1/C"
		putKey(ctx, n.etcdURL, a, "1")
		putKey(ctx, n.etcdURL, b, "2")
		client, stop := dialRelay(ctx, streamURL, nil)
		want := map[string]string{a: "1", b: "2"}
		Eventually(client.view).WithContext(ctx).WithTimeout(5 * time.Second).Should(Equal(want))
		Expect(client.mirror().ClusterID).To(Equal(clusterID(ctx, n.etcdURL)), "the relay names etcd's cluster")

		By("following a write and a delete made through etcd")
		putKey(ctx, n.etcdURL, c, "3")
		deleteKey(ctx, n.etcdURL, a)
		want = map[string]string{b: "2", c: "3"}
		Eventually(client.view).WithContext(ctx).WithTimeout(5 * time.Second).Should(Equal(want))
		Eventually(n.state).WithContext(ctx).Should(Equal(state{Status: "in-sync", Keys: want}), "the node's own view is the same")

		By("resuming from where it left off, with no snapshot")
		stop()
		left := client.mirror()
		Expect(left.Snapshots).To(Equal(1))
		putKey(ctx, n.etcdURL, a, "again")
		resumed, _ := dialRelay(ctx, streamURL, left)
		want[a] = "again"
		Eventually(resumed.view).WithContext(ctx).WithTimeout(5 * time.Second).Should(Equal(want))
		Expect(resumed.mirror().Resumed).To(BeTrue())
		Expect(resumed.mirror().Snapshots).To(Equal(0))
		Eventually(n.metric).WithContext(ctx).WithArguments(ctx, Default, "etcdsync_relay_clients").Should(BeEquivalentTo(1))
		Expect(n.metric(ctx, Default, "etcdsync_relay_resumes_total")).To(BeEquivalentTo(1))
		Expect(n.metric(ctx, Default, "etcdsync_relay_snapshots_sent_total")).To(BeEquivalentTo(1))
		Expect(n.metric(ctx, Default, "etcdsync_relay_bytes_sent_total")).To(BeNumerically(">", 0))
		Expect(n.metric(ctx, Default, `etcdsync_relay_clients_dropped_total{reason="client-gone"}`)).To(BeEquivalentTo(1),
			"the first client's stream, stopped by the spec")

		By("ending the open stream with a shutting-down frame on SIGTERM, and exiting 0")
		n.session.Terminate()
		Eventually(n.session).WithContext(ctx).WithTimeout(5 * time.Second).Should(gexec.Exit(0))
		Eventually(resumed.done).Should(BeClosed())
		Expect(resumed.err).To(MatchError(ContainSubstring(wire.CodeShuttingDown)))
	}, SpecTimeout(60*time.Second))

	It("feeds a leaf node (--relay-endpoints), which prints what is written through etcd, and is not ready while its relay is gone", func(ctx SpecContext) {
		relayPort := freePorts(1)[0]
		relayURL := "http://" + addr(relayPort)
		r := startEmbeddedNode("--relay-listen", addr(relayPort))
		leaf := startLeafNode([]string{relayURL})
		Eventually(leaf.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		Expect(statusCode(ctx, Default, leaf.httpURL+"/readyz")).To(Equal(http.StatusOK))

		const a, b = "/calico/v1/config/A", "/calico/v1/host/h1/B"
		putKey(ctx, r.etcdURL, a, "1")
		putKey(ctx, r.etcdURL, b, "2")
		deleteKey(ctx, r.etcdURL, a)
		Eventually(func(g Gomega) []line { return leaf.updates(g, a) }).WithContext(ctx).WithTimeout(5*time.Second).
			Should(HaveLen(2), "new, then deleted")
		want := state{Status: "in-sync", Keys: map[string]string{b: "2"}}
		Eventually(leaf.state).WithContext(ctx).Should(Equal(want))
		Eventually(r.state).WithContext(ctx).Should(Equal(want), "the relay's own view is the same")
		Expect(leaf.metric(ctx, Default, `etcdsync_relay_client_streams_total{start="snapshot"}`)).To(BeEquivalentTo(1))

		By("losing its relay")
		r.session.Kill()
		Eventually(func(g Gomega) int { return statusCode(ctx, g, leaf.httpURL+"/readyz") }).WithContext(ctx).
			WithTimeout(2 * time.Second).Should(Equal(http.StatusServiceUnavailable))
		Eventually(leaf.metric).WithContext(ctx).WithArguments(ctx, Default, "etcdsync_relay_client_reconnects_total").
			Should(BeNumerically(">=", 1))
	}, SpecTimeout(60*time.Second))

	It("brings a leaf frozen past the relay's log back with a fresh snapshot, while the other leaves keep up", func(ctx SpecContext) {
		// --output none, and progress read from the metrics: the values are
		// large, and parsing megabytes of stdout or /state at every poll
		// would make the spec, not the leaves, slow.
		relayPort := freePorts(1)[0]
		r := startEmbeddedNode("--relay-listen", addr(relayPort), "--relay-log-entries", "20", "--output", "none")
		relays := []string{"http://" + addr(relayPort)}
		frozen, live := startLeafNode(relays, "--output", "none"), startLeafNode(relays, "--output", "none")
		keys := func(n *node) func(Gomega) float64 {
			return func(g Gomega) float64 { return n.metric(ctx, g, "etcdsync_keys") }
		}
		for _, n := range []*node{frozen, live} {
			Eventually(func(g Gomega) int { return statusCode(ctx, g, n.httpURL+"/readyz") }).WithContext(ctx).
				WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))
		}
		Expect(frozen.session.Command.Process.Signal(syscall.SIGSTOP)).To(Succeed())
		frozenAt := time.Now()
		// 12.5 MiB in all, of random base64 that zstd shrinks by a quarter
		// only: more than the sockets between the relay and the frozen
		// leaf buffer (a receive buffer that stops growing when its reader
		// stops), so its stream stops at a position the 20-entry log soon
		// no longer holds. Not much more: the leaf, built with -race under
		// -race, must then decode a snapshot of it all.
		noise := make([]byte, 96<<10)
		for i := range 100 {
			key := fmt.Sprintf("/calico/v1/host/h%d/k%d", i%4, i)
			_, _ = crand.Read(noise)
			putKey(ctx, r.etcdURL, key, base64.StdEncoding.EncodeToString(noise))
			if i%25 == 0 { // the live leaf's lag does not grow with the frozen one's
				Eventually(keys(live)).WithContext(ctx).WithTimeout(2 * time.Second).Should(BeEquivalentTo(i + 1))
			}
		}
		Eventually(keys(r)).WithContext(ctx).Should(BeEquivalentTo(100))
		Eventually(keys(live)).WithContext(ctx).Should(BeEquivalentTo(100))
		// /state holds 12.5 MiB here, too much to fetch under load within
		// the helpers' timeout; the index each merged up to says the same.
		applied := func(n *node) func(Gomega) float64 {
			return func(g Gomega) float64 { return n.metric(ctx, g, "etcdsync_applied_index") }
		}
		want := r.metric(ctx, Default, "etcdsync_applied_index")
		Eventually(applied(live)).WithContext(ctx).Should(Equal(want))
		Expect(time.Since(frozenAt)).To(BeNumerically("<", 30*time.Second), "the frozen leaf's read deadline has not passed")

		Expect(frozen.session.Command.Process.Signal(syscall.SIGCONT)).To(Succeed())
		Eventually(keys(frozen)).WithContext(ctx).WithTimeout(45 * time.Second).Should(BeEquivalentTo(100))
		Eventually(func(g Gomega) int { return statusCode(ctx, g, frozen.httpURL+"/readyz") }).WithContext(ctx).
			Should(Equal(http.StatusOK))
		Eventually(applied(frozen)).WithContext(ctx).Should(Equal(want))
		// On its stream, or on a new one if the relay dropped it as slow
		// meanwhile: either way past the log, so a snapshot.
		Expect(r.metric(ctx, Default, "etcdsync_relay_snapshots_sent_total")).To(BeNumerically(">=", 3))
	}, SpecTimeout(150*time.Second))

	It("survives a hostile relay: a huge snapshot count allocates nothing, a key past it is a protocol error, and it reconnects", func(ctx SpecContext) {
		// The review's demo: a 77-byte snapshot-begin announcing 2^31
		// keys killed a leaf with a runtime throw (out of memory in
		// makemap), which no supervision catches.
		var streams atomic.Int64
		hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := streams.Add(1)
			w.Header().Set("Content-Type", "application/x-ndjson")
			frames := []*wire.Frame{
				{Type: wire.TypeHello, Version: wire.Version, Prefix: "/calico/v1", Status: "in-sync"},
				{Type: wire.TypeSnapshotBegin, ClusterID: "c0ffee", Revision: 10, Count: 1 << 31},
			}
			if n%2 == 0 { // one key announced, two sent
				frames[1].Count = 1
				frames = append(frames, &wire.Frame{Type: wire.TypeKVs, KVs: []wire.KV{
					{Key: "/calico/v1/a", Value: "1", Revision: 5}, {Key: "/calico/v1/b", Value: "2", Revision: 6}}})
			}
			var body []byte
			for _, f := range frames {
				body, _ = wire.Append(body, f)
			}
			_, _ = w.Write(body) // and the stream ends
		}))
		DeferCleanup(hostile.Close)
		leaf := startLeafNode([]string{hostile.URL})
		Eventually(streams.Load).WithContext(ctx).WithTimeout(20*time.Second).Should(BeNumerically(">=", 4),
			"the leaf reconnects, again and again")
		Expect(leaf.session.ExitCode()).To(Equal(-1), "still running")
		Expect(string(leaf.session.Err.Contents())).To(ContainSubstring("relay broke the protocol"))
		Expect(statusCode(ctx, Default, leaf.httpURL+"/readyz")).To(Equal(http.StatusServiceUnavailable))
	}, SpecTimeout(60*time.Second))

	It("refuses a leaf past --relay-max-clients with a retry hint and serves it once there is room; tells a leaf of a non-relay or of another prefix why; shrugs off garbage", func(ctx SpecContext) {
		relayPort := freePorts(1)[0]
		relays := []string{"http://" + addr(relayPort)}
		r := startEmbeddedNode("--relay-listen", addr(relayPort), "--relay-max-clients", "1")
		first := startLeafNode(relays)
		Eventually(first.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		second := startLeafNode(relays)
		notRelay := startLeafNode([]string{r.httpURL}) // the relay node's own HTTP API
		otherPrefix := startLeafNode(relays, "--prefix", "/other")
		stderr := func(n *node) func() string { return func() string { return string(n.session.Err.Contents()) } }
		Eventually(stderr(second)).WithContext(ctx).WithTimeout(10*time.Second).Should(And(
			ContainSubstring(relays[0]), ContainSubstring(wire.CodeTooManyClients), MatchRegexp(`after=[5-6]\.\d+s`)),
			"refused, and told to wait the relay's Retry-After (5 s) or a little more")
		Eventually(stderr(notRelay)).WithContext(ctx).WithTimeout(10 * time.Second).Should(And(
			ContainSubstring(r.httpURL), ContainSubstring("not a relay stream")))
		Eventually(stderr(otherPrefix)).WithContext(ctx).WithTimeout(10 * time.Second).Should(And(
			ContainSubstring(relays[0]), ContainSubstring(`field \"prefix\"`)))
		for _, n := range []*node{second, notRelay, otherPrefix} {
			Expect(statusCode(ctx, Default, n.httpURL+"/readyz")).To(Equal(http.StatusServiceUnavailable))
		}

		By("shrugging off garbage on the relay port")
		conn, err := net.Dial("tcp", addr(relayPort))
		Expect(err).NotTo(HaveOccurred())
		_, err = conn.Write([]byte("\x16\x03\x01garbage\r\n\r\nGET /etcdsync/relay/v1/stream?prefix=%zz HTTP/1.1\r\n\r\n"))
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.Close()).To(Succeed())
		putKey(ctx, r.etcdURL, "/calico/v1/config/AfterGarbage", "1")
		Eventually(first.state).WithContext(ctx).Should(HaveField("Keys", HaveKey("/calico/v1/config/AfterGarbage")))

		By("serving the refused leaf once the first has gone")
		first.session.Kill()
		Eventually(second.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		Eventually(second.state).WithContext(ctx).Should(HaveField("Keys", HaveKey("/calico/v1/config/AfterGarbage")))
	}, SpecTimeout(90*time.Second))
})
