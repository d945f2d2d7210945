package messages

import (
	"errors"
	"fmt"
)

// Errors the actors fail with. The supervisor matches them with errors.Is and
// turns the first three into the host's reset policy.
var (
	// ErrClusterIDChanged: etcd answered with a cluster ID other than the
	// one seen before, so its index space is not the one we hold.
	ErrClusterIDChanged = errors.New("etcdsync: etcd cluster ID changed")
	// ErrIndexRegressed: etcd's index went below one we have applied under
	// the same cluster ID, as when a data dir is restored from a backup.
	ErrIndexRegressed = errors.New("etcdsync: etcd index went back in time")
	// ErrUpstreamReset: the relay a syncer reads from reported that its own
	// syncer was rebuilt against a reset or restored etcd; the host's reset
	// policy applies, as for the first two.
	ErrUpstreamReset = errors.New("etcdsync: the relay's etcd was rebuilt or restored")
	// ErrLostSync: the watch can no longer deliver every event (etcd error
	// 401 or 400, or too many transport errors in a row); the watcher fails
	// and is restarted, which brings a resync.
	ErrLostSync = errors.New("etcdsync: watcher lost sync with etcd")
	// ErrPoisonBatch: the host's callback panicked on the same batch too many
	// times in a row.
	ErrPoisonBatch = errors.New("etcdsync: host callback keeps failing on one batch")
)

// KV is one key and value as read from etcd.
type KV struct {
	Key           string
	Value         string
	ModifiedIndex uint64
}

// MergeInput is a message the merger merges: the watcher's and the
// snapshot reader's. It is sealed: the types below are the whole list.
type MergeInput interface{ mergeInput() }

func (WatcherNeedsSnapshot) mergeInput() {}
func (WatcherLostSync) mergeInput()      {}
func (WatcherUpdate) mergeInput()        {}
func (WatcherDeletion) mergeInput()      {}
func (SnapshotBatch) mergeInput()        {}
func (SnapshotFinished) mergeInput()     {}

// WatcherNeedsSnapshot is sent by the watcher when it (re)starts watching
// from MinIndex: only a snapshot at or above MinIndex, merged with the watch,
// gives a complete view.
type WatcherNeedsSnapshot struct {
	MinIndex uint64
	Cause    string // why the watch (re)started: "start", "lost-sync", ...
}

// WatcherLostSync is sent by the watcher just before it fails: events are
// being missed from now on, until it restarts and asks for a snapshot.
type WatcherLostSync struct {
	Err error
}

// WatcherUpdate is a key set, created, updated or compare-and-swapped.
type WatcherUpdate struct {
	KV
	// More: the next input is another change at the same ModifiedIndex
	// (see WatcherDeletion.More).
	More bool
}

// WatcherDeletion is a key or directory deleted, compare-and-deleted or
// expired.
type WatcherDeletion struct {
	Key           string
	ModifiedIndex uint64
	// More: the next input is another change at the same ModifiedIndex,
	// which this one does not finish: one etcd index that changed several
	// keys (a v3 range delete or transaction, a relay's frame) comes as
	// several inputs, all but the last with More. The merger hands the
	// host no batch that ends inside an index, and reports InSync only
	// once the index is whole. An etcd v2 event is one index on its own (a
	// directory's deletion is one input), so v2's never have More.
	More bool
}

// SnapshotRequest asks the snapshot reader for a snapshot at or above
// MinIndex, and says why one is needed ("start", "watcher-restart", ...).
type SnapshotRequest struct {
	MinIndex uint64
	Cause    string
}

// SnapshotBatch carries keys of a snapshot read at Index.
type SnapshotBatch struct {
	Index uint64
	KVs   []KV
}

// SnapshotFinished ends a snapshot read at Index: every key it held has been
// sent.
type SnapshotFinished struct {
	Index uint64
}

// Deliver is the merger's output for the consumer adapter, and what a host
// actor (supervisor.Config.HostPID) receives: updates, then a status change
// (zero: none). A host actor answers each with Delivered once it has
// applied it; until then no other is sent, and one it does not answer is
// sent again, as a batch whose callback panicked is.
type Deliver struct {
	Updates []Update
	Status  SyncStatus
	// Index, with Status InSync, is the etcd index at which the host's
	// view, once this Deliver is applied, is etcd's: a position from which
	// a relay's clients can resume. 0 with any other status.
	Index uint64
	// Partial: the last update's etcd index is not whole yet; its other
	// changes follow in the next Deliver (see WatcherDeletion.More). The
	// consumer's Outbox holds such updates back until the index is whole,
	// so no host, callbacks or actor, ever gets a batch that ends inside
	// one etcd index. A Deliver with no updates and no status ends such an
	// index whose last changes emitted nothing.
	Partial bool
}

// Delivered is a host actor's answer to a Deliver (ctx.Respond), once it
// has applied it: the consumer sends the next Deliver only then.
type Delivered struct{}

func (m WatcherNeedsSnapshot) String() string {
	return fmt.Sprintf("watcher needs snapshot >= %d (%s)", m.MinIndex, m.Cause)
}

func (m WatcherLostSync) String() string { return fmt.Sprintf("watcher lost sync: %v", m.Err) }

func (m WatcherUpdate) String() string {
	return fmt.Sprintf("watch set %s@%d", m.Key, m.ModifiedIndex)
}

func (m WatcherDeletion) String() string {
	return fmt.Sprintf("watch delete %s@%d", m.Key, m.ModifiedIndex)
}

func (m SnapshotRequest) String() string {
	return fmt.Sprintf("snapshot request >= %d (%s)", m.MinIndex, m.Cause)
}
func (m SnapshotFinished) String() string {
	return fmt.Sprintf("snapshot finished @%d", m.Index)
}

func (m SnapshotBatch) String() string {
	return fmt.Sprintf("snapshot batch @%d: %d keys", m.Index, len(m.KVs))
}

func (m Deliver) String() string {
	if m.Status == 0 {
		return fmt.Sprintf("deliver %d updates", len(m.Updates))
	}
	return fmt.Sprintf("deliver %d updates, then %s", len(m.Updates), m.Status)
}
