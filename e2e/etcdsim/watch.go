package etcdsim

import (
	"context"
	"path"
	"strings"
	"sync"

	"go.etcd.io/etcd/client/v2"
)

// hub is v2store's watcherHub: watchers by watched key. A long-poll
// watcher takes one event and is gone; a stream watcher stays, until the
// events it has not taken yet fill its buffer (StreamBuffer): then it is
// removed without a word, as etcd does (v2store's watcher.notify), and its
// stream, left open, never hears another event.
type hub struct {
	watchers map[string]map[*hubWatcher]struct{}
}

// StreamBuffer is how many events a stream watcher may have waiting before
// the hub drops it (v2store's watcherHub.watch: make(chan *Event, 100)).
const StreamBuffer = 100

type hubWatcher struct {
	key       string
	recursive bool
	since     uint64
	stream    bool
	ch        chan *event   // buffered: notify never blocks
	wake      chan struct{} // streams: signalled after each event added to ch
	dropped   bool          // streams: removed because ch was full
}

func newHub() *hub { return &hub{watchers: map[string]map[*hubWatcher]struct{}{}} }

func (h *hub) add(key string, recursive bool, since uint64) *hubWatcher {
	return h.addWatcher(&hubWatcher{key: key, recursive: recursive, since: since, ch: make(chan *event, 1)})
}

func (h *hub) addStream(key string, recursive bool, since uint64) *hubWatcher {
	return h.addWatcher(&hubWatcher{key: key, recursive: recursive, since: since, stream: true,
		ch: make(chan *event, StreamBuffer), wake: make(chan struct{}, 1)})
}

func (h *hub) addWatcher(w *hubWatcher) *hubWatcher {
	if h.watchers[w.key] == nil {
		h.watchers[w.key] = map[*hubWatcher]struct{}{}
	}
	h.watchers[w.key][w] = struct{}{}
	return w
}

func (h *hub) remove(w *hubWatcher) {
	if l := h.watchers[w.key]; l != nil {
		delete(l, w)
		if len(l) == 0 {
			delete(h.watchers, w.key)
		}
	}
}

// notify tells the watchers of the event's key and of every directory
// above it.
func (h *hub) notify(e *event) {
	cur := "/"
	for _, segment := range strings.Split(e.node.Key, "/") {
		cur = path.Join(cur, segment)
		h.notifyAt(e, cur, false)
	}
}

// notifyAt is watcherHub.notifyWatchers for the watchers of nodePath;
// deleted is set for the nodes a deletion removes.
func (h *hub) notifyAt(e *event, nodePath string, deleted bool) {
	original := e.node.Key == nodePath
	for w := range h.watchers[nodePath] {
		if !original && isHidden(nodePath, e.node.Key) {
			continue
		}
		if (w.recursive || original || deleted) && e.index() >= w.since {
			if !w.stream {
				w.ch <- e
				h.remove(w)
				continue
			}
			select {
			case w.ch <- e:
				select {
				case w.wake <- struct{}{}:
				default:
				}
			default:
				h.remove(w) // its channel stays open: the stream just goes silent
				w.dropped = true
			}
		}
	}
}

// isHidden is watcher_hub.go's: a key below a "_" element, relative to
// the watched path, is hidden from recursive watchers.
func isHidden(watchPath, keyPath string) bool {
	if len(watchPath) > len(keyPath) {
		return false
	}
	afterPath := path.Clean("/" + keyPath[len(watchPath):])
	return strings.Contains(afterPath, "/_")
}

// flight is one Watcher.Next in progress; closing cut breaks its
// "connection".
type flight struct {
	cut chan struct{}
}

// Watcher is the client.Watcher returned by Server.Watcher. Like
// client/v2's, it remembers the index to wait for next.
type Watcher struct {
	s         *Server
	key       string
	recursive bool

	mu        sync.Mutex // one Next at a time, as one HTTP request at a time
	waitIndex uint64
}

var _ client.Watcher = (*Watcher)(nil)

// Next waits for the next event as client/v2's watcher does against
// etcd: one long-poll request for waitIndex, answered at once from the
// history if a matching event is there, else by the first matching event
// to come. It returns error 401 if waitIndex fell out of the history, a
// transport error if the server is disconnected or the watch is cut, and
// ctx.Err() if ctx ends first. Response.Index is the store index when the
// request started. Safe for concurrent use; concurrent calls take turns.
func (w *Watcher) Next(ctx context.Context) (*client.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.s

	s.mu.Lock()
	s.calls[OpWatch]++
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if s.down[OpWatch] {
		s.mu.Unlock()
		return nil, s.errRefused(false)
	}
	f := &flight{cut: make(chan struct{})}
	s.flights[f] = struct{}{}
	defer func() {
		s.mu.Lock()
		delete(s.flights, f)
		s.mu.Unlock()
	}()
	// Unless held, the request reaches the server now, in the same
	// critical section: a spec that saw WatchesInFlight go up knows the
	// watch is registered before its next write.
	held := s.held
	var ev *event
	var hw *hubWatcher
	var startIndex uint64
	var clusterID string
	var err error
	if held == nil {
		ev, hw, startIndex, clusterID, err = s.watchRequest(f, w.key, w.recursive, false, w.waitIndex)
	}
	s.mu.Unlock()
	if held != nil {
		// A held request reaches the server only on release.
		s.park(ctx, func() bool { return closed(held) || closed(f.cut) }, "held watch request")
		if err := waitRelease(ctx, held, f); err != nil {
			return nil, err
		}
		s.mu.Lock()
		ev, hw, startIndex, clusterID, err = s.watchRequest(f, w.key, w.recursive, false, w.waitIndex)
		s.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}

	if hw != nil {
		s.park(ctx, func() bool { return len(hw.ch) > 0 || closed(f.cut) }, "watch "+w.key)
		if err := ended(ctx, f); err != nil {
			s.dropWatcher(hw)
			return nil, err
		}
		select {
		case ev = <-hw.ch:
		case <-ctx.Done():
			s.dropWatcher(hw)
			return nil, ctx.Err()
		case <-f.cut:
			s.dropWatcher(hw)
			return nil, errCutWatch()
		}
	}

	// A held response reaches the client only on release.
	s.mu.Lock()
	held = s.held
	s.mu.Unlock()
	if held != nil {
		s.park(ctx, func() bool { return closed(held) || closed(f.cut) }, "held watch response")
	}
	if err := waitRelease(ctx, held, f); err != nil {
		return nil, err
	}
	w.waitIndex = ev.index() + 1
	return ev.response(startIndex, clusterID), nil
}

// watchRequest is a watch request reaching the server: the history's
// answer, or a watcher registered to wait (a stream watcher if stream). A
// waitIndex of 0 waits for the next event. Called with s.mu held.
func (s *Server) watchRequest(f *flight, key string, recursive, stream bool, waitIndex uint64) (
	ev *event, hw *hubWatcher, startIndex uint64, clusterID string, err error) {
	select {
	case <-f.cut:
		return nil, nil, 0, "", errCutWatch()
	default:
	}
	startIndex, clusterID = s.st.index, s.clusterID
	since := waitIndex
	if since == 0 {
		since = startIndex + 1
	}
	ev, herr := s.st.hist.scan(key, recursive, since)
	if herr != nil {
		herr.Index = startIndex
		return nil, nil, 0, "", *herr
	}
	if ev == nil {
		if stream {
			hw = s.hub.addStream(key, recursive, since)
		} else {
			hw = s.hub.add(key, recursive, since)
		}
	}
	return ev, hw, startIndex, clusterID, nil
}

func (s *Server) dropWatcher(hw *hubWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hub.remove(hw)
}

// ended returns ctx's error, or the cut's, if the request has ended. It is
// asked before waiting, so that an end wins over an event (or a release)
// that came at the same time: a select picks at random, and a replay must
// not.
func ended(ctx context.Context, f *flight) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if closed(f.cut) {
		return errCutWatch()
	}
	return nil
}

// waitRelease blocks while held is open.
func waitRelease(ctx context.Context, held chan struct{}, f *flight) error {
	if held == nil {
		return nil
	}
	if err := ended(ctx, f); err != nil {
		return err
	}
	select {
	case <-held:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.cut:
		return errCutWatch()
	}
}

// park waits through Config.Park, if set, until ready() or ctx.
func (s *Server) park(ctx context.Context, ready func() bool, what string) {
	s.mu.Lock()
	park := s.cfg.Park
	s.mu.Unlock()
	if park != nil {
		park(ctx, ready, what)
	}
}

// closed reports whether ch is closed (a nil ch never is).
func closed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
