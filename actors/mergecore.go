package actors

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/etcdsync/etcdsync/hwm"
	"github.com/etcdsync/etcdsync/messages"
)

// MergeCore is the merger's state machine: it merges snapshots with the
// free-running watch into one eventually consistent stream of updates. It is
// a plain struct with no goroutines, clocks or actor types; the Merger actor
// feeds it with Step and sends what Step returns, and keeps nothing of its
// own. Not safe for concurrent use.
//
// Semantics (those of the seed syncer; see ARCHITECTURE.md, "The life of an update"):
// snapshot keys are stored in the tracker at the snapshot's index, watch
// keys at their modifiedIndex, and a key is emitted only when its previous
// mark is below the event's modifiedIndex. While a snapshot is read,
// deletions are tracked so a stale snapshot value cannot resurrect a key the
// watch deleted; when it ends, every key the snapshot did not refresh is
// swept as deleted.
type MergeCore struct {
	marks Marks
	// flat: keys are etcd v3's, names of their own (hwm.Flat), not v2's
	// paths, where deleting a directory deletes what is under it.
	flat   bool
	status messages.SyncStatus
	// reported is the last status Step returned; 0 before Start.
	reported messages.SyncStatus

	minRequired       uint64 // a snapshot at or above this brings us in sync
	highestCompleted  uint64 // index of the newest finished snapshot
	snapshotRequested bool   // a request is out and its SnapshotFinished has not come
	// synced: a snapshot at or above minRequired has finished. Kept apart
	// from the indexes so that an etcd at index 0 still gets its snapshot.
	synced bool
	// watcherDown: the watcher lost sync and has not asked for a snapshot
	// since; one now would be wasted, as its index is not known yet.
	watcherDown bool
	applied     uint64 // highest etcd index merged so far
	// partial: the last watch input had More: the rest of its index is
	// still to come, so InSync waits, and so does the host (Output.Partial).
	partial bool

	// recentDels are the watch deletions seen while a snapshot was being
	// read. A snapshot requested meanwhile may be read at an index below
	// them, so they must be tracked again when it starts; the seed forgot
	// them and could resurrect a deleted key.
	recentDels []messages.WatcherDeletion

	// carried holds the keys the host had from an earlier cluster, after a
	// reset, until the first snapshot of the new cluster has shown which of
	// them still exist.
	carried map[string]struct{}

	suppressed uint64 // updates not emitted because newer data was seen

	cause        string // why the latest WatcherNeedsSnapshot came
	snapshotKeys int    // keys merged from the snapshot being read
}

// Output is what one Step asks its caller to do, in this order: deliver
// Updates, then report Status (if not zero), then send Snapshot (if not nil)
// to the snapshot reader. Merged, when not nil, says a snapshot has just
// been merged whole, for logs and metrics.
type Output struct {
	Updates  []messages.Update
	Status   messages.SyncStatus
	Snapshot *messages.SnapshotRequest
	Merged   *SnapshotMerged
	// Partial: the etcd index of the last watch input is not whole yet
	// (messages.Deliver.Partial). Closed: this step made whole an index an
	// earlier step left partial; its caller must say so even when there
	// is nothing else to deliver.
	Partial, Closed bool
}

// SnapshotMerged describes a snapshot merged whole.
type SnapshotMerged struct {
	Index uint64 // it was read at
	Keys  int    // it held
}

// Marks is what the merge needs of a high-water-mark tracker:
// hwm.Tracker for v2's paths, hwm.Flat for v3's flat keys.
type Marks interface {
	StoreUpdate(key string, modIdx uint64) (oldModIdx uint64)
	StoreDeletion(key string, modIdx uint64) (deletedKeys []string)
	StartTrackingDeletions()
	StopTrackingDeletions()
	DeleteOldKeys(limit uint64) (deletedKeys []string)
	ToMap() map[string]uint64
	Len() int
}

var (
	_ Marks = (*hwm.Tracker)(nil)
	_ Marks = (*hwm.Flat)(nil)
)

// NewMergeCore returns a MergeCore for a host that has nothing yet, merging
// etcd v2 paths: deleting a directory deletes every key under it.
func NewMergeCore() *MergeCore {
	return &MergeCore{marks: hwm.New(), status: messages.WaitForDatastore}
}

// NewFlatMergeCore returns a MergeCore for flat keys, as etcd v3 and the
// relay protocol carry them: a deletion deletes exactly its key, and "/a"
// and "/a/b" are unrelated.
func NewFlatMergeCore() *MergeCore {
	return &MergeCore{marks: hwm.NewFlat(), flat: true, status: messages.WaitForDatastore}
}

func (m *MergeCore) newMarks() Marks {
	if m.flat {
		return hwm.NewFlat()
	}
	return hwm.New()
}

// Start returns the status the host must be told about when the merger
// starts: WaitForDatastore the first time, nothing when a restarted merger
// resumes a MergeCore that already reported.
func (m *MergeCore) Start() Output {
	var out Output
	m.report(&out)
	return out
}

// Status returns the current sync status.
func (m *MergeCore) Status() messages.SyncStatus { return m.status }

// Applied returns the highest etcd index merged so far. The cluster-ID
// poller compares etcd's current index with it to spot a restored datastore.
func (m *MergeCore) Applied() uint64 { return m.applied }

// Suppressed returns how many watch or snapshot values were dropped because
// the merger had already seen newer data for their key.
func (m *MergeCore) Suppressed() uint64 { return m.suppressed }

// Keys returns how many keys the host holds, once every pending Output has
// been delivered.
func (m *MergeCore) Keys() int { return m.marks.Len() + len(m.carried) }

// Step merges one input from the watcher or the snapshot reader and returns
// what must be emitted.
func (m *MergeCore) Step(in messages.MergeInput) Output {
	var out Output
	wasPartial := m.partial
	switch in := in.(type) {
	case messages.WatcherNeedsSnapshot:
		// Never settle for a snapshot below what has been applied: a
		// datastore that went back in time can then never satisfy the
		// request, which the snapshot reader detects.
		m.minRequired = max(m.minRequired, in.MinIndex, m.applied)
		m.synced = m.synced && m.highestCompleted >= m.minRequired
		m.watcherDown = false
		m.cause = in.Cause
		m.partial = false // a watch that starts over: the rest of that index comes as news, or in the snapshot
	case messages.WatcherLostSync:
		m.synced, m.watcherDown = false, true
		m.partial = false // the rest of the index will not come: the resync brings it
		if m.status == messages.InSync {
			m.status = messages.Resync
		} // a watcher that never reached etcd leaves wait-for-datastore as it is
	case messages.WatcherUpdate:
		m.partial = in.More
		if m.afterSnapshot(in.ModifiedIndex) {
			m.storeUpdate(&out, in.KV, in.ModifiedIndex)
		}
	case messages.WatcherDeletion:
		m.partial = in.More
		if !m.afterSnapshot(in.ModifiedIndex) {
			break
		}
		m.deleted(&out, m.marks.StoreDeletion(in.Key, in.ModifiedIndex), in.ModifiedIndex)
		m.forgetCarriedUnder(&out, in.Key, in.ModifiedIndex)
		if m.snapshotRequested {
			m.recentDels = append(m.recentDels, in)
		}
	case messages.SnapshotBatch:
		m.applied = max(m.applied, in.Index)
		m.snapshotKeys += len(in.KVs)
		out.Updates = make([]messages.Update, 0, len(in.KVs))
		for _, kv := range in.KVs {
			m.storeUpdate(&out, kv, in.Index)
		}
	case messages.SnapshotFinished:
		m.applied = max(m.applied, in.Index)
		m.finishSnapshot(&out, in.Index)
	default:
		panic(fmt.Sprintf("merge: MergeInput %T has no case", in)) // sealed: a new type needs one
	}
	if !m.synced && !m.snapshotRequested && !m.watcherDown {
		m.requestSnapshot(&out)
	}
	m.report(&out)
	out.Partial = m.partial
	out.Closed = wasPartial && !m.partial
	return out
}

// ResetCluster prepares the Merge for a new etcd cluster whose index space
// has nothing to do with the old one: the marks are dropped, but the keys the
// host holds are carried, so that the first snapshot of the new cluster sends
// each key it holds as updated (or new) and each carried key it lacks as
// deleted. The status returns to WaitForDatastore.
func (m *MergeCore) ResetCluster() {
	carried := make(map[string]struct{}, m.Keys())
	for k := range m.carried {
		carried[k] = struct{}{}
	}
	for k := range m.marks.ToMap() {
		carried[k] = struct{}{}
	}
	*m = MergeCore{
		marks:    m.newMarks(),
		flat:     m.flat,
		status:   messages.WaitForDatastore,
		reported: m.reported,
		carried:  carried,
	}
}

// afterSnapshot reports whether a watch event at idx is news: one at or below
// the newest finished snapshot is already in it. Applying it anyway, as the
// seed did, can briefly resurrect a key that the snapshot's sweep deleted,
// with a revision below the deletion's.
func (m *MergeCore) afterSnapshot(idx uint64) bool {
	if idx <= m.highestCompleted {
		m.suppressed++
		return false
	}
	m.applied = max(m.applied, idx)
	return true
}

func (m *MergeCore) requestSnapshot(out *Output) {
	m.snapshotRequested = true
	m.marks.StartTrackingDeletions()
	// Deletions at or below minRequired are in any snapshot that satisfies
	// the request; later ones must keep refusing its older values.
	kept := m.recentDels[:0]
	for _, d := range m.recentDels {
		if d.ModifiedIndex > m.minRequired {
			// Their keys are already gone: this only re-tracks them.
			m.marks.StoreDeletion(d.Key, d.ModifiedIndex)
			kept = append(kept, d)
		}
	}
	m.recentDels = kept
	m.status = messages.Resync
	m.snapshotKeys = 0
	out.Snapshot = &messages.SnapshotRequest{MinIndex: m.minRequired, Cause: m.cause}
}

func (m *MergeCore) storeUpdate(out *Output, kv messages.KV, storeIdx uint64) {
	old := m.marks.StoreUpdate(kv.Key, storeIdx)
	if old >= kv.ModifiedIndex {
		m.suppressed++
		return
	}
	t := messages.UpdateTypeUpdated
	if old == 0 {
		t = messages.UpdateTypeNew
		if _, ok := m.carried[kv.Key]; ok {
			t = messages.UpdateTypeUpdated
			delete(m.carried, kv.Key)
		}
	}
	out.Updates = append(out.Updates, messages.Update{Key: kv.Key, Value: kv.Value, Revision: kv.ModifiedIndex, Type: t})
}

func (m *MergeCore) deleted(out *Output, keys []string, rev uint64) {
	for _, k := range keys {
		out.Updates = append(out.Updates, messages.Update{Key: k, Revision: rev, Type: messages.UpdateTypeDeleted})
	}
}

func (m *MergeCore) finishSnapshot(out *Output, idx uint64) {
	m.snapshotRequested = false
	m.marks.StopTrackingDeletions()
	m.deleted(out, m.marks.DeleteOldKeys(idx), idx)
	if m.carried != nil {
		// Carried keys the new cluster's snapshot did not hold are gone.
		m.deleted(out, slices.Sorted(maps.Keys(m.carried)), idx)
		m.carried = nil
	}
	m.highestCompleted = max(m.highestCompleted, idx)
	out.Merged = &SnapshotMerged{Index: idx, Keys: m.snapshotKeys}
	if idx >= m.minRequired && !m.watcherDown {
		m.synced = true
		m.status = messages.InSync
		m.recentDels = nil
	}
	// Otherwise the watcher lost sync again while the snapshot was read;
	// Step requests the next one once the watcher has said at which index.
}

// forgetCarriedUnder sends deletions for carried keys at or below key, which
// the new cluster's watch has just deleted.
func (m *MergeCore) forgetCarriedUnder(out *Output, key string, rev uint64) {
	if len(m.carried) == 0 {
		return
	}
	dir := strings.TrimSuffix(key, "/")
	var gone []string
	for k := range m.carried {
		if k == key || !m.flat && (dir == "" || k == dir || strings.HasPrefix(k, dir+"/")) {
			gone = append(gone, k)
			delete(m.carried, k)
		}
	}
	slices.Sort(gone)
	m.deleted(out, gone, rev)
}

// report sets out.Status to the status, if the host has not been told it.
// InSync waits while an index is partial: the host would be in sync with
// some of one index's changes and not the others.
func (m *MergeCore) report(out *Output) {
	if m.status == messages.InSync && m.partial {
		return
	}
	if m.status != m.reported {
		out.Status = m.status
		m.reported = m.status
	}
}
