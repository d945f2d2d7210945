package relay_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// openFDs counts this process's open file descriptors: the server's and
// the spec's connections both.
func openFDs() int {
	GinkgoHelper()
	es, err := os.ReadDir("/proc/self/fd")
	Expect(err).NotTo(HaveOccurred())
	return len(es)
}

// stalled opens n connections to addr that never send a byte, closed when
// the spec ends.
func stalled(addr string, n int) []net.Conn {
	GinkgoHelper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Close)
		conns[i] = c
	}
	return conns
}

// closedByServer counts the connections the server has closed: a read
// returns EOF or a reset at once, where an open one times out.
func closedByServer(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
			n++
		}
	}
	return n
}

var _ = Describe("relay.Server's connections", func() {
	var (
		cfg     relay.Config
		rs      *relay.Server
		addr    string // host:port of the relay
		base    string // its URL
		tlsConf *tls.Config
		client  *http.Client
	)
	BeforeEach(func() {
		cfg = relay.Config{Prefix: prefix, MaxClients: 2, MaxConns: 6, HandshakeTimeout: 3 * time.Second,
			Logger: slog.New(slog.NewTextHandler(GinkgoWriter, nil))}
		tlsConf = nil
	})
	// The relay served as a host should: HTTPServer on Listener, TLS
	// around it when tlsConf is set.
	JustBeforeEach(func() {
		var err error
		rs, err = relay.New(cfg)
		Expect(err).NotTo(HaveOccurred())
		c := "c0ffee01"
		rs.SetClusterIDSource(func() string { return c })
		rs.OnStatusAt(messages.Resync, 0)
		rs.OnUpdates([]messages.Update{{Type: messages.UpdateTypeNew, Key: key(1), Value: "a", Revision: 2}})
		rs.OnStatusAt(messages.InSync, 2)

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr = ln.Addr().String()
		ln, base = rs.Listener(ln), "http://"+addr
		tr := &http.Transport{}
		if tlsConf != nil {
			ln, base = tls.NewListener(ln, tlsConf), "https://"+addr
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		client = &http.Client{Transport: tr}
		srv := rs.HTTPServer()
		srv.ErrorLog = slog.NewLogLogger(slog.NewTextHandler(GinkgoWriter, nil), slog.LevelWarn)
		go func() { _ = srv.Serve(ln) }()
		DeferCleanup(func() {
			rs.Close()
			_ = srv.Close()
			tr.CloseIdleConnections()
		})
	})

	// stream opens a stream and reads it until its snapshot has ended.
	stream := func(ctx SpecContext) *http.Response {
		GinkgoHelper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+wire.StreamPath+"?prefix="+prefix, nil)
		Expect(err).NotTo(HaveOccurred())
		resp, err := client.Do(req)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(resp.Body.Close)
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		dec := wire.NewDecoder(resp.Body, 0)
		for {
			f, err := dec.Next()
			Expect(err).NotTo(HaveOccurred())
			if f.Type == wire.TypeSnapshotEnd {
				return resp
			}
		}
	}

	// holdsAtMostMaxConns: twice MaxConns connections that never finish
	// their handshake keep the relay at MaxConns, the rest closed at
	// accept; once they time out, a leaf is served.
	holdsAtMostMaxConns := func(ctx SpecContext) {
		before := openFDs()
		conns := stalled(addr, 2*cfg.MaxConns)
		Eventually(func() relay.Stats { return rs.Stats() }).WithContext(ctx).Should(And(
			HaveField("Conns", cfg.MaxConns), HaveField("ConnsRefused", BeEquivalentTo(cfg.MaxConns))))
		Expect(closedByServer(conns)).To(Equal(cfg.MaxConns), "those past the bound are closed at once")
		Expect(openFDs()-before).To(BeNumerically("<=", len(conns)+cfg.MaxConns),
			"the spec's connections, and at most MaxConns of the relay's")

		By("the stalled ones time out; a leaf gets its stream")
		Eventually(func() int { return rs.Stats().Conns }).WithContext(ctx).Should(BeZero())
		Expect(closedByServer(conns)).To(Equal(len(conns)))
		stream(ctx)
		Expect(rs.Stats().Conns).To(Equal(1))
	}

	It("holds at most MaxConns, counted from accept, and serves a leaf once the stalled ones time out",
		holdsAtMostMaxConns, SpecTimeout(20*time.Second))

	When("it serves TLS", func() {
		BeforeEach(func() {
			ts := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate
			tlsConf = ts.TLS.Clone()
			ts.Close()
		})
		It("counts connections from accept, before their handshake", holdsAtMostMaxConns, SpecTimeout(20*time.Second))
	})

	It("closes a refused client's connection instead of keeping it idle", func(ctx SpecContext) {
		for range cfg.MaxClients {
			stream(ctx)
		}
		conn, err := net.Dial("tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		_, err = io.WriteString(conn, "GET "+wire.StreamPath+"?prefix="+prefix+" HTTP/1.1\r\nHost: relay\r\n\r\n")
		Expect(err).NotTo(HaveOccurred())
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
		_, err = io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred(), "the body ends: the relay closed the connection")
		Expect(resp.Close).To(BeTrue(), "Connection: close")
		Eventually(func() int { return rs.Stats().Conns }).WithContext(ctx).Should(Equal(cfg.MaxClients))
	}, SpecTimeout(10*time.Second))
})

var _ = Describe("a refusal from relay.Server, on any http.Server", func() {
	It("closes the connection: a client refused for MaxClients holds no idle descriptor", func(ctx SpecContext) {
		var id atomic.Pointer[string]
		c := "c0ffee01"
		id.Store(&c)
		rs, base := startServer(relay.Config{MaxClients: 1}, &id) // httptest's http.Server: keep-alives on
		rs.OnStatusAt(messages.InSync, 0)
		dial(ctx, base, dialOpts{})
		conn, err := net.Dial("tcp", base[len("http://"):])
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		_, err = io.WriteString(conn, "GET "+wire.StreamPath+"?prefix="+prefix+" HTTP/1.1\r\nHost: relay\r\n\r\n")
		Expect(err).NotTo(HaveOccurred())
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
		Expect(errorFrame(resp).Code).To(Equal(wire.CodeTooManyClients))
		Expect(resp.Close).To(BeTrue(), "the refusal says Connection: close")
		_, err = br.ReadByte()
		Expect(err).To(MatchError(io.EOF), "the relay closed the connection, not kept it idle")
	}, SpecTimeout(10*time.Second))
})

var _ = Describe("relay.Config's connection bound", func() {
	It("refuses MaxConns below MaxClients, or negative, naming the field", func() {
		_, err := relay.New(relay.Config{Prefix: prefix, MaxClients: 10, MaxConns: 9})
		var ce *relay.ConfigError
		Expect(errors.As(err, &ce)).To(BeTrue())
		Expect(ce.Field).To(Equal("MaxConns"))
		_, err = relay.New(relay.Config{Prefix: prefix, MaxConns: -1})
		Expect(err).To(MatchError(ContainSubstring("MaxConns")))
		_, err = relay.New(relay.Config{Prefix: prefix, HandshakeTimeout: -time.Second})
		Expect(err).To(MatchError(ContainSubstring("HandshakeTimeout")))
	})

	It("defaults to MaxClients and a quarter more, at least 32 more", func(ctx SpecContext) {
		rs, err := relay.New(relay.Config{Prefix: prefix, MaxClients: 4})
		Expect(err).NotTo(HaveOccurred())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		srv := rs.HTTPServer()
		go func() { _ = srv.Serve(rs.Listener(ln)) }()
		DeferCleanup(srv.Close)
		stalled(ln.Addr().String(), 40)
		Eventually(func() relay.Stats { return rs.Stats() }).WithContext(ctx).Should(And(
			HaveField("Conns", 36), HaveField("ConnsRefused", BeEquivalentTo(4))))
	}, SpecTimeout(10*time.Second))
})
