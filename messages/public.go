package messages

import "fmt"

// UpdateType says what happened to a key.
type UpdateType uint8

// The zero UpdateType is invalid, so that a forgotten field fails loudly.
const (
	UpdateTypeNew     UpdateType = iota + 1 // the host did not have the key
	UpdateTypeUpdated                       // the host had the key; the value may be unchanged
	UpdateTypeDeleted                       // the host had the key; it is gone
)

func (t UpdateType) String() string {
	switch t {
	case UpdateTypeNew:
		return "new"
	case UpdateTypeUpdated:
		return "updated"
	case UpdateTypeDeleted:
		return "deleted"
	}
	return fmt.Sprintf("UpdateType(%d)", uint8(t))
}

// Update is one change to one key under the synced prefix.
type Update struct {
	Key   string // the etcd key, e.g. "/calico/v1/config/LogSeverityScreen"
	Value string // the raw etcd value; empty for UpdateTypeDeleted
	// Revision is the etcd index of the change: the key's modifiedIndex, or
	// for a deletion found by a resync, the index of the snapshot that no
	// longer held the key. Within one etcd cluster, a key's revisions only
	// rise.
	Revision uint64
	Type     UpdateType

	// With a Decoder configured: the typed key, and the typed value (nil
	// for a deletion, and for a value that failed to decode).
	DecodedKey   any
	DecodedValue any
}

func (u Update) String() string {
	if u.Type == UpdateTypeDeleted {
		return fmt.Sprintf("%s %s@%d", u.Type, u.Key, u.Revision)
	}
	return fmt.Sprintf("%s %s@%d=%q", u.Type, u.Key, u.Revision, u.Value)
}

// SyncStatus says how far the host's view is from etcd's.
type SyncStatus uint8

// The zero SyncStatus is invalid.
const (
	// WaitForDatastore: etcd has not been reached yet.
	WaitForDatastore SyncStatus = iota + 1
	// Resync: a snapshot is being merged; the host's view is incomplete or
	// holds keys etcd no longer has.
	Resync
	// InSync: every key etcd had when the latest snapshot was read has been
	// delivered, and the watch is delivering every change since.
	InSync
)

func (s SyncStatus) String() string {
	switch s {
	case WaitForDatastore:
		return "wait-for-datastore"
	case Resync:
		return "resync"
	case InSync:
		return "in-sync"
	}
	return fmt.Sprintf("SyncStatus(%d)", uint8(s))
}

// Callbacks is what a host implements to receive the syncer's output.
//
// The syncer calls the methods from one goroutine at a time, never
// concurrently, in the order the changes happened. Apply every Update in order
// to an empty map: whenever the last status reported is InSync and etcd has
// been quiet long enough for the watch to drain, the map equals etcd's keys and
// values under the prefix. The syncer waits for each call to return, so a
// slow callback delays every later one (updates meanwhile wait, coalesced per
// key); a callback that panics has its batch delivered again, whole, and one
// that panics on the same batch repeatedly stops the syncer with an error.
//
// Every OnUpdates batch ends at the end of an etcd index: one index that
// changed several keys (a v2 directory deleted, a v3 range delete or
// transaction) is never split across two batches, nor its InSync reported
// before its last change. So while the last status reported is InSync,
// once a batch is applied the map is etcd's state at the highest revision
// delivered since the InSync (or the index StatusAtCallback gave with it):
// not only once etcd is quiet.
//
// A key's revisions only rise within one etcd cluster. When the syncer is
// rebuilt against a reset or restored etcd, it reports WaitForDatastore
// again before anything from the new cluster: revisions start over there.
type Callbacks interface {
	// OnStatusUpdated reports a change of SyncStatus.
	OnStatusUpdated(status SyncStatus)
	// OnUpdates delivers a batch of updates, oldest first. The slice is the
	// host's once the call returns; until then it must not be modified, as a
	// batch whose call panicked is delivered again.
	OnUpdates(updates []Update)
}

// StatusAtCallback is implemented by hosts that want to know, when the
// syncer reports InSync, the etcd index at which their view is etcd's (a
// relay server, which hands it to its clients as a position to resume
// from). The syncer then calls OnStatusAt instead of OnStatusUpdated.
type StatusAtCallback interface {
	// OnStatusAt reports a change of SyncStatus; with InSync, index is the
	// etcd index at which the view is etcd's, and 0 with any other status.
	OnStatusAt(status SyncStatus, index uint64)
}

// ClusterIDUser is implemented by hosts that label what they are given
// with the etcd cluster ID it came from (a relay server). The syncer hands
// them its ClusterID method before it delivers anything, so that no
// delivery can come before the host knows where to read the ID.
type ClusterIDUser interface {
	SetClusterIDSource(clusterID func() string)
}

// ParseFailedCallback is implemented by hosts that want to hear about keys
// their decoder could not parse; such keys are left out of OnUpdates.
type ParseFailedCallback interface {
	// ParseFailed reports a key that could not be parsed, and its value
	// (empty for a deletion).
	ParseFailed(key, value string)
}
