package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etcdsync/etcdsync/internal/keyspace"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// writeChunk bounds one write, so that WriteTimeout bounds a stall rather
// than the time a whole snapshot takes.
const writeChunk = 256 << 10

// batchEntries is how many log entries a stream takes per look at the log.
const batchEntries = 256

// batchBufs holds the buffers streams copy log entries into, each at most
// writeChunk long, to write them at once.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

var (
	versionPath = regexp.MustCompile(`^/etcdsync/relay/v([0-9]+)/stream/?$`)
	clusterIDRe = regexp.MustCompile(`^[0-9a-f]{1,32}$`)
	featureRe   = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

// maxFeatures bounds the features a client may list.
const maxFeatures = 32

// handshake is a stream request, validated.
type handshake struct {
	ping bool     // the client takes pings
	zstd bool     // the client takes zstd
	pos  position // its resume position, if any
}

// requestError is a refused request: the status and the error frame.
type requestError struct {
	status int
	frame  wire.Frame
}

func (e *requestError) Error() string {
	return e.frame.Code + ": " + e.frame.Field + ": " + e.frame.Message
}

func badRequest(field, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, frame: wire.Frame{
		Type: wire.TypeError, Code: wire.CodeBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// parseHandshake validates a request against the protocol and cfg.
func parseHandshake(r *http.Request, cfg Config) (handshake, *requestError) {
	var h handshake
	if e := checkRequest(r, cfg); e != nil {
		return h, e
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return h, badRequest("query", "%v", err)
	}
	for name, vs := range q {
		if len(vs) > 1 {
			return h, badRequest(name, "given %d times", len(vs))
		}
	}
	switch prefix := q.Get(wire.ParamPrefix); {
	case prefix == "":
		return h, badRequest(wire.ParamPrefix, "missing; this relay serves %s", cfg.Prefix)
	case keyspace.Prefix(prefix) != cfg.Prefix: // withDefaults made cfg.Prefix canonical
		return h, badRequest(wire.ParamPrefix, "%q is not the prefix this relay serves, %s", prefix, cfg.Prefix)
	}
	var e *requestError
	if h.pos, e = parsePosition(q); e != nil {
		return h, e
	}
	if h.ping, e = parseFeatures(q); e != nil {
		return h, e
	}
	h.zstd = acceptsZstd(r.Header.Values("Accept-Encoding"))
	return h, nil
}

// checkRequest refuses what is no stream request: too long, another path
// or version, another method, a body.
func checkRequest(r *http.Request, cfg Config) *requestError {
	if len(r.URL.RawPath)+len(r.URL.Path)+len(r.URL.RawQuery) > cfg.MaxRequestBytes {
		return &requestError{status: http.StatusRequestURITooLong, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeTooLarge, Field: "query", Message: fmt.Sprintf("the path and query are over %d bytes", cfg.MaxRequestBytes)}}
	}
	if r.URL.Path != wire.StreamPath {
		if m := versionPath.FindStringSubmatch(r.URL.Path); m != nil {
			return &requestError{status: http.StatusBadRequest, frame: wire.Frame{Type: wire.TypeError,
				Code: wire.CodeBadVersion, Field: "version",
				Message: fmt.Sprintf("protocol version %s is not spoken here; this relay speaks %d at %s", m[1], wire.Version, wire.StreamPath)}}
		}
		return &requestError{status: http.StatusNotFound, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeNotFound, Field: "path", Message: fmt.Sprintf("%q is not a relay path; streams are at %s", r.URL.Path, wire.StreamPath)}}
	}
	if r.Method != http.MethodGet {
		return &requestError{status: http.StatusMethodNotAllowed, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeBadRequest, Field: "method", Message: r.Method + " is not GET"}}
	}
	if r.ContentLength != 0 {
		return &requestError{status: http.StatusRequestEntityTooLarge, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeTooLarge, Field: "body", Message: "a stream request has no body"}}
	}
	return nil
}

// parsePosition reads the resume position, if any: cluster ID and revision
// together, and the digest of the client's view.
func parsePosition(q url.Values) (position, *requestError) {
	var pos position
	id, rev, digest := q.Get(wire.ParamClusterID), q.Get(wire.ParamRevision), q.Get(wire.ParamDigest)
	switch {
	case id == "" && rev == "" && digest != "":
		return pos, badRequest(wire.ParamDigest, "given without %s and %s", wire.ParamClusterID, wire.ParamRevision)
	case id == "" && rev == "":
		return pos, nil
	case id == "":
		return pos, badRequest(wire.ParamClusterID, "missing: %s needs it", wire.ParamRevision)
	case rev == "":
		return pos, badRequest(wire.ParamRevision, "missing: %s needs it", wire.ParamClusterID)
	case !clusterIDRe.MatchString(id):
		return pos, badRequest(wire.ParamClusterID, "%q is not an etcd cluster ID (lower-case hex)", id)
	}
	n, err := strconv.ParseUint(rev, 10, 64)
	if err != nil || n == 0 {
		return pos, badRequest(wire.ParamRevision, "%q is not a positive integer", rev)
	}
	pos = position{cluster: id, rev: n}
	// A client older than digests sends none: it is served, with a
	// snapshot (resumeAt), as a client of a relay whose log no longer
	// holds its position would be.
	if digest != "" {
		d, err := wire.ParseDigest(digest)
		if err != nil {
			return pos, badRequest(wire.ParamDigest, "%q is not a digest (16 lower-case hex digits)", digest)
		}
		pos.digest, pos.hasDigest = d, true
	}
	return pos, nil
}

// parseFeatures reads the features the client asks for, and reports
// whether ping is one of them.
func parseFeatures(q url.Values) (ping bool, _ *requestError) {
	fs := q.Get(wire.ParamFeatures)
	if fs == "" {
		return false, nil
	}
	list := strings.Split(fs, ",")
	if len(list) > maxFeatures {
		return false, badRequest(wire.ParamFeatures, "%d features; at most %d", len(list), maxFeatures)
	}
	for _, f := range list {
		if !featureRe.MatchString(f) {
			return false, badRequest(wire.ParamFeatures, "%q is not a feature name", f)
		}
		// Features this server does not know are ignored: a newer client
		// still syncs, with what both know.
		ping = ping || f == wire.FeaturePing
	}
	return ping, nil
}

// acceptsZstd reports whether Accept-Encoding lists zstd with a non-zero
// weight.
func acceptsZstd(values []string) bool {
	for _, v := range values {
		for _, coding := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(coding), ";")
			if !strings.EqualFold(strings.TrimSpace(name), wire.EncodingZstd) {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			if w, ok := strings.CutPrefix(q, "q="); ok {
				if f, err := strconv.ParseFloat(w, 64); err == nil && f == 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// refuse writes a refusal: the status, and the error frame as the body.
func refuse(w http.ResponseWriter, e *requestError) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	// Whatever the host's http.Server: a refused client waits seconds, or
	// goes elsewhere, so an idle connection would only hold a descriptor.
	w.Header().Set("Connection", "close")
	if e.frame.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.frame.RetryAfter))
	}
	w.WriteHeader(e.status)
	body, _ := wire.Append(nil, &e.frame)
	_, _ = w.Write(body)
}

// ServeHTTP implements http.Handler: GET wire.StreamPath is a stream
// (PROTOCOL.md); anything else is refused with a 4xx and an error frame
// naming what is wrong. It returns when the client goes away, a write to it
// fails or times out, or the server is closed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	log := s.cfg.Logger.With("client", r.RemoteAddr)
	h, rerr := parseHandshake(r, s.cfg)
	if rerr != nil {
		n := s.stats.badRequests.Add(1)
		if s.logNow(&s.lastBadLog) {
			log.Warn("relay request refused", "status", rerr.status, "code", rerr.frame.Code, "field", rerr.frame.Field,
				"reason", rerr.frame.Message, "refusedSoFar", n)
		}
		refuse(w, rerr)
		return
	}
	select {
	case <-s.done:
		refuse(w, &requestError{status: http.StatusServiceUnavailable, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeShuttingDown, Message: "the relay is shutting down", RetryAfter: s.retryAfter()}})
		return
	default:
	}
	if n := s.clients.Add(1); n > int64(s.cfg.MaxClients) {
		s.clients.Add(-1)
		if n := s.stats.refused.Add(1); s.logNow(&s.lastRefusedLog) {
			log.Warn("relay client refused: too many clients", "max", s.cfg.MaxClients, "refusedSoFar", n)
		}
		refuse(w, &requestError{status: http.StatusServiceUnavailable, frame: wire.Frame{Type: wire.TypeError,
			Code: wire.CodeTooManyClients, Message: fmt.Sprintf("this relay serves at most %d clients", s.cfg.MaxClients),
			RetryAfter: s.retryAfter()}})
		return
	}
	defer s.clients.Add(-1)
	err := s.stream(w, r, h, arrived, log)
	s.countEnd(err)
	log.Debug("relay stream ended", "err", err)
}

// errClientGone ends a stream whose client went away.
var errClientGone = errors.New("relay: client gone")

// countEnd counts why a stream ended, for Stats.Ended.
func (s *Server) countEnd(err error) {
	switch {
	case errors.Is(err, errClosed):
		s.stats.shutdown.Add(1)
	case errors.Is(err, errClientGone):
		s.stats.clientGone.Add(1)
	case errors.Is(err, errShed):
		s.stats.shed.Add(1)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.stats.slow.Add(1)
	default:
		s.stats.writeError.Add(1)
	}
}

// logEvery bounds how often a refusal is logged: a storm of clients
// retrying must not become a storm of log lines. The counts are in Stats.
const logEvery = 10 * time.Second

// logNow reports whether a line throttled by last may be logged now.
func (s *Server) logNow(last *atomic.Int64) bool {
	now, prev := time.Now().UnixNano(), last.Load()
	return now-prev >= int64(logEvery) && last.CompareAndSwap(prev, now)
}

func (s *Server) retryAfter() int {
	return max(1, int(s.cfg.RetryAfter.Round(time.Second)/time.Second))
}

// errClosed ends a stream when the server is closed.
var errClosed = errors.New("relay: server closed")

// errShed ends a stream whose snapshot was shed (see Server.shed).
var errShed = errors.New("relay: shed: the snapshot it was reading was over SnapshotBytes")

// output is one stream's write path. It lives on the heap, and its
// methods hold the frames and temporaries of writing: a stream waiting for
// the log keeps on its goroutine's stack only its loop's few variables, and
// the Go runtime shrinks an idle stack to the smallest size that fits its
// depth (halving it at each GC while under a quarter is used), so every
// byte of the waiting frames counts, times the clients.
type output struct {
	s    *Server
	w    http.ResponseWriter
	rc   *http.ResponseController
	zstd bool
	// hd is this stream as the holder of a snapshot: shedding it cuts its
	// write short, and the flag, checked after each deadline is set, keeps
	// the next write from undoing that.
	hd *holder
}

// deadline bounds the next writeChunk bytes by WriteTimeout. Set per
// chunk, not per frame: a stream woken for many small log entries sets it
// once (it costs a timer update in the poller).
func (o *output) deadline() error {
	if err := o.rc.SetWriteDeadline(time.Now().Add(o.s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("setting the write deadline: %w", err)
	}
	if o.hd.shed.Load() {
		return errShed
	}
	return nil
}

// put writes b, under the deadline set last.
func (o *output) put(b []byte) error {
	if _, err := o.w.Write(b); err != nil {
		if o.hd.shed.Load() {
			return errShed
		}
		return fmt.Errorf("writing to the client: %w", err)
	}
	o.s.stats.bytesSent.Add(uint64(len(b)))
	return nil
}

// write writes b in writeChunk pieces, each under a fresh deadline.
func (o *output) write(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		if err := o.deadline(); err != nil {
			return err
		}
		if err := o.put(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// entries writes log entries, copied together into writes of up to
// writeChunk, and flushes them: a stream woken for many small entries
// makes one Write and sets one deadline, so that net/http hands the kernel
// one chunk instead of one per 4 KiB its buffer fills. The copy buffer is
// pooled, not the stream's: an idle stream holds none.
func (o *output) entries(batch []*entry) error {
	if len(batch) == 1 {
		if err := o.write(batch[0].enc.bytes(o.zstd)); err != nil {
			return err
		}
		return o.flush()
	}
	bp := batchBufs.Get().(*[]byte)
	defer batchBufs.Put(bp)
	buf := (*bp)[:0]
	for _, e := range batch {
		b := e.enc.bytes(o.zstd)
		if len(buf) > 0 && len(buf)+len(b) > writeChunk {
			if err := o.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(b) >= writeChunk {
			if err := o.write(b); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, b...)
	}
	*bp = buf[:0]
	if err := o.write(buf); err != nil {
		return err
	}
	return o.flush()
}

func (o *output) flush() error {
	if err := o.rc.Flush(); err != nil {
		return fmt.Errorf("flushing to the client: %w", err)
	}
	return nil
}

// frame writes f, encoded for this stream alone.
func (o *output) frame(f *wire.Frame) error {
	raw, err := wire.Append(nil, f)
	if err != nil {
		return err
	}
	if o.zstd {
		raw = wire.Compress(nil, raw)
	}
	return o.write(raw)
}

// ping writes a ping frame and flushes it.
func (o *output) ping() error {
	if err := o.frame(&wire.Frame{Type: wire.TypePing}); err != nil {
		return err
	}
	return o.flush()
}

// shutdown tells the client the relay is shutting down, as far as it
// still reads.
func (o *output) shutdown() {
	_ = o.frame(&wire.Frame{Type: wire.TypeError, Code: wire.CodeShuttingDown,
		Message: "the relay is shutting down", RetryAfter: o.s.retryAfter()})
	_ = o.flush()
}

// open writes the response header and the hello frame (and, to a client it
// resumes, the status at its position), and returns the seq of the first
// log entry to send and whether the client resumes.
func (s *Server) open(o *output, h handshake, log *slog.Logger) (next uint64, resumed bool, err error) {
	s.mu.Lock()
	next, resumed = s.log.resumeAt(h.pos)
	hello := &wire.Frame{Type: wire.TypeHello, Version: wire.Version, Prefix: s.cfg.Prefix,
		ClusterID: s.cluster, Revision: s.rev, Status: s.status.String(), Resume: resumed}
	s.mu.Unlock()
	if h.ping {
		hello.Features = []string{wire.FeaturePing}
	}
	o.w.Header().Set("Content-Type", "application/x-ndjson")
	o.w.Header().Set("Cache-Control", "no-store")
	// A body delimited by the connection's end, not chunked, the setup
	// net/http keeps for streams (Server-Sent Events): a stream never ends
	// but with its connection anyway, and a chunk costs net/http a header
	// and a trailer around each write, which split a write of more than its
	// 4 KiB buffer into three syscalls, at 10^3 clients the most of the
	// relay's CPU. A cut inside a frame is still seen: the line has no end.
	o.w.Header().Set("Transfer-Encoding", "identity")
	if h.zstd {
		o.w.Header().Set("Content-Encoding", wire.EncodingZstd)
	}
	o.w.WriteHeader(http.StatusOK)
	if err := o.frame(hello); err != nil {
		return 0, false, err
	}
	if resumed {
		// The relay was in sync at every resume position: say so. A
		// client whose status is another (it applied frames past its
		// position elsewhere) learns the relay's, even from a quiet relay
		// whose log has nothing after the position; the log that follows
		// brings it to the relay's status now.
		st := &wire.Frame{Type: wire.TypeStatus, Status: messages.InSync.String(),
			ClusterID: h.pos.cluster, Revision: h.pos.rev, Digest: h.pos.digest.String()}
		if err := o.frame(st); err != nil {
			return 0, false, err
		}
	}
	if err := o.flush(); err != nil {
		return 0, false, err
	}
	if resumed {
		s.stats.resumes.Add(1)
		log.Debug("relay client resumed", "clusterID", h.pos.cluster, "revision", h.pos.rev, "digest", h.pos.digest)
	}
	return next, resumed, nil
}

// sendSnapshot writes a snapshot to a stream that needs one (fresh: it
// asked at arrived) or fell behind the log, and returns the seq of the log
// entry that follows it.
func (s *Server) sendSnapshot(o *output, fresh bool, arrived time.Time, log *slog.Logger) (uint64, error) {
	asked := arrived
	if !fresh {
		asked = time.Now() // fell behind the log just now
	}
	sn := s.snapshotFor(asked, o.hd)
	err := o.write(sn.enc.bytes(o.zstd))
	s.release(sn, o.hd)
	if err != nil {
		return 0, err
	}
	if err := o.flush(); err != nil {
		return 0, err
	}
	s.stats.snapshotsSent.Add(1)
	if !fresh {
		log.Info("relay client fell behind the log; sent a fresh snapshot", "keys", sn.keys)
	}
	return sn.next, nil
}

// stream runs one accepted stream: hello, then a snapshot unless the
// client resumes, then the log from the snapshot's position on, with a
// fresh snapshot whenever the client has fallen behind the log's start.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, h handshake, arrived time.Time, log *slog.Logger) error {
	rc := http.NewResponseController(w)
	o := &output{s: s, w: w, rc: rc, zstd: h.zstd}
	o.hd = &holder{interrupt: func() { _ = rc.SetWriteDeadline(time.Now()) }}
	next, resumed, err := s.open(o, h, log)
	if err != nil {
		return err
	}

	// The ping timer is not reset at every write, which would cost a
	// timer update per wake: when it fires, a stream that wrote since
	// re-arms it for the rest of the interval.
	var ping <-chan time.Time
	var pingTimer *time.Timer
	if h.ping {
		pingTimer = time.NewTimer(s.cfg.PingInterval)
		defer pingTimer.Stop()
		ping = pingTimer.C
	}
	lastWrote := time.Now()
	needSnapshot := !resumed
	pos := &atomic.Uint64{} // next, for Stats' lag
	pos.Store(next)
	s.streams.Store(pos, struct{}{})
	defer s.streams.Delete(pos)
	gone := r.Context().Done()
	for {
		pos.Store(next)
		s.mu.Lock()
		if needSnapshot || next < s.log.first {
			s.mu.Unlock()
			if next, err = s.sendSnapshot(o, needSnapshot, arrived, log); err != nil {
				return err
			}
			lastWrote, needSnapshot = time.Now(), false
			continue
		}
		// One look at the log per wake: the entries up to its head, and
		// the channel that will say when it grows past them. A stream
		// woken by a broadcast thus takes the lock once, not once to read
		// and again to find nothing more, and 10^3 streams woken at once
		// keep the syncer's OnUpdates waiting half as long.
		batch := s.log.from(next, batchEntries) // entries are immutable: read outside the lock
		changed := s.changed
		s.mu.Unlock()
		if len(batch) > 0 {
			if err := o.entries(batch); err != nil {
				return err
			}
			lastWrote = time.Now()
			next += uint64(len(batch))
			pos.Store(next) // before waiting: Stats' lag counts it up to date
			if len(batch) == batchEntries {
				continue // the log may hold more than one batch
			}
		}
		select {
		case <-changed:
		case <-ping:
			if idle := time.Since(lastWrote); idle < s.cfg.PingInterval {
				pingTimer.Reset(s.cfg.PingInterval - idle)
				continue
			}
			if err := o.ping(); err != nil {
				return err
			}
			lastWrote = time.Now()
			pingTimer.Reset(s.cfg.PingInterval)
		case <-gone:
			return s.gone(r)
		case <-s.done:
			o.shutdown()
			return errClosed
		}
	}
}

// gone is the error a stream whose client went away ends with.
func (s *Server) gone(r *http.Request) error {
	return fmt.Errorf("%w: %w", errClientGone, context.Cause(r.Context()))
}
