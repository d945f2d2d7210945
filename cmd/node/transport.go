package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// etcdTransport returns the syncer's transport to etcd, with the CA and
// client certificate the TLS flags name (a file that cannot be used is a
// *flagError), and the tracker of the connections it dials.
func etcdTransport(c config) (*http.Transport, *connTracker, error) {
	var tlsConfig *tls.Config
	if c.CAFile != "" || c.CertFile != "" {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, nil, badFlag("etcd-ca-file", "reading the CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, badFlag("etcd-ca-file", "%s holds no PEM certificate", c.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, nil, badFlag("etcd-cert-file", "loading the client certificate and --etcd-key-file: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	conns := &connTracker{
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		conns:  map[*trackedConn]struct{}{},
	}
	// client.DefaultTransport's settings, plus TLS and the tracker.
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         conns.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     tlsConfig,
	}, conns, nil
}

var _ client.CancelableTransport = (*http.Transport)(nil)

// errConnsClosed is the error of a dial after connTracker.CloseAll.
var errConnsClosed = errors.New("connections to etcd closed: the node is stopping")

// connTracker dials connections and closes them all at once when the syncer
// has stopped. http.Transport finishes a dial even when the request that
// started it was cancelled, and pools the new connection: so a syncer
// stopped mid-request can leave a connection that never carried a byte.
// An embedded etcd's Close waits for every such connection (its cmux is
// still waiting to learn the protocol), with no timeout, so the node must
// close them before it stops etcd. Safe for concurrent use.
type connTracker struct {
	dialer net.Dialer

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// DialContext is the transport's dialer.
func (t *connTracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errConnsClosed
	}
	c, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed { // CloseAll ran while this dial was under way
		_ = c.Close()
		return nil, errConnsClosed
	}
	tc := &trackedConn{Conn: c, tracker: t}
	t.conns[tc] = struct{}{}
	return tc, nil
}

// CloseAll closes every connection and makes later dials fail.
func (t *connTracker) CloseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		_ = c.Conn.Close()
	}
	clear(t.conns)
}

// open returns how many connections are open.
func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// trackedConn leaves its tracker when closed.
type trackedConn struct {
	net.Conn
	tracker *connTracker
}

func (c *trackedConn) Close() error {
	c.tracker.mu.Lock()
	delete(c.tracker.conns, c)
	c.tracker.mu.Unlock()
	return c.Conn.Close()
}

// describeEndpoints is for logs: the endpoints and whether TLS and auth are
// on, never the password.
func describeEndpoints(c config) []any {
	eps := make([]string, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		eps[i] = ep
		if u, err := url.Parse(ep); err == nil {
			eps[i] = u.Redacted() // http://user:xxxxx@host
		}
	}
	return []any{"endpoints", eps, "tls", c.CAFile != "" || c.CertFile != "", "user", c.Username}
}
