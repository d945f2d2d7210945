package actors

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

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
	Endpoints          []string
	Client             *http.Client
	Username, Password string

	pinned atomic.Int32
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

// answer is an open HTTP answer to a watch request.
type answer struct {
	body      io.ReadCloser
	dec       *json.Decoder
	index     uint64 // X-Etcd-Index
	clusterID string
}

func (a *answer) close() { a.body.Close() }

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
			return w.deliver(resp, a.index), nil
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
		return w.deliver(resp, w.head), nil
	}
}

func (w *streamWatcher) deliver(resp *client.Response, index uint64) *client.Response {
	w.next = resp.Node.ModifiedIndex + 1
	resp.Index, resp.ClusterID = index, w.clusterID
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
	s := w.watches
	q := url.Values{"wait": {"true"}, "stream": {"true"}}
	if w.recursive {
		q.Set("recursive", "true")
	}
	if waitIndex > 0 {
		q.Set("waitIndex", strconv.FormatUint(waitIndex, 10))
	}
	var errs []error
	pinned := int(s.pinned.Load())
	for i := range s.Endpoints {
		k := (pinned + i) % len(s.Endpoints)
		u, err := url.Parse(s.Endpoints[k])
		if err != nil {
			return nil, fmt.Errorf("watch endpoint %q: %w", s.Endpoints[k], err)
		}
		u.Path, u.RawQuery = "/v2/keys"+w.key, q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("building the watch request: %w", err)
		}
		if s.Username != "" {
			req.SetBasicAuth(s.Username, s.Password)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		switch {
		case resp.StatusCode/100 == 5:
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("etcd member %s answered the watch with %s", s.Endpoints[k], resp.Status))
			continue
		case resp.StatusCode != http.StatusOK:
			defer resp.Body.Close()
			var e client.Error
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == 0 {
				return nil, fmt.Errorf("watch answered %s without an etcd error body", resp.Status)
			}
			return nil, e
		}
		s.pinned.Store(int32(k))
		index, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
		if err != nil {
			resp.Body.Close()
			return nil, &client.ClusterError{Errors: []error{fmt.Errorf("watch answer's X-Etcd-Index: %w", err)}}
		}
		return &answer{body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body)), index: index,
			clusterID: resp.Header.Get("X-Etcd-Cluster-Id")}, nil
	}
	return nil, &client.ClusterError{Errors: errs}
}
