package supervisor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/etcdsync/etcdsync/internal/redact"
)

// newTransport returns the syncer's own transport to etcd (client/v2's
// DefaultTransport settings, with tlsConfig for https endpoints) and the
// tracker of every connection it dials, which Stop closes: a dial that
// outlives its cancelled request leaves a connection nobody uses, and an
// embedded etcd's Close waits for it forever.
func newTransport(tlsConfig *tls.Config) (*http.Transport, *connTracker) {
	conns := &connTracker{
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		conns:  map[*trackedConn]struct{}{},
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         conns.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     tlsConfig,
	}, conns
}

// ValidateEndpoint reports whether ep is an etcd client URL the syncer can
// use: http(s)://host:port.
func ValidateEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the URL it quotes, password and all
		}
		return fmt.Errorf("%q is not a URL: %w", redact.URL(ep), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s)://host:port URL", u.Redacted())
	}
	return nil
}

// errConnsClosed is the error of a dial after connTracker.CloseAll.
var errConnsClosed = errors.New("etcdsync: connections to etcd closed: the syncer has stopped")

// connTracker dials connections and closes them all at once when the
// syncer stops, idle or not.
type connTracker struct {
	dialer net.Dialer

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// DialContext dials, and tracks the connection.
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
