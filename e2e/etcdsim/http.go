package etcdsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// ServeHTTP serves the simulation as etcd v2's keys API answers GETs, for
// clients that speak HTTP (client/v2, the syncer's own streaming reader):
// GET /v2/keys/<key> with recursive, sorted and quorum, and the watches,
// ?wait=true with waitIndex, recursive and stream, as etcd 3.5's v2http
// serves them (handleKeyWatch): headers flushed at once, X-Etcd-Index the
// store's index when the watch started, a long poll answered by one event,
// a stream by event after event. A stream asked for an index still in the
// history gets that one event and then nothing, ever; a stream that falls
// StreamBuffer events behind is dropped by the hub and left open and
// silent. Writes go through the KeysAPI methods (PUT, POST and DELETE
// answer 405).
//
// The faults apply: Disconnect and CutWatches break connections (the
// client reads an unexpected EOF), HoldWatches holds requests and stops
// streams from being written to (so that a burst overflows them),
// FreezeFollower makes non-quorum GETs stale. A stream is written to only
// between store operations: the events of one operation (an expiry sweep,
// a Load) all reach its buffer before it is written to, as etcd's hub
// notifies faster than a stream is written.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v2/keys") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "etcdsim: write through the KeysAPI", http.StatusMethodNotAllowed)
		return
	}
	key := cleanKey(strings.TrimPrefix(r.URL.Path, "/v2/keys"))
	q := r.URL.Query()
	on := func(name string) bool { return q.Get(name) == "true" }
	if on("wait") {
		var waitIndex uint64
		if v := q.Get("waitIndex"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, client.Error{Code: client.ErrorCodeIndexNaN, Message: "The given index in POST form is not a number",
					Cause: `invalid value for "waitIndex"`}, s.ClusterID())
				return
			}
			waitIndex = n
		}
		s.serveWatch(w, r, key, on("recursive"), on("stream"), waitIndex)
		return
	}
	s.serveGet(w, r, key, on("recursive"), on("sorted"), on("quorum"))
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, key string, recursive, sorted, quorum bool) {
	s.mu.Lock()
	s.calls[OpGet]++
	if s.down[OpGet] {
		s.mu.Unlock()
		panic(http.ErrAbortHandler) // the connection breaks: as a member going down
	}
	st := s.st
	if s.follower != nil && !quorum {
		st = s.follower
	}
	e, err := st.get(key, recursive, sorted, s.now, s.rng)
	index, clusterID := st.index, s.clusterID
	s.mu.Unlock()
	if err != nil {
		writeError(w, err, clusterID)
		return
	}
	writeHeaders(w, index, clusterID, http.StatusOK)
	_ = json.NewEncoder(w).Encode(etcdEvent(e.response(index, clusterID)))
}

// serveWatch is v2http's handleKeyWatch over the simulation's hub.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, key string, recursive, stream bool, waitIndex uint64) {
	ctx := r.Context()
	s.mu.Lock()
	s.calls[OpWatch]++
	if s.down[OpWatch] {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	f := &flight{cut: make(chan struct{})}
	s.flights[f] = struct{}{}
	defer func() {
		s.mu.Lock()
		delete(s.flights, f)
		s.mu.Unlock()
	}()
	held := s.held
	var ev *event
	var hw *hubWatcher
	var startIndex uint64
	var clusterID string
	var err error
	if held == nil {
		ev, hw, startIndex, clusterID, err = s.watchRequest(f, key, recursive, stream, waitIndex)
	}
	s.mu.Unlock()
	if held != nil {
		if !s.released(ctx, held, f) {
			return
		}
		s.mu.Lock()
		ev, hw, startIndex, clusterID, err = s.watchRequest(f, key, recursive, stream, waitIndex)
		s.mu.Unlock()
	}
	if err != nil {
		writeError(w, err, s.ClusterID())
		return
	}
	if hw != nil {
		defer s.dropWatcher(hw)
	}
	writeHeaders(w, startIndex, clusterID, http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	write := func(e *event) {
		_ = enc.Encode(etcdEvent(e.response(startIndex, clusterID)))
		w.(http.Flusher).Flush()
	}

	if ev != nil || !stream {
		if ev == nil {
			select {
			case ev = <-hw.ch:
			case <-ctx.Done():
				return
			case <-f.cut:
				panic(http.ErrAbortHandler)
			}
		}
		if !s.released(ctx, s.heldNow(), f) {
			return
		}
		write(ev)
		if !stream {
			return
		}
		// A stream answered from the history: etcd never registered its
		// watcher, so nothing more comes, and nothing closes it.
		select {
		case <-ctx.Done():
		case <-f.cut:
			panic(http.ErrAbortHandler)
		}
		return
	}
	for {
		select {
		case <-hw.wake:
		case <-ctx.Done():
			return
		case <-f.cut:
			panic(http.ErrAbortHandler)
		}
		// While held, nothing is taken: the buffer fills, as behind a
		// stalled connection.
		if !s.released(ctx, s.heldNow(), f) {
			return
		}
		for _, e := range s.takeEvents(hw) {
			write(e)
		}
	}
}

// takeEvents empties a stream watcher's buffer, under the store's lock, so
// that a stream is written to only between store operations.
func (s *Server) takeEvents(hw *hubWatcher) []*event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*event
	for {
		select {
		case e := <-hw.ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (s *Server) heldNow() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// released waits while held is open; false if the request ended meanwhile
// (a cut aborts the connection).
func (s *Server) released(ctx context.Context, held chan struct{}, f *flight) bool {
	err := waitRelease(ctx, held, f)
	if err == nil {
		return true
	}
	if ctx.Err() == nil {
		panic(http.ErrAbortHandler) // cut
	}
	return false
}

func writeHeaders(w http.ResponseWriter, index uint64, clusterID string, status int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Etcd-Cluster-Id", clusterID)
	h.Set("X-Etcd-Index", strconv.FormatUint(index, 10))
	w.WriteHeader(status)
}

// errorStatus is v2error's errorStatus: the HTTP status of an etcd error.
var errorStatus = map[int]int{
	client.ErrorCodeKeyNotFound:  http.StatusNotFound,
	client.ErrorCodeNotFile:      http.StatusForbidden,
	client.ErrorCodeDirNotEmpty:  http.StatusForbidden,
	client.ErrorCodeUnauthorized: http.StatusUnauthorized,
	client.ErrorCodeTestFailed:   http.StatusPreconditionFailed,
	client.ErrorCodeNodeExist:    http.StatusPreconditionFailed,
	client.ErrorCodeRaftInternal: http.StatusInternalServerError,
	client.ErrorCodeLeaderElect:  http.StatusInternalServerError,
}

// writeError answers an etcd error as v2error.Error.WriteTo does.
func writeError(w http.ResponseWriter, err error, clusterID string) {
	var e client.Error
	if !errors.As(err, &e) {
		e = client.Error{Code: client.ErrorCodeRaftInternal, Message: "Raft Internal Error", Cause: err.Error()}
	}
	status, ok := errorStatus[e.Code]
	if !ok {
		status = http.StatusBadRequest
	}
	writeHeaders(w, e.Index, clusterID, status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errorCode": e.Code, "message": e.Message, "cause": e.Cause, "index": e.Index})
}

// wireNode is v2store's NodeExtern as etcd encodes it.
type wireNode struct {
	Key           string      `json:"key,omitempty"`
	Value         *string     `json:"value,omitempty"`
	Dir           bool        `json:"dir,omitempty"`
	Expiration    *time.Time  `json:"expiration,omitempty"`
	TTL           int64       `json:"ttl,omitempty"`
	Nodes         []*wireNode `json:"nodes,omitempty"`
	ModifiedIndex uint64      `json:"modifiedIndex,omitempty"`
	CreatedIndex  uint64      `json:"createdIndex,omitempty"`
}

type wireEvent struct {
	Action   string    `json:"action"`
	Node     *wireNode `json:"node,omitempty"`
	PrevNode *wireNode `json:"prevNode,omitempty"`
}

func etcdEvent(r *client.Response) wireEvent {
	return wireEvent{Action: r.Action, Node: wire(r.Node), PrevNode: wire(r.PrevNode)}
}

func wire(n *client.Node) *wireNode {
	if n == nil {
		return nil
	}
	w := &wireNode{Key: n.Key, Dir: n.Dir, Expiration: n.Expiration, TTL: n.TTL,
		ModifiedIndex: n.ModifiedIndex, CreatedIndex: n.CreatedIndex}
	if !n.Dir {
		v := n.Value
		w.Value = &v
	}
	for _, c := range n.Nodes {
		w.Nodes = append(w.Nodes, wire(c))
	}
	return w
}

var _ http.Handler = (*Server)(nil)
