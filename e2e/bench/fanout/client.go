package fanout

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/etcdsync/etcdsync/relay/wire"
)

// clientBuffer is how much of the stream a Client holds at once. A kvs
// frame (512 keys of about 330 bytes) is longer: it is counted in pieces.
const clientBuffer = 32 << 10

// Patterns the Client counts. Inside a frame, values are JSON strings, so
// their quotes are escaped: these never match inside a value.
var (
	keyPattern = []byte(`{"k":`)
	endPattern = []byte(`{"type":"snapshot-end"`)
)

// SeqMarker starts every value Write writes, followed by the write's
// sequence number in decimal: a Client finds writes in delta frames by it.
const SeqMarker = "fanout-seq-"

// Client is a lightweight relay client: one TCP connection on which it
// sends the stream request and then counts what it reads, decoding no
// JSON. It is the cheapest client that still knows it holds the whole
// snapshot (it counts the keys of the kvs frames) and sees each write (it
// finds SeqMarker in the delta frames), so that the relay's CPU, not the
// clients', dominates a run on a small machine. A Client is not safe for
// concurrent use.
type Client struct {
	conn  net.Conn
	wire  countingReader // the response body, as sent (compressed or not)
	body  io.ReadCloser  // decompressed if zstd
	br    *bufio.Reader
	carry []byte // the end of a piece of a line split by the buffer

	tee io.Writer

	// Sent is when Send finished writing the request.
	Sent time.Time
}

// Dial opens a Client's connection to addr (host:port); nothing is sent
// yet, so that many can be opened off the clock and then asked at once.
func Dial(addr string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn}, nil
}

// Request is what a Client asks a relay for.
type Request struct {
	Prefix   string // required
	Features string // comma-separated, or empty
	Zstd     bool   // send Accept-Encoding: zstd
	// ClusterID, Revision and Digest, if set, are a resume position
	// (PROTOCOL.md, "Resume positions").
	ClusterID string
	Revision  uint64
	Digest    string
	// Tee, if not nil, receives every byte of the body as decoded (after
	// zstd).
	Tee io.Writer
}

// Request sends the stream request and reads the response's header.
func (c *Client) Request(r Request) error {
	if err := c.Send(r); err != nil {
		return err
	}
	return c.ReadHeader()
}

// Send writes the stream request; ReadHeader then reads the response's
// header. Apart, they let one goroutine send many clients' requests at
// once before any of them reads.
func (c *Client) Send(r Request) error {
	q := url.Values{wire.ParamPrefix: {r.Prefix}}
	if r.Features != "" {
		q.Set(wire.ParamFeatures, r.Features)
	}
	wire.Position{ClusterID: r.ClusterID, Revision: r.Revision, Digest: r.Digest}.AddTo(q)
	req := "GET " + wire.StreamPath + "?" + q.Encode() + " HTTP/1.1\r\nHost: relay\r\n"
	if r.Zstd {
		req += "Accept-Encoding: " + wire.EncodingZstd + "\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"); err != nil {
		return err
	}
	c.Sent, c.tee = time.Now(), r.Tee
	return nil
}

// ReadHeader reads the response's header, after Send.
func (c *Client) ReadHeader() error {
	resp, err := http.ReadResponse(bufio.NewReaderSize(c.conn, 4<<10), nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("fanout: stream request: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	c.wire = countingReader{r: resp.Body}
	c.body = io.NopCloser(&c.wire)
	if resp.Header.Get("Content-Encoding") == wire.EncodingZstd {
		if c.body, err = wire.NewZstdReader(&c.wire); err != nil {
			return err
		}
	}
	var body io.Reader = c.body
	if c.tee != nil {
		body = io.TeeReader(c.body, c.tee)
	}
	c.br = bufio.NewReaderSize(body, clientBuffer)
	return nil
}

// Snapshot is what a Client counted up to the end of its first snapshot.
type Snapshot struct {
	Keys   int   // keys in kvs frames
	Frames int   // frames, hello and snapshot-end included
	Bytes  int64 // stream bytes, decoded (after zstd)
	Wire   int64 // body bytes as sent (zstd-compressed, if it was)
}

// resumed is how a hello frame that resumes says so.
var resumed = []byte(`"resume":true`)

// ReadHello reads the hello frame and reports whether the relay resumes
// the client's position (no snapshot follows).
func (c *Client) ReadHello() (resume bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return false, fmt.Errorf("fanout: reading the hello frame: %w", err)
	}
	if !bytes.HasPrefix(line, []byte(`{"type":"hello"`)) {
		return false, fmt.Errorf("fanout: the first frame is not hello: %.100q", line)
	}
	return bytes.Contains(line, resumed), nil
}

// ReadSnapshot reads frames to the end of the first snapshot and returns
// what it counted.
func (c *Client) ReadSnapshot() (Snapshot, error) {
	var s Snapshot
	start := true // the next piece starts a frame
	for {
		piece, err := c.br.ReadSlice('\n')
		s.Bytes += int64(len(piece))
		if start && bytes.HasPrefix(piece, endPattern) {
			s.Frames++
			s.Wire = c.wire.n.Load()
			return s, nil
		}
		s.Keys += c.count(piece, keyPattern)
		switch err {
		case nil:
			s.Frames++
			start, c.carry = true, c.carry[:0]
		case bufio.ErrBufferFull:
			start = false
			c.keepTail(piece, len(keyPattern)-1)
		default:
			return s, fmt.Errorf("fanout: reading the snapshot after %d frames and %d keys: %w", s.Frames, s.Keys, err)
		}
	}
}

// Follow reads the stream after the snapshot until it fails (it is closed,
// or its peer goes away) and calls seen with the sequence number of every
// SeqMarker it finds and when the piece holding it was read. A number may be
// reported more than once.
func (c *Client) Follow(seen func(seq int, at time.Time)) error {
	marker := []byte(SeqMarker)
	tail := len(marker) + 20 - 1
	for {
		piece, err := c.br.ReadSlice('\n')
		now := time.Now()
		if len(c.carry) > 0 {
			joined := append(c.carry, piece[:min(len(piece), tail)]...)
			findSeqs(joined, marker, now, seen)
		}
		findSeqs(piece, marker, now, seen)
		switch err {
		case nil:
			c.carry = c.carry[:0]
		case bufio.ErrBufferFull:
			c.keepTail(piece, tail)
		default:
			return err
		}
	}
}

// findSeqs reports every marker in b that is followed by a complete number.
func findSeqs(b, marker []byte, at time.Time, seen func(int, time.Time)) {
	for {
		i := bytes.Index(b, marker)
		if i < 0 {
			return
		}
		b = b[i+len(marker):]
		n := 0
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			n++
		}
		if n == len(b) { // the number may go on in the next piece
			return
		}
		if seq, err := strconv.Atoi(string(b[:n])); err == nil && n > 0 {
			seen(seq, at)
		}
		b = b[n:]
	}
}

// count counts pattern in piece and across its boundary with the previous
// piece of the same line.
func (c *Client) count(piece, pattern []byte) int {
	n := bytes.Count(piece, pattern)
	if len(c.carry) > 0 {
		joined := append(c.carry, piece[:min(len(piece), len(pattern)-1)]...)
		n += bytes.Count(joined, pattern)
	}
	return n
}

func (c *Client) keepTail(piece []byte, n int) {
	c.carry = append(c.carry[:0], piece[len(piece)-min(len(piece), n):]...)
}

// Close closes the connection.
func (c *Client) Close() error {
	if c.body != nil {
		_ = c.body.Close()
	}
	return c.conn.Close()
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Deliveries tracks, for writes numbered 0 to n-1, when each of many
// clients first saw each write: the time of the last client's first sight
// is the write's fan-out delivery. Its methods are safe for concurrent use.
type Deliveries struct {
	base    time.Time
	last    []atomic.Int64 // per write: latest first sight, ns after base
	clients []atomic.Int32 // per write: clients that saw it
}

// NewDeliveries tracks n writes.
func NewDeliveries(n int) *Deliveries {
	return &Deliveries{base: time.Now(), last: make([]atomic.Int64, n), clients: make([]atomic.Int32, n)}
}

// Seen returns a function for one client's sightings (as Client.Follow
// calls it): it counts only the first sight of each write.
func (d *Deliveries) Seen() func(seq int, at time.Time) {
	got := make([]uint64, (len(d.last)+63)/64)
	return func(seq int, at time.Time) {
		if seq < 0 || seq >= len(d.last) || got[seq/64]&(1<<(seq%64)) != 0 {
			return
		}
		got[seq/64] |= 1 << (seq % 64)
		ns := at.Sub(d.base).Nanoseconds()
		for {
			prev := d.last[seq].Load()
			if ns <= prev || d.last[seq].CompareAndSwap(prev, ns) {
				break
			}
		}
		d.clients[seq].Add(1)
	}
}

// Complete reports how many of the first n writes every one of clients
// has seen.
func (d *Deliveries) Complete(n, clients int) int {
	done := 0
	for i := range min(n, len(d.clients)) {
		if int(d.clients[i].Load()) >= clients {
			done++
		}
	}
	return done
}

// Lags returns, for each of the first n writes that all of clients saw,
// the time from its acknowledgement (acks[i]; zero: not acknowledged, left
// out) to the last client's first sight (0 if that beat the
// acknowledgement), and how many writes were acknowledged but not seen by
// every client.
func (d *Deliveries) Lags(acks []time.Time, clients int) (lags []time.Duration, missed int) {
	for i, ack := range acks {
		if ack.IsZero() || i >= len(d.last) {
			continue
		}
		if int(d.clients[i].Load()) < clients {
			missed++
			continue
		}
		lags = append(lags, max(0, d.base.Add(time.Duration(d.last[i].Load())).Sub(ack)))
	}
	return lags, missed
}
