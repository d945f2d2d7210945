package etcdv2

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"

	"go.etcd.io/etcd/client/v2"
)

// DefaultStreamReadAhead is the default StreamWatches.ReadAhead: about the
// event history etcd keeps, so that catching up never makes etcd drop the
// stream.
const DefaultStreamReadAhead = 1024

// StreamWatches makes watchers that use etcd v2's streaming watch
// (?wait=true&stream=true): one connection carries event after event,
// instead of client/v2's one request per event, which falls out of the
// 1000-event window at write rates a stream keeps up with. It is also a
// KeysAPI (its Get is KeysHTTP's), so that the watcher's quorum reads go to
// the member the stream is pinned to, and move it off one that has lost
// its quorum.
//
// etcd streams only a watch that waits for the future: asked for an index
// still in its history, it answers that one event and then neither sends
// another nor closes (v2store's watcher hub), and under steady writes any
// index a client names may be history by the time the request arrives. So a
// watcher opens its stream with no index at all, which always streams from
// etcd's head, H (the answer's X-Etcd-Index), and fills the gap from its own
// position up to H with one request per event, as client/v2 would. The
// stream is read meanwhile, by a goroutine of its own, into a read-ahead of
// ReadAhead events: a stream nobody reads fills etcd's 100-event buffer for
// it, and etcd then drops it without a word.
//
// etcd never ends a stream it dropped: the stream stays open and silent
// (v2store's watcher.notify removes the watcher but leaves its channel
// open). No client can tell that from a quiet prefix; the watcher's stall
// check does, by asking etcd (Reconnect resumes from the watch's position).
// Its errors are client/v2's: etcd errors as client.Error (401 included),
// transport errors in a *client.ClusterError.
type StreamWatches struct {
	*KeysHTTP
	// ReadAhead is how many events a stream may read before Next asks for
	// them; 0 means DefaultStreamReadAhead.
	ReadAhead int
	// Goroutines, when not nil, counts the goroutines that read streams.
	Goroutines *sync.WaitGroup
}

var _ KeysAPI = (*StreamWatches)(nil)

// Watcher implements Watches. Events after opts.AfterIndex are returned, as
// client/v2 returns them; opts.Recursive is honoured. The watcher holds a
// connection until Close, or until the context of a Next ends while it
// opens one.
func (s *StreamWatches) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	w := &streamWatcher{watches: s, key: key}
	if opts != nil {
		w.next, w.recursive = opts.AfterIndex+1, opts.Recursive
	}
	return w
}

func (s *StreamWatches) readAhead() int {
	if s.ReadAhead > 0 {
		return s.ReadAhead
	}
	return DefaultStreamReadAhead
}

func (s *StreamWatches) goroutine(f func()) {
	if s.Goroutines != nil {
		s.Goroutines.Go(f)
	} else {
		go f()
	}
}

// streamWatcher is one watch of StreamWatches. Not safe for concurrent use
// (nor is client/v2's watcher): one goroutine calls Next, Reconnect and
// Close.
type streamWatcher struct {
	watches   *StreamWatches
	key       string
	recursive bool
	next      uint64 // index of the next event to return

	stream *stream // the open stream, nil if none
}

// stream is an open streaming answer and the goroutine that reads it.
type stream struct {
	head      uint64 // etcd's index when the stream opened: it carries what comes after
	clusterID string
	events    chan *client.Response // read ahead; closed when the read ends, after err is set
	err       error
	streamed  int // events taken from events
	cancel    context.CancelFunc
	done      chan struct{} // closed when the reader has returned
}

// Next returns the next event. Cancelling ctx ends the wait, not the
// stream: the next Next goes on reading it.
func (w *streamWatcher) Next(ctx context.Context) (*client.Response, error) {
	for {
		if w.stream == nil {
			if err := w.open(ctx); err != nil {
				return nil, err
			}
		}
		if w.next <= w.stream.head {
			// The gap between our position and the stream's start: one
			// history event per request.
			a, err := w.request(ctx, w.next)
			if err != nil {
				return nil, err
			}
			resp, err := a.read()
			a.close()
			if err != nil {
				return nil, w.transportError(ctx, err)
			}
			return w.deliver(resp, a.index, a.clusterID), nil
		}
		select {
		case resp, ok := <-w.stream.events:
			if !ok {
				st := w.stream
				w.closeStream()
				if errors.Is(st.err, io.EOF) && st.streamed > 0 {
					continue // the server ended a stream that served: open another
				}
				return nil, w.transportError(ctx, st.err)
			}
			w.stream.streamed++
			if resp.Node.ModifiedIndex < w.next {
				continue // already returned from the gap
			}
			return w.deliver(resp, w.stream.head, w.stream.clusterID), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Reconnect drops the stream, if one is open: the next Next opens another
// at etcd's head and fills the gap from the watch's position, so nothing is
// missed, and a position etcd's history no longer holds is a 401.
func (w *streamWatcher) Reconnect() { w.closeStream() }

// Close drops the stream and waits for its reader. The watcher can be used
// again: the next Next opens another.
func (w *streamWatcher) Close() error {
	w.closeStream()
	return nil
}

func (w *streamWatcher) closeStream() {
	if st := w.stream; st != nil {
		st.cancel()
		<-st.done
		w.stream = nil
	}
}

// open opens a stream at etcd's head and starts its reader. The connection
// outlives ctx: only the wait for etcd's answer is bound to it.
func (w *streamWatcher) open(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	a, err := w.request(sctx, 0)
	if !stop() || err != nil {
		cancel()
		if err == nil {
			a.close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	st := &stream{head: a.index, clusterID: a.clusterID, cancel: cancel,
		events: make(chan *client.Response, w.watches.readAhead()), done: make(chan struct{})}
	if w.next == 0 {
		w.next = a.index + 1 // no position given: from now on
	}
	w.stream = st
	w.watches.goroutine(func() {
		defer close(st.done)
		defer a.close()
		defer close(st.events)
		for {
			resp, err := a.read()
			if err != nil {
				st.err = err
				return
			}
			select {
			case st.events <- resp:
			case <-sctx.Done():
				st.err = sctx.Err()
				return
			}
		}
	})
	return nil
}

// deliver returns resp with the headers of the answer it came in.
func (w *streamWatcher) deliver(resp *client.Response, index uint64, clusterID string) *client.Response {
	w.next = resp.Node.ModifiedIndex + 1
	resp.Index, resp.ClusterID = index, clusterID
	return resp
}

func (w *streamWatcher) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &client.ClusterError{Errors: []error{fmt.Errorf("reading the watch: %w", err)}}
}

// answer is an open answer to a watch request.
type answer struct {
	keysAnswer
	dec *json.Decoder
}

func (a *answer) close() { a.resp.Body.Close() }

// read decodes the next event of the answer.
func (a *answer) read() (*client.Response, error) {
	var resp client.Response
	if err := a.dec.Decode(&resp); err != nil {
		return nil, err
	}
	if resp.Node == nil {
		return nil, errors.New("watch event without a node")
	}
	return &resp, nil
}

// request sends a streaming watch request: from waitIndex, or, if it is 0,
// from etcd's head.
func (w *streamWatcher) request(ctx context.Context, waitIndex uint64) (*answer, error) {
	q := url.Values{"wait": {"true"}, "stream": {"true"}}
	if w.recursive {
		q.Set("recursive", "true")
	}
	if waitIndex > 0 {
		q.Set("waitIndex", strconv.FormatUint(waitIndex, 10))
	}
	a, err := w.watches.get(ctx, w.key, q)
	if err != nil {
		return nil, err
	}
	return &answer{keysAnswer: a, dec: json.NewDecoder(bufio.NewReader(a.resp.Body))}, nil
}
