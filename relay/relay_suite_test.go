package relay_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/format"

	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/internal/replay"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/relay/wire"
	"github.com/etcdsync/etcdsync/supervisor"
)

func TestRelay(t *testing.T) {
	RegisterFailHandler(Fail)
	format.MaxLength = 4000 // the slow-client spec's values are 32 KiB each
	RunSpecs(t, "relay")
}

const prefix = "/calico/v1"

// startServer serves a relay.Server for cfg on a loopback port, closed when
// the spec ends; the server's cluster ID is whatever clusterID holds.
func startServer(cfg relay.Config, clusterID *atomic.Pointer[string]) (*relay.Server, string) {
	GinkgoHelper()
	if cfg.Prefix == "" {
		cfg.Prefix = prefix
	}
	cfg.Logger = slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rs, err := relay.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	rs.SetClusterIDSource(func() string { return *clusterID.Load() })
	ts := httptest.NewUnstartedServer(rs)
	ts.Config.ReadHeaderTimeout = 5 * time.Second
	ts.Config.MaxHeaderBytes = 8 << 10
	ts.Start()
	DeferCleanup(ts.Close)
	DeferCleanup(rs.Close) // first: httptest waits for the streams to end
	return rs, ts.URL
}

// client is a lightweight relay client: it reads its stream on a goroutine
// and applies every frame to a wire.Mirror. Its reads can be paused.
type client struct {
	resp *http.Response

	mu      sync.Mutex
	m       *wire.Mirror
	types   []wire.Type
	err     error         // why the stream ended
	resumed chan struct{} // non-nil while paused
	done    chan struct{}
}

type dialOpts struct {
	clusterID string
	revision  uint64
	features  string
	zstd      bool
	rcvbuf    int          // SO_RCVBUF of the client's socket, 0: the kernel's
	from      *wire.Mirror // what a resuming client holds
}

func query(o dialOpts) url.Values {
	q := url.Values{wire.ParamPrefix: {prefix}}
	if o.clusterID != "" {
		q.Set(wire.ParamClusterID, o.clusterID)
		q.Set(wire.ParamRevision, strconv.FormatUint(o.revision, 10))
		if o.from != nil && o.from.Digest != "" {
			q.Set(wire.ParamDigest, o.from.Digest) // the view it resumes with is from's
		}
	}
	if o.features != "" {
		q.Set(wire.ParamFeatures, o.features)
	}
	return q
}

// dial opens a stream; a refusal is returned as the response, with no client.
func dial(ctx context.Context, base string, o dialOpts) (*client, *http.Response) {
	GinkgoHelper()
	d := &net.Dialer{}
	if o.rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, DisableCompression: true}
	DeferCleanup(tr.CloseIdleConnections)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+wire.StreamPath+"?"+query(o).Encode(), nil)
	Expect(err).NotTo(HaveOccurred())
	if o.zstd {
		req.Header.Set("Accept-Encoding", "zstd")
	}
	resp, err := tr.RoundTrip(req)
	Expect(err).NotTo(HaveOccurred())
	if resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	c := &client{resp: resp, m: wire.NewMirror(), done: make(chan struct{})}
	if o.from != nil {
		c.m = o.from.Resuming()
	}
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == wire.EncodingZstd {
		zr, err := wire.NewZstdReader(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(zr.Close)
		body = zr
	}
	DeferCleanup(func() {
		resp.Body.Close()
		c.mu.Lock()
		if c.resumed != nil { // a spec that failed while paused
			close(c.resumed)
			c.resumed = nil
		}
		c.mu.Unlock()
		<-c.done
	})
	go c.read(wire.NewDecoder(body, 0))
	return c, resp
}

func (c *client) read(dec *wire.Decoder) {
	defer close(c.done)
	for {
		c.mu.Lock()
		wait := c.resumed
		c.mu.Unlock()
		if wait != nil {
			<-wait
		}
		f, err := dec.Next()
		c.mu.Lock()
		if err == nil {
			c.types = append(c.types, f.Type)
			err = c.m.Apply(f)
		}
		if err != nil {
			c.err = err
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

func (c *client) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resumed = make(chan struct{})
}

func (c *client) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.resumed)
	c.resumed = nil
}

// Map is the client's view once a snapshot has ended (nil before).
func (c *client) Map() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m.InSnapshot() || (c.m.Snapshots == 0 && !c.m.Resumed) {
		return nil
	}
	return c.m.Map()
}

// mirror returns a copy of the mirror's counters and position.
func (c *client) mirror() *wire.Mirror {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Clone()
}

func (c *client) Snapshots() int { m := c.mirror(); return m.Snapshots }
func (c *client) Pings() int     { m := c.mirror(); return m.Pings }
func (c *client) Status() messages.SyncStatus {
	m := c.mirror()
	return m.Status
}

// Err is why the stream ended, nil while it runs.
func (c *client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ended reports whether the stream has ended, with an error other than a
// refusal frame.
func (c *client) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// errorFrame reads a refusal's body: one error frame.
func errorFrame(resp *http.Response) *wire.Frame {
	GinkgoHelper()
	defer resp.Body.Close()
	f, err := wire.NewDecoder(resp.Body, 0).Next()
	Expect(err).NotTo(HaveOccurred())
	Expect(f.Type).To(Equal(wire.TypeError))
	return f
}

// startLeaf starts a leaf (a syncer with Config.Relays) of relays on
// system, at relays[len(relays)/2], logging to GinkgoWriter and to also,
// if not nil; it is stopped, and its recorder checked, at the spec's end.
func startLeaf(system *actor.ActorSystem, also io.Writer, prefix string, relays ...string) *recorder.Recorder {
	GinkgoHelper()
	cfg := loopback.Config()
	cfg.Endpoints, cfg.Relays, cfg.Prefix = nil, relays, prefix
	cfg.RelayReadTimeout = 3 * time.Second
	cfg = replay.With(cfg, replay.Hooks{Rand: func(n int64) int64 { return n / 2 }})
	var w io.Writer = GinkgoWriter
	if also != nil {
		w = io.MultiWriter(GinkgoWriter, also)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := recorder.New()
	s, err := supervisor.Start(system, cfg, rec)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx context.Context) {
		Expect(s.Stop(ctx)).To(Succeed())
		rec.Close()
		Expect(rec.Violation()).NotTo(HaveOccurred())
	})
	return rec
}
