package wire

import (
	"fmt"
	"maps"

	"github.com/etcdsync/etcdsync/messages"
)

// Mirror applies the frames of one stream to a map: the simplest relay
// client, for tools and tests. It checks the order the protocol promises
// with an Order, as the relay client that feeds the merge core does. A
// snapshot replaces the map when it ends; that relay client instead does
// mark and sweep. Not safe for concurrent use.
type Mirror struct {
	Keys   map[string]KV // the view: complete unless InSnapshot
	Status messages.SyncStatus
	// ClusterID and Revision are the resume position the map is exactly
	// at: resume from them. Empty and 0 once a frame without a position
	// has changed the map or the status since (PROTOCOL.md, "Resume
	// positions"): such a client must take a snapshot.
	ClusterID string
	Revision  uint64
	// Digest is the relay's digest of its view at that position, as the
	// frame gave it: a Mirror takes the relay's word for it (the relay
	// client that feeds the merge core keeps its own and checks).
	Digest string

	Hellos, Snapshots, Deltas, Pings, Statuses int  // frames applied, by type
	Resumed                                    bool // the last hello resumed

	order     Order
	snap      map[string]KV // the snapshot being received; nil outside one
	snapCount int           // keys it announced
	// The snapshot's position, taken when it ends: one cut short leaves
	// the map, and the position, as they were.
	snapCluster string
	snapRev     uint64
	snapDigest  string
}

// NewMirror returns an empty mirror. A client that resumes fills Keys,
// Status, ClusterID and Revision from its last stream: a resumed stream
// goes on from there (the hello's status is the relay's at its head, not at
// the client's position).
func NewMirror() *Mirror {
	return &Mirror{Keys: map[string]KV{}}
}

// InSnapshot reports whether a snapshot has begun and not ended.
func (m *Mirror) InSnapshot() bool { return m.order.InSnapshot() }

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
	if err := m.order.Step(f); err != nil {
		return err
	}
	switch f.Type {
	case TypeHello:
		m.Hellos++
		m.Resumed = f.Resume
	case TypeSnapshotBegin:
		m.snap, m.snapCount = map[string]KV{}, f.Count
		m.snapCluster, m.snapRev, m.snapDigest = f.ClusterID, f.Revision, f.Digest
	case TypeKVs:
		for _, kv := range f.KVs {
			m.snap[kv.Key] = kv
		}
	case TypeSnapshotEnd:
		if len(m.snap) != m.snapCount { // the order counted entries; a key twice is short
			return fmt.Errorf("%w: %s frame after %d keys, not the %d announced", ErrBadFrame, f.Type, len(m.snap), m.snapCount)
		}
		// A snapshot replaces the map, so its position, or none, replaces
		// the last one.
		m.Keys, m.snap = m.snap, nil
		m.ClusterID, m.Revision, m.Digest = m.snapCluster, m.snapRev, m.snapDigest
		m.Snapshots++
		m.Status, _ = ParseStatus(f.Status) // Validate checked it
	case TypeDelta:
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
		m.takePosition(f) // an in-sync status may be one; wait-for-datastore never is
	case TypePing:
		m.Pings++
	case TypeError:
		return fmt.Errorf("relay refused: %s (field %q, retry after %ds): %s", f.Code, f.Field, f.RetryAfter, f.Message)
	}
	return nil
}

// takePosition takes a delta's or a status's resume position, or none if
// it has none: the relay names one only where its view is etcd's state at
// that revision, and a map past its position holds changes that another
// relay's log need not mention, so it must not resume from there.
func (m *Mirror) takePosition(f *Frame) {
	m.ClusterID, m.Revision, m.Digest = "", 0, ""
	if f.ClusterID != "" && f.Revision != 0 {
		m.ClusterID, m.Revision, m.Digest = f.ClusterID, f.Revision, f.Digest
	}
}

// Position returns the position to resume from: none (the zero
// Position) if the map is at none.
func (m *Mirror) Position() Position {
	return Position{ClusterID: m.ClusterID, Revision: m.Revision, Digest: m.Digest}
}

// Clone returns a deep copy, for a reader that must not share the map.
func (m *Mirror) Clone() *Mirror {
	c := *m
	c.Keys, c.snap = maps.Clone(m.Keys), maps.Clone(m.snap)
	return &c
}

// Resuming returns the mirror a client starts its next stream with, to
// resume from m's position: m's keys, status and position, and no counts.
func (m *Mirror) Resuming() *Mirror {
	return &Mirror{Keys: maps.Clone(m.Keys), Status: m.Status, ClusterID: m.ClusterID, Revision: m.Revision, Digest: m.Digest}
}
