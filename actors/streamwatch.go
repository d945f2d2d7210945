package actors

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"go.etcd.io/etcd/client/v2"
)

// Watches makes watchers; a client/v2 KeysAPI is one (a long poll per
// event), StreamWatches another.
type Watches interface {
	Watcher(key string, opts *client.WatcherOptions) client.Watcher
}

// StreamWatches makes watchers that use etcd v2's streaming watch
// (?wait=true&stream=true): one connection carries event after event,
// instead of client/v2's one request per event, which falls out of the
// 1000-event window at write rates a stream keeps up with.
//
// etcd streams only a watch that waits for the future: asked for an index
// still in its history, it answers that one event and then neither sends
// another nor closes (v2store's watcher hub), and under steady writes any
// index a client names may be history by the time the request arrives. So a
// watcher opens its stream with no index at all, which always streams from
// etcd's head, H (the answer's X-Etcd-Index), and fills the gap from its own
// position up to H with one request per event, as client/v2 would, before
// it reads the stream. Its errors are client/v2's: etcd errors as
// client.Error (401 included), transport errors in a *client.ClusterError.
type StreamWatches struct {
	*KeysHTTP
}

// Watcher implements Watches. Events after opts.AfterIndex are returned, as
// client/v2 returns them; opts.Recursive is honoured.
func (s *StreamWatches) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	w := &streamWatcher{watches: s, key: key}
	if opts != nil {
		w.next, w.recursive = opts.AfterIndex+1, opts.Recursive
	}
	return w
}

// streamWatcher is one watch. Not safe for concurrent use (nor is
// client/v2's): one goroutine calls Next.
type streamWatcher struct {
	watches   *StreamWatches
	key       string
	recursive bool
	next      uint64 // index of the next event to return

	stream    *answer // the open stream; it starts after head
	head      uint64  // etcd's index when the stream opened
	streamed  int     // events read from the stream
	clusterID string
}

// answer is an open answer to a watch request.
type answer struct {
	keysAnswer
	dec *json.Decoder
}

func (a *answer) close() { a.resp.Body.Close() }

// Next returns the next event. The stream is bound to the context of the
// call that opened it: cancelling that context ends the watch.
func (w *streamWatcher) Next(ctx context.Context) (*client.Response, error) {
	for {
		if w.stream == nil {
			a, err := w.request(ctx, 0)
			if err != nil {
				return nil, err
			}
			w.stream, w.head, w.streamed, w.clusterID = a, a.index, 0, a.clusterID
			if w.next == 0 {
				w.next = a.index + 1 // no position given: from now on
			}
		}
		if w.next <= w.head {
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
		resp, err := w.stream.read()
		if err != nil {
			streamed := w.streamed
			w.stream.close()
			w.stream = nil
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) && streamed > 0 {
				continue // the server ended a stream that served: open another
			}
			return nil, w.transportError(ctx, err)
		}
		w.streamed++
		if resp.Node.ModifiedIndex < w.next {
			continue // already returned from the gap
		}
		return w.deliver(resp, w.head, w.clusterID), nil
	}
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
