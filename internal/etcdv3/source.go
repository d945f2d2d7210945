package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// Page sizes of a snapshot read, in keys; see the package doc. A page of
// MaxPage Calico-sized keys is about 13 MB on the wire.
const (
	DefaultFirstPage = 1000
	DefaultMaxPage   = 1 << 16
)

// Source reads one prefix through a clientv3.Client. The zero values of the
// durations and pages take the defaults documented on each field.
type Source struct {
	// Client, when set, is the client to use; otherwise one is made from
	// Config when first needed (with credentials, clientv3.New
	// authenticates, which needs a reachable etcd) and Close closes it.
	Client *clientv3.Client
	Config clientv3.Config
	// Prefix is the directory to read, without a trailing slash.
	Prefix string
	// RequestTimeout bounds each request that does not wait for events;
	// 0: none beyond the caller's context.
	RequestTimeout time.Duration
	// ProgressInterval is how long the watch may stay silent before it asks
	// etcd for its progress; 0: 5 s.
	ProgressInterval time.Duration
	// FirstPage and MaxPage bound the pages of a snapshot read; 0: the
	// defaults above.
	FirstPage, MaxPage int64

	mu     sync.Mutex
	made   *clientv3.Client // from Config
	closed bool
}

// client returns Client, or the client made from Config, making it if need
// be.
func (s *Source) client() (*clientv3.Client, error) {
	if s.Client != nil {
		return s.Client, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.made == nil {
		c, err := clientv3.New(s.Config)
		if err != nil {
			return nil, fmt.Errorf("connecting to etcd at %v: %w", s.Config.Endpoints, err)
		}
		s.made = c
	}
	return s.made, nil
}

// Close closes the client made from Config, if any; the Source is not
// usable afterwards. Client, if given, is the caller's to close.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.made != nil {
		return s.made.Close()
	}
	return nil
}

var errClosed = errors.New("etcdv3: source closed")

var _ source.Source = (*Source)(nil)

// errWatchEnded: clientv3 closed the watch channel (its stream failed for
// good, or the member lost its leader): asked again, the watch resumes from
// its position.
var errWatchEnded = errors.New("etcdv3: the watch ended")

// ClusterID returns a response header's cluster ID the way etcd prints it,
// and v2 sends it in X-Etcd-Cluster-Id.
func ClusterID(h *etcdserverpb.ResponseHeader) string {
	if h == nil || h.ClusterId == 0 {
		return ""
	}
	return strconv.FormatUint(h.ClusterId, 16)
}

func (s *Source) rangeKey() (key, end string) {
	key = s.Prefix + "/"
	return key, clientv3.GetPrefixRangeEnd(key)
}

func (s *Source) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if s.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.RequestTimeout)
		defer cancel()
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	return c.Get(ctx, key, opts...)
}

// Head implements source.Source: a linearizable read of the prefix's own
// key, the one key every role that may read the prefix may also read, whose
// header says etcd's revision and cluster.
func (s *Source) Head(ctx context.Context) (source.Head, error) {
	resp, err := s.get(ctx, s.Prefix, clientv3.WithKeysOnly())
	if err != nil {
		return source.Head{}, fmt.Errorf("reading etcd's revision: %w", err)
	}
	return source.Head{Index: uint64(resp.Header.Revision), ClusterID: ClusterID(resp.Header)}, nil
}

// Snapshot implements source.Source. The first page is serializable unless
// quorum (any member may answer it, maybe from behind; head judges that);
// the later ones are read at its revision, linearizably, so that a member
// behind that revision waits for it instead of failing.
func (s *Source) Snapshot(ctx context.Context, quorum bool, head func(source.Head) error, leaf func(messages.KV)) error {
	key, end := s.rangeKey()
	limit := s.FirstPage
	if limit <= 0 {
		limit = DefaultFirstPage
	}
	maxPage := s.MaxPage
	if maxPage <= 0 {
		maxPage = DefaultMaxPage
	}
	opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(limit)}
	if !quorum {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := s.get(ctx, key, opts...)
	if err != nil {
		return fmt.Errorf("reading the first page of %s: %w", s.Prefix, err)
	}
	rev, id := resp.Header.Revision, ClusterID(resp.Header)
	if err := head(source.Head{Index: uint64(rev), ClusterID: id}); err != nil {
		return err
	}
	for {
		for _, kv := range resp.Kvs {
			leaf(messages.KV{Key: bytesString(kv.Key), Value: bytesString(kv.Value), ModifiedIndex: uint64(kv.ModRevision)})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		limit = min(2*limit, maxPage)
		from := string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		resp, err = s.get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(limit), clientv3.WithRev(rev))
		if err != nil {
			return fmt.Errorf("reading %s at revision %d from %q: %w", s.Prefix, rev, from, err)
		}
		// Every response is judged before its data is merged: a page of
		// another cluster must not complete this one's snapshot.
		if got := ClusterID(resp.Header); got != id {
			return fmt.Errorf("%w: was %s, now %s in the middle of a snapshot", messages.ErrClusterIDChanged, id, got)
		}
	}
}

// Watch implements source.Source.
func (s *Source) Watch(after uint64) source.Watch {
	return &watch{s: s, pos: int64(after)}
}

// Classify implements source.Source: a compacted revision loses the
// position; a cancelled context is a stop; anything else (a member down, no
// leader, a watch ended) is asked again from the position.
func (s *Source) Classify(err error) source.Verdict {
	switch {
	case errors.Is(err, context.Canceled):
		return source.Stopped
	case errors.Is(err, rpctypes.ErrCompacted):
		return source.LostSync
	}
	return source.Retry
}

// watch is one free-running watch. clientv3 resumes a broken stream by
// itself from the revision after the last event or progress it delivered;
// when it gives up (no leader, the stream closed) the next Next opens
// another from pos.
type watch struct {
	s      *Source
	pos    int64 // every change at or below it has been returned
	c      *clientv3.Client
	ch     clientv3.WatchChan
	ctx    context.Context // of ch: RequestProgress must name its stream
	cancel context.CancelFunc
}

func (w *watch) open() error {
	c, err := w.s.client()
	if err != nil {
		return err
	}
	key, end := w.s.rangeKey()
	// WithRequireLeader: a member cut off from its leader cancels the
	// watch instead of keeping it open and silent.
	w.ctx, w.cancel = context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	w.ch = c.Watch(w.ctx, key, clientv3.WithRange(end), clientv3.WithRev(w.pos+1), clientv3.WithProgressNotify())
	w.c = c
	return nil
}

func (w *watch) interval() time.Duration {
	if w.s.ProgressInterval > 0 {
		return w.s.ProgressInterval
	}
	return 5 * time.Second
}

// Next implements source.Watch.
func (w *watch) Next(ctx context.Context) (source.Changes, error) {
	if w.ch == nil {
		if err := w.open(); err != nil {
			return source.Changes{}, err
		}
	}
	quiet := time.NewTimer(w.interval())
	defer quiet.Stop()
	for {
		select {
		case resp, ok := <-w.ch:
			if !ok {
				w.Close()
				return source.Changes{}, fmt.Errorf("%w after revision %d", errWatchEnded, w.pos)
			}
			if err := resp.Err(); err != nil {
				w.Close()
				return source.Changes{}, fmt.Errorf("watching %s after revision %d: %w", w.s.Prefix, w.pos, err)
			}
			if resp.Canceled || resp.Created {
				continue // a cancellation without an error ends the channel next
			}
			return w.changes(&resp), nil
		case <-quiet.C:
			// A silent stream and a quiet prefix look alike; etcd's answer
			// to a progress request tells them apart, and moves pos.
			rctx, cancel := context.WithTimeout(w.ctx, w.interval())
			if err := w.c.RequestProgress(rctx); err != nil && ctx.Err() == nil {
				cancel()
				w.Close()
				return source.Changes{}, fmt.Errorf("requesting the watch's progress: %w", err)
			}
			cancel()
			quiet.Reset(w.interval())
		case <-ctx.Done():
			return source.Changes{}, ctx.Err()
		}
	}
}

// changes turns a watch response into the merger's inputs.
func (w *watch) changes(resp *clientv3.WatchResponse) source.Changes {
	ch := source.Changes{ClusterID: ClusterID(&resp.Header)}
	if resp.IsProgressNotify() {
		w.pos = max(w.pos, resp.Header.Revision)
		ch.Index, ch.Progress = uint64(w.pos), true
		return ch
	}
	ch.Events = make([]messages.MergeInput, 0, len(resp.Events))
	for i, ev := range resp.Events {
		kv := ev.Kv
		w.pos = max(w.pos, kv.ModRevision)
		// etcd sends a revision's events in one response (we ask for no
		// fragments): one that the next event shares is not whole yet.
		more := i+1 < len(resp.Events) && resp.Events[i+1].Kv.ModRevision == kv.ModRevision
		switch ev.Type {
		case mvccpb.PUT:
			ch.Events = append(ch.Events, messages.WatcherUpdate{KV: messages.KV{
				Key: bytesString(kv.Key), Value: bytesString(kv.Value), ModifiedIndex: uint64(kv.ModRevision)}, More: more})
		case mvccpb.DELETE:
			ch.Events = append(ch.Events, messages.WatcherDeletion{Key: bytesString(kv.Key), ModifiedIndex: uint64(kv.ModRevision), More: more})
		}
	}
	ch.Index = uint64(w.pos)
	return ch
}

// Resume implements source.Watch: the next Next watches again from pos.
func (w *watch) Resume() { w.Close() }

// Close implements source.Watch.
func (w *watch) Close() {
	if w.cancel != nil {
		w.cancel()
		w.cancel, w.ch = nil, nil
	}
}

// bytesString returns b as a string without copying it. The generated
// protobuf code allocates every key and value of a response anew (it
// appends each field to a nil slice), nothing writes to them afterwards,
// and a response is dropped once its keys are handed on: so the host keeps
// the bytes the client decoded instead of a copy of each, one allocation
// and one copy fewer per key and value of a snapshot.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
