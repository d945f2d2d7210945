package relaywire

import (
	"fmt"
	"maps"

	"github.com/etcdsync/etcdsync/messages"
)

// Mirror applies the frames of one stream to a map: the simplest relay
// client, for tools and tests. It checks the order the protocol promises (a
// hello first, kvs only inside a snapshot, no delta before the first
// snapshot ends unless the stream resumed). A snapshot replaces the map
// when it ends; the relay client that feeds the merge core instead does
// mark and sweep. Not safe for concurrent use.
type Mirror struct {
	Keys      map[string]KV // the view: complete unless InSnapshot
	Status    messages.SyncStatus
	ClusterID string // the cluster of the last resume position seen
	Revision  uint64 // that position's revision: resume from (ClusterID, Revision)

	Hellos, Snapshots, Deltas, Pings, Statuses int  // frames applied, by type
	Resumed                                    bool // the last hello resumed

	snap      map[string]KV // the snapshot being received; nil outside one
	snapCount int           // keys it announced
	// The snapshot's position, taken when it ends: one cut short leaves
	// the map, and the position, as they were.
	snapCluster string
	snapRev     uint64
	synced      bool // a snapshot ended, or the stream resumed
}

// NewMirror returns an empty mirror. A client that resumes fills Keys,
// Status, ClusterID and Revision from its last stream: a resumed stream
// goes on from there (the hello's status is the relay's at its head, not at
// the client's position).
func NewMirror() *Mirror {
	return &Mirror{Keys: map[string]KV{}}
}

// InSnapshot reports whether a snapshot has begun and not ended.
func (m *Mirror) InSnapshot() bool { return m.snap != nil }

// Map returns a copy of the keys and values.
func (m *Mirror) Map() map[string]string {
	out := make(map[string]string, len(m.Keys))
	for k, kv := range m.Keys {
		out[k] = kv.Value
	}
	return out
}

// Apply applies one frame. An error frame is returned as an error, and so is
// a frame out of order (wrapping ErrBadFrame).
func (m *Mirror) Apply(f *Frame) error {
	outOfOrder := func(why string) error {
		return fmt.Errorf("%w: %s frame %s", ErrBadFrame, f.Type, why)
	}
	if f.Type != TypeHello && f.Type != TypeError && m.Hellos == 0 {
		return outOfOrder("before hello")
	}
	switch f.Type {
	case TypeHello:
		m.Hellos++
		m.Resumed = f.Resume
		if f.Resume {
			m.synced = true
		}
	case TypeSnapshotBegin:
		m.snap, m.snapCount = map[string]KV{}, f.Count
		m.snapCluster, m.snapRev = f.ClusterID, f.Revision
	case TypeKVs:
		if m.snap == nil {
			return outOfOrder("outside a snapshot")
		}
		for _, kv := range f.KVs {
			m.snap[kv.Key] = kv
		}
	case TypeSnapshotEnd:
		if m.snap == nil {
			return outOfOrder("outside a snapshot")
		}
		if len(m.snap) != m.snapCount {
			return outOfOrder(fmt.Sprintf("after %d keys, not the %d announced", len(m.snap), m.snapCount))
		}
		// A snapshot replaces the map, so its position, or none, replaces
		// the last one.
		m.Keys, m.snap, m.synced = m.snap, nil, true
		m.ClusterID, m.Revision = m.snapCluster, m.snapRev
		m.Snapshots++
		m.Status, _ = ParseStatus(f.Status) // Validate checked it
	case TypeDelta:
		if m.snap != nil || !m.synced {
			return outOfOrder("before a snapshot ended")
		}
		for _, c := range f.Changes {
			u, err := c.Update()
			if err != nil {
				return err
			}
			if u.Type == messages.UpdateTypeDeleted {
				delete(m.Keys, u.Key)
			} else {
				m.Keys[u.Key] = KV{Key: u.Key, Value: u.Value, Revision: u.Revision}
			}
		}
		m.Deltas++
		m.takePosition(f)
	case TypeStatus:
		m.Status, _ = ParseStatus(f.Status)
		m.Statuses++
		m.takePosition(f) // an in-sync status may be one
		if m.Status == messages.WaitForDatastore {
			// The relay's syncer was rebuilt, perhaps against another
			// cluster: revisions start over, and no position holds.
			m.ClusterID, m.Revision = "", 0
		}
	case TypePing:
		m.Pings++
	case TypeError:
		return fmt.Errorf("relay refused: %s (field %q, retry after %ds): %s", f.Code, f.Field, f.RetryAfter, f.Message)
	}
	return nil
}

// takePosition keeps a delta's or a status's resume position, if it has one: the relay
// names one only where its view is etcd's state at that revision. A client
// past its last position still resumes from it; what it is sent again, it
// applies again in order, which leaves a map the same.
func (m *Mirror) takePosition(f *Frame) {
	if f.ClusterID != "" && f.Revision != 0 {
		m.ClusterID, m.Revision = f.ClusterID, f.Revision
	}
}

// Clone returns a deep copy, for a reader that must not share the map.
func (m *Mirror) Clone() *Mirror {
	c := *m
	c.Keys, c.snap = maps.Clone(m.Keys), maps.Clone(m.snap)
	return &c
}

// Resuming returns the mirror a client starts its next stream with, to
// resume from m's position: m's keys, status, cluster ID and revision, and
// no counts.
func (m *Mirror) Resuming() *Mirror {
	return &Mirror{Keys: maps.Clone(m.Keys), Status: m.Status, ClusterID: m.ClusterID, Revision: m.Revision}
}
