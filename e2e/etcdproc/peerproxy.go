package etcdproc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
)

// peerProxy stands between one member's peer listener and every other
// member, so that Partition can cut the member off from its quorum while it
// keeps running and serving clients: the stale member that etcdsim's
// FreezeFollower simulates.
//
// etcd's peers dial each other both ways (rafthttp's stream readers dial the
// peer they read from, and its pipelines post to the peer they write to), so
// blocking a member's own proxy is not enough: every other proxy must also
// refuse the connections that member dials. rafthttp names the dialling
// member in an X-Server-From header on every request, which is how a proxy
// tells them apart: it reads the first request's header block before it
// forwards a byte.
type peerProxy struct {
	ln net.Listener

	mu      sync.Mutex
	target  string          // the member's real peer listener, host:port
	cut     bool            // refuse every connection into the member
	refused map[string]bool // member IDs (hex) whose connections are refused
	conns   map[net.Conn]string
	closed  bool
	wg      sync.WaitGroup
}

func newPeerProxy() (*peerProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &peerProxy{ln: ln, refused: map[string]bool{}, conns: map[net.Conn]string{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
	return p, nil
}

// url is the peer URL the member advertises.
func (p *peerProxy) url() string { return "http://" + p.ln.Addr().String() }

// setTarget names the member's real peer listener, host:port.
func (p *peerProxy) setTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// maxHeader bounds the header block read to learn who is dialling.
const maxHeader = 64 << 10

func (p *peerProxy) forward(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, maxHeader)
	from, err := dialler(br)
	if err != nil {
		return
	}
	target, ok := p.track(c, from)
	if !ok {
		return
	}
	defer p.untrack(c)
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either way ending ends both
}

// dialler returns the X-Server-From of the request at the head of br
// without consuming it ("" for a request without one, such as the probes).
func dialler(br *bufio.Reader) (string, error) {
	for {
		b, _ := br.Peek(br.Buffered()) // what has come so far
		if end := bytes.Index(b, []byte("\r\n\r\n")); end >= 0 {
			for _, line := range strings.Split(string(b[:end]), "\r\n") {
				name, value, ok := strings.Cut(line, ":")
				if ok && strings.EqualFold(strings.TrimSpace(name), "X-Server-From") {
					return strings.TrimSpace(value), nil
				}
			}
			return "", nil
		}
		if len(b) >= maxHeader {
			return "", errors.New("header block too long")
		}
		if _, err := br.Peek(len(b) + 1); err != nil { // wait for more
			return "", err
		}
	}
}

func (p *peerProxy) track(c net.Conn, from string) (target string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cut || p.refused[from] {
		return "", false
	}
	p.conns[c] = from
	return p.target, true
}

func (p *peerProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// block refuses, and cuts, every connection into the member (all) or those
// dialled by the member with ID from.
func (p *peerProxy) block(all bool, from string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if all {
		p.cut = true
	} else {
		p.refused[from] = true
	}
	for c, f := range p.conns {
		if all || f == from {
			_ = c.Close()
		}
	}
}

// unblock lets them through again.
func (p *peerProxy) unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	clear(p.refused)
}

func (p *peerProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}
