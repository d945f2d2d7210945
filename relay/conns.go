package relay

import (
	"net"
	"net/http"
	"sync/atomic"
)

// maxHeaderBytes bounds a stream request's headers: a handshake is a short
// GET, so anything bigger is refused (431) before it reaches the handler.
const maxHeaderBytes = 8 << 10

// Listener returns ln wrapped so that the relay holds at most
// Config.MaxConns connections at once, counted from accept to close: those
// still in their TLS handshake or sending their request, refusals being
// written, and streams. A connection accepted past the bound is closed at
// once, before it costs a goroutine or a TLS handshake; its client sees the
// connection closed and tries again after its backoff, elsewhere if it has
// other relays. MaxClients alone counts only streams, so without this
// wrapper a flood of connections that never finish their request holds a
// file descriptor and a goroutine each until the header timeout, without
// bound.
//
// Wrap the plain TCP listener, and TLS (tls.NewListener) around what this
// returns, so that a connection is counted before its handshake. Serve it
// with HTTPServer's http.Server, whose timeouts close the connections that
// stall before their request. Safe for concurrent use.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &connLimiter{Listener: ln, s: s}
}

// HTTPServer returns the http.Server to serve s with, on Listener(ln): its
// handler is s; a TLS handshake, and then the request's headers, must each
// be done within Config.HandshakeTimeout of their start, or the connection
// is closed; the headers are at most 8 KiB (431 past that); and every
// connection carries one request, so a refused client's connection is
// closed, not kept idle. The host may set the rest (ErrorLog, TLSConfig for
// ServeTLS, BaseContext) before serving.
func (s *Server) HTTPServer() *http.Server {
	srv := &http.Server{
		Handler: s,
		// net/http applies the smallest of these timeouts to the TLS
		// handshake too.
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	// A stream is one response that lasts; the only requests that end are
	// refusals, after which the client goes elsewhere or waits seconds:
	// keeping their connections idle would only hold descriptors.
	srv.SetKeepAlivesEnabled(false)
	return srv
}

// connLimiter is a listener of Server.Listener.
type connLimiter struct {
	net.Listener
	s *Server
}

// Accept returns the next connection within Config.MaxConns, closing
// those past it.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.s.conns.Add(1); n > int64(l.s.cfg.maxConns()) {
			l.s.conns.Add(-1)
			_ = c.Close()
			if n := l.s.stats.connsRefused.Add(1); l.s.logNow(&l.s.lastConnLog) {
				l.s.cfg.Logger.Warn("relay connection closed at accept: too many connections",
					"client", c.RemoteAddr().String(), "max", l.s.cfg.maxConns(), "refusedSoFar", n)
			}
			continue
		}
		return &countedConn{Conn: c, s: l.s}, nil
	}
}

// countedConn is a connection the server counts until it is closed.
type countedConn struct {
	net.Conn
	s      *Server
	closed atomic.Bool
}

// Close closes the connection, and uncounts it the first time.
func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.s.conns.Add(-1)
	}
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection, as net/http does to let a client
// read a response before the connection is closed.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
