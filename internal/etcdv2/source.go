package etcdv2

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// ErrNoV2: the endpoint answers, but not with etcd's v2 keys API: etcd 3.6
// and later removed it (and 3.4 and 3.5 serve it only with --enable-v2).
var ErrNoV2 = errors.New("etcd does not serve the v2 API (etcd 3.6 removed it; 3.4 and 3.5 need --enable-v2): " +
	"sync through the v3 API instead (--etcd-api v3, or Config.API = supervisor.APIv3)")

// KeysAPI is the part of client.KeysAPI the v2 source calls: a GET and a
// watch. A client/v2 KeysAPI satisfies it, and so do KeysHTTP's
// StreamWatches and e2e/etcdsim.
type KeysAPI interface {
	Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error)
	Watcher(key string, opts *client.WatcherOptions) client.Watcher
}

// Watches makes watchers; a client/v2 KeysAPI is one (a long poll per
// event), StreamWatches another.
type Watches interface {
	Watcher(key string, opts *client.WatcherOptions) client.Watcher
}

// Snapshotter reads a recursive snapshot of a prefix: from any member, or,
// if quorum, as a quorum read, which a member cut off from its quorum cannot
// answer and which is never behind.
//
// Snapshot calls head once, with the index and cluster ID the answer
// carries, before any leaf; if head returns an error the read stops there
// and Snapshot returns it. Then it calls leaf for every key below prefix, in
// the order etcd lists them, hidden keys included. A prefix that does not
// exist is a client.Error with code 100 carrying etcd's index, as client/v2
// returns it.
type Snapshotter interface {
	Snapshot(ctx context.Context, prefix string, quorum bool, head func(index uint64, clusterID string) error, leaf func(messages.KV)) error
}

// Source is etcd's v2 keys API as the actors use it (a source.Source): GETs
// through Keys, snapshots through Snapshots, watches through Watches.
type Source struct {
	Keys      KeysAPI
	Snapshots Snapshotter
	Watches   Watches
	Prefix    string
}

// NewKeysSource returns a Source that does everything through keys (a
// client/v2 KeysAPI, or e2e/etcdsim): a long poll per watch event, and
// snapshots decoded whole.
func NewKeysSource(keys KeysAPI, prefix string) *Source {
	return &Source{Keys: keys, Snapshots: KeysSnapshotter{Keys: keys}, Watches: keys, Prefix: prefix}
}

var _ source.Source = (*Source)(nil)

// Head reads etcd's index and cluster ID with a quorum GET of the root
// directory, which always exists (so neither the prefix nor its Ready key
// need to) and answers with both headers. It lists only the top level.
// Quorum, because a lagging follower's index would start the watch far
// behind, maybe outside the event window (the seed read its Ready key from
// any member).
func (s *Source) Head(ctx context.Context) (source.Head, error) {
	resp, err := s.Keys.Get(ctx, "/", &client.GetOptions{Quorum: true})
	if errors.Is(err, client.ErrInvalidJSON) {
		// client/v2's reading of a 404 that is not etcd's.
		err = fmt.Errorf("%w: %w", ErrNoV2, err)
	}
	if err != nil {
		return source.Head{}, err
	}
	return source.Head{Index: resp.Index, ClusterID: resp.ClusterID}, nil
}

// Snapshot implements source.Source. Hidden keys are left out: etcd lists
// none, but a KeysAPI of the host's might. A prefix that does not exist yet
// is an empty snapshot at the index etcd's "key not found" carries, of the
// cluster that answers for "/" next (etcd's error carries no ID; a reset
// between the two reads shows as the new ID).
func (s *Source) Snapshot(ctx context.Context, quorum bool, head func(source.Head) error, leaf func(messages.KV)) error {
	err := s.Snapshots.Snapshot(ctx, s.Prefix, quorum,
		func(index uint64, clusterID string) error {
			return head(source.Head{Index: index, ClusterID: clusterID})
		},
		func(kv messages.KV) {
			if !Hidden(s.Prefix, kv.Key) {
				leaf(kv)
			}
		})
	if index, notFound := keyNotFoundIndex(err); notFound && ctx.Err() == nil {
		resp, err := s.Keys.Get(ctx, "/", nil)
		if err != nil {
			return fmt.Errorf("reading etcd's cluster ID for an empty snapshot: %w", err)
		}
		return head(source.Head{Index: index, ClusterID: resp.ClusterID})
	}
	return err
}

// Watch implements source.Source: a recursive watch of the prefix.
func (s *Source) Watch(after uint64) source.Watch {
	return &watch{
		w:      s.Watches.Watcher(s.Prefix, &client.WatcherOptions{AfterIndex: after, Recursive: true}),
		prefix: s.Prefix,
	}
}

// Classify implements source.Source; see ClassifyWatchError.
func (s *Source) Classify(err error) source.Verdict { return ClassifyWatchError(err) }

// watch is a client/v2 watcher, read as source.Changes.
type watch struct {
	w      client.Watcher
	prefix string
}

// Next implements source.Watch: one v2 event per call.
func (w *watch) Next(ctx context.Context) (source.Changes, error) {
	resp, err := w.w.Next(ctx)
	if err != nil {
		return source.Changes{}, err
	}
	ev, err := EventFromResponse(w.prefix, resp)
	if err != nil {
		return source.Changes{}, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	ch := source.Changes{ClusterID: resp.ClusterID, Index: resp.Node.ModifiedIndex}
	if ev != nil {
		ch.Events = []messages.MergeInput{ev}
	}
	return ch, nil
}

// Resume implements source.Watch: a stream reconnects (and fills the gap
// from its position); a long poll asks again on its next Next anyway.
func (w *watch) Resume() {
	if r, ok := w.w.(interface{ Reconnect() }); ok {
		r.Reconnect()
	}
}

// Close implements source.Watch.
func (w *watch) Close() {
	if c, ok := w.w.(io.Closer); ok {
		c.Close()
	}
}

// keyNotFoundIndex returns the index an etcd "key not found" error carries.
func keyNotFoundIndex(err error) (uint64, bool) {
	var e client.Error
	if errors.As(err, &e) && e.Code == client.ErrorCodeKeyNotFound {
		return e.Index, true
	}
	return 0, false
}
