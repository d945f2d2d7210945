package actors

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/etcdsync/etcdsync/internal/keyspace"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// RelayFeed is the relay client's core: it turns the frames of relay
// streams (relay/PROTOCOL.md) into the merge core's inputs, as
// if a watcher and a snapshot reader were reading etcd. It is a plain
// struct: frames, snapshot requests and the time are inputs, merge inputs
// are outputs. Not safe for concurrent use.
//
// It keeps the relay's view as the frames build it. The merge core needs
// snapshots that are a state of etcd at one index and watch events in index
// order after them. A relay in sync sends exactly that after each of its
// resume positions; while it resyncs, its frames come in key order. So the
// feed is live (it forwards deltas as watch events) only from a resume
// position at which the relay is in sync, and serves the merge core's
// snapshot requests from its view at such a position. Anything else (the
// relay leaving in-sync, a broken stream, a fresh snapshot on the stream)
// ends live forwarding with a WatcherLostSync, and the next position in
// sync starts it again with a WatcherNeedsSnapshot. The merge core's mark
// and sweep then tells the host only what changed.
//
// A stream resumes only from a position the view is exactly at (Position),
// named with the digest of the view there (wire.Digest, kept as frames are
// applied), and a frame no relay sends is refused before any of it is
// applied (see Frame), so neither a failover nor a hostile relay leaves a
// wrong view. The digest is what keeps a failover to a relay of an etcd
// rebuilt with the same cluster ID from resuming: its log's digest at the
// revision is another, so it sends a snapshot; and a snapshot that cannot
// be a later state of the view's history is an upstream reset (see
// sameHistory).
type RelayFeed struct {
	// StaleTimeout is how long the relay may stay in sync below the index
	// the merge core requires, under one cluster ID, before the feed takes
	// it for a datastore gone back in time (as StaleCheck does).
	StaleTimeout time.Duration
	// BatchSize is the most keys one SnapshotBatch carries.
	BatchSize int

	view   map[string]messages.KV
	digest wire.Digest            // view's
	snap   map[string]messages.KV // the snapshot being received; nil outside one
	// snapDigest is snap's; snapClaim, the digest its snapshot-begin gave,
	// if any, checked when it ends.
	snapDigest wire.Digest
	snapClaim  string
	count      int        // keys the snapshot announced
	order      wire.Order // the stream's frame order, shared with wire.Mirror
	// snapCluster, snapRev: the snapshot's position, taken only once it
	// has ended. A snapshot cut short leaves the view, and so the
	// position, as they were.
	snapCluster string
	snapRev     uint64
	status      messages.SyncStatus // the relay's, as its frames said; 0 before any
	cluster     string              // of the last resume position; "" for none
	rev         uint64              // its revision
	// consistent: the last frame applied to the view was a resume
	// position, so the view is etcd's state at rev. (A snapshot being
	// received is not applied until it ends.) Only then may a stream
	// resume from rev: see Position.
	consistent bool
	live       bool // the merge core has been told WatcherNeedsSnapshot, and gets every change since
	// held: live changes of frames with no position (the leading frames of
	// a split batch), forwarded only with the frame that ends at a
	// position, so that the merge core never waits for the rest of an
	// index across frames (a stream that breaks meanwhile drops them: the
	// resync brings them).
	held   []messages.MergeInput
	want   *messages.SnapshotRequest // the merge core's, not yet served
	stale  StaleCheck                // judges a relay that stays below want
	behind bool                      // the relay was seen in sync below want
	// pending is check's scratch: a frame's changes by key, to compute the
	// digest it would leave before applying it.
	pending map[string]pendingValue
}

// pendingValue is a key's value after some of a frame's changes.
type pendingValue struct {
	value   string
	present bool
}

// ErrRelayProtocol wraps every violation of the protocol by a relay: a
// frame out of order, a snapshot short of its count, a prefix not ours.
var ErrRelayProtocol = errors.New("etcdsync: relay broke the protocol")

// MaxHeldChanges bounds the changes a live feed holds from frames with no
// position, waiting for the frame that ends their batch at one. Past it the
// feed stops forwarding, and the next position brings a resync from its
// view instead: a mark and sweep of the leaf's own map, no network.
const MaxHeldChanges = 1 << 16

// NewRelayFeed returns a feed with an empty view.
func NewRelayFeed(batchSize int, staleTimeout time.Duration) *RelayFeed {
	return &RelayFeed{view: map[string]messages.KV{}, BatchSize: max(1, batchSize), StaleTimeout: staleTimeout}
}

// snapshotPresize caps how many keys a snapshot's map is sized for before
// they come: a count from the wire only bounds the snapshot (a 77-byte
// frame announcing 2^31 keys must not allocate), and a map grows cheaply.
const snapshotPresize = 1024

// Position returns the resume position to connect with: the cluster ID and
// revision of the last resume position applied, and the view's digest, if
// the view is exactly at it; else none (the zero Position), for a snapshot.
// A view past its position (a resync's deltas or statuses, the leading
// frames of a split batch) holds changes that another relay's log need not
// mention, since a position is a state of etcd, not a place in one relay's
// log: resuming there could leave a deleted key in a view that says it is
// in sync. The digest is the feed's own, not the relay's word: a relay
// resumes only where its view was this one.
func (f *RelayFeed) Position() wire.Position {
	if !f.consistent {
		return wire.Position{}
	}
	return wire.Position{ClusterID: f.cluster, Revision: f.rev, Digest: f.digest.String()}
}

// Digest returns the digest of the relay's view as the feed holds it.
func (f *RelayFeed) Digest() wire.Digest { return f.digest }

// Live reports whether the merge core gets the relay's changes as they come.
func (f *RelayFeed) Live() bool { return f.live }

// Waiting reports whether a snapshot request waits for the relay to reach
// the index it needs: the caller then calls Tick now and then, so that a
// quiet relay that stays behind is judged.
func (f *RelayFeed) Waiting() bool { return f.want != nil && f.behind }

// Keys returns how many keys the relay's view holds.
func (f *RelayFeed) Keys() int { return len(f.view) }

// Connected begins a new stream: a snapshot the last one was in the middle
// of is void. The view, the status and the position are kept, for a stream
// that resumes; so is whether the view was exactly at the position when the
// last stream ended, as a resumed stream goes on from there.
func (f *RelayFeed) Connected() {
	f.snap, f.order = nil, wire.Order{}
}

// Disconnected ends the stream: the merge core is no longer told every
// change, so it must resync once a stream is back in sync.
func (f *RelayFeed) Disconnected(why error) []messages.MergeInput {
	return f.lose(fmt.Errorf("relay stream ended: %w", why))
}

// Frame applies one frame at now and returns what the merge core must be
// sent, in order. An error frame, or a frame out of order or hostile, is
// an error (wrapping ErrRelayProtocol for the latter); the stream must then
// be dropped, and what the outputs hold must still be sent. A refused frame
// changes neither the view nor the position. An error wrapping
// messages.ErrUpstreamReset or messages.ErrIndexRegressed means the relay's
// datastore was rebuilt or went back in time.
func (f *RelayFeed) Frame(fr *wire.Frame, now time.Time, prefix string) ([]messages.MergeInput, error) {
	if err := f.order.Step(fr); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRelayProtocol, err)
	}
	if err := f.check(fr, prefix); err != nil {
		return nil, protocolError(fr, "%v", err)
	}
	var out []messages.MergeInput
	switch fr.Type {
	case wire.TypeHello:
		// A resumed stream sends what follows the position, so the view
		// and the status stand as the last stream left them. Any other
		// stream begins with a snapshot.
	case wire.TypeSnapshotBegin:
		out = f.lose(errors.New("the relay sent a fresh snapshot"))
		f.snap, f.count = make(map[string]messages.KV, min(fr.Count, snapshotPresize)), fr.Count
		f.snapCluster, f.snapRev, f.snapDigest, f.snapClaim = fr.ClusterID, fr.Revision, 0, fr.Digest
	case wire.TypeKVs:
		for _, kv := range fr.KVs {
			old, had := f.snap[kv.Key]
			f.snapDigest = f.snapDigest.Put(kv.Key, kv.Value, old.Value, had)
			f.snap[kv.Key] = messages.KV{Key: kv.Key, Value: kv.Value, ModifiedIndex: kv.Revision}
		}
	case wire.TypeSnapshotEnd:
		if err := f.snapshotEnd(fr); err != nil {
			if errors.Is(err, messages.ErrUpstreamReset) {
				// The marks the merge core holds are of another history:
				// only a reset (they are dropped) makes the host etcd's.
				return f.lose(err), err
			}
			return nil, err
		}
	case wire.TypeDelta:
		out = f.delta(fr)
	case wire.TypeStatus:
		var err error
		if out, err = f.statusFrame(fr); err != nil {
			return out, err
		}
	case wire.TypePing:
		return nil, nil
	case wire.TypeError:
		return nil, fmt.Errorf("relay refused: %s (field %q, retry after %ds): %s", fr.Code, fr.Field, fr.RetryAfter, fr.Message)
	}
	out = f.goLive(out)
	return f.serve(out, now)
}

// protocolError is a violation of the protocol by fr.
func protocolError(fr *wire.Frame, format string, args ...any) error {
	return fmt.Errorf("%w: %s frame: %s", ErrRelayProtocol, fr.Type, fmt.Sprintf(format, args...))
}

// snapshotEnd makes the snapshot received the view, once it holds what was
// announced and comes from the view's own history (else the error wraps
// messages.ErrUpstreamReset).
func (f *RelayFeed) snapshotEnd(fr *wire.Frame) error {
	if len(f.snap) != f.count { // the order counted entries; a key twice is short
		return protocolError(fr, "after %d keys, not the %d announced", len(f.snap), f.count)
	}
	if f.snapClaim != "" && f.snapClaim != f.snapDigest.String() {
		return protocolError(fr, "its keys' digest is %s, not the %s its snapshot-begin gave", f.snapDigest, f.snapClaim)
	}
	if err := f.sameHistory(); err != nil {
		return fmt.Errorf("%w: %w", messages.ErrUpstreamReset, err)
	}
	f.view, f.digest, f.snap = f.snap, f.snapDigest, nil
	f.status, _ = wire.ParseStatus(fr.Status) // Validate checked it
	// The snapshot's position, or none: the view is no longer the one
	// the last position stood for.
	f.cluster, f.rev = f.snapCluster, f.snapRev
	f.consistent = f.cluster != "" && f.rev > 0
	return nil
}

// delta applies a delta frame to the view and, live, holds its changes
// until a frame ends at a position.
func (f *RelayFeed) delta(fr *wire.Frame) []messages.MergeInput {
	for _, c := range fr.Changes {
		u, _ := c.Update() // check parsed it
		old, had := f.view[u.Key]
		if u.Type == messages.UpdateTypeDeleted {
			if had {
				f.digest = f.digest.Without(u.Key, old.Value)
			}
			delete(f.view, u.Key)
			if f.live {
				f.held = append(f.held, messages.WatcherDeletion{Key: u.Key, ModifiedIndex: u.Revision, More: true})
			}
			continue
		}
		kv := messages.KV{Key: u.Key, Value: u.Value, ModifiedIndex: u.Revision}
		f.digest = f.digest.Put(u.Key, u.Value, old.Value, had)
		f.view[u.Key] = kv
		if f.live {
			f.held = append(f.held, messages.WatcherUpdate{KV: kv, More: true})
		}
	}
	f.position(fr)
	out := f.release(nil)
	if len(f.held) > MaxHeldChanges {
		// A batch this long (or a relay that never gives a position) would
		// grow without bound: stop forwarding; the next position resyncs
		// from the view, which has them all.
		out = append(out, f.lose(fmt.Errorf("over %d changes with no position", MaxHeldChanges))...)
	}
	return out
}

// statusFrame takes the relay's status; a WaitForDatastore after another
// is the relay's datastore reset (the error wraps messages.ErrUpstreamReset).
func (f *RelayFeed) statusFrame(fr *wire.Frame) ([]messages.MergeInput, error) {
	st, _ := wire.ParseStatus(fr.Status)
	if st == messages.WaitForDatastore && f.status != 0 && f.status != messages.WaitForDatastore {
		// The relay's syncer was rebuilt against a reset or restored
		// etcd: revisions start over.
		out := f.lose(errors.New("the relay's datastore was reset"))
		return out, fmt.Errorf("%w: the relay reported %s after %s", messages.ErrUpstreamReset, st, f.status)
	}
	var out []messages.MergeInput
	f.status = st
	if st != messages.InSync {
		out = f.lose(fmt.Errorf("the relay reported %s", st))
	}
	f.position(fr)
	return f.release(out), nil
}

// check refuses, before anything of fr is applied, what no relay of ours
// sends: another prefix, a key outside it, and revisions that go back. A
// position never goes below the last one in its cluster (a snapshot may
// start lower: that is a relay behind, which serve judges). In sync at a
// position, the changes that follow it are etcd's later writes, so none is
// below it (one at it is taken: a relay whose syncer split an index
// across batches, as before syncers kept each index whole, sent a
// directory delete in several batches, each ending at a position at that
// index); and a frame's own position is its highest change.
func (f *RelayFeed) check(fr *wire.Frame, prefix string) error {
	switch fr.Type {
	case wire.TypeHello:
		if keyspace.Prefix(fr.Prefix) != keyspace.Prefix(prefix) {
			return fmt.Errorf("prefix %q, not ours (%q)", fr.Prefix, prefix)
		}
		if fr.Resume && !f.consistent {
			// We connected with no position (see Position): deltas on
			// a view of unknown state would follow.
			return errors.New("it resumes a stream that asked for a snapshot")
		}
	case wire.TypeKVs:
		for _, kv := range fr.KVs {
			if !keyspace.Contains(prefix, kv.Key) {
				return fmt.Errorf("key %q is not under %s", kv.Key, prefix)
			}
		}
	case wire.TypeDelta, wire.TypeStatus:
		positioned := fr.ClusterID != "" && fr.Revision != 0
		if positioned && fr.ClusterID == f.cluster && fr.Revision < f.rev {
			return fmt.Errorf("position %d, below the last one, %d", fr.Revision, f.rev)
		}
		for _, c := range fr.Changes {
			if _, err := c.Update(); err != nil {
				return err
			}
			switch {
			case !keyspace.Contains(prefix, c.Key):
				return fmt.Errorf("key %q is not under %s", c.Key, prefix)
			case f.consistent && f.status == messages.InSync && c.Revision < f.rev:
				return fmt.Errorf("key %q at revision %d, below the position %d", c.Key, c.Revision, f.rev)
			case positioned && c.Revision > fr.Revision:
				return fmt.Errorf("key %q at revision %d, after the frame's position %d", c.Key, c.Revision, fr.Revision)
			}
		}
		if positioned && fr.Digest != "" {
			// The relay's view at its position is not the one this frame
			// would leave: the view has gone astray, and resuming from
			// it would carry that on. Refused, so the position stays the
			// last one the relay and the feed agreed on.
			if after := f.digestAfter(fr.Changes); after.String() != fr.Digest {
				return fmt.Errorf("position %d with digest %s, but the view would be at %s", fr.Revision, fr.Digest, after)
			}
		}
	}
	return nil
}

// digestAfter returns the digest the view would have once changes are
// applied, in order, without applying them: check refuses a frame before
// any of it is applied. A frame may change one key twice.
func (f *RelayFeed) digestAfter(changes []wire.Change) wire.Digest {
	if f.pending == nil {
		f.pending = map[string]pendingValue{}
	}
	clear(f.pending)
	d := f.digest
	for _, c := range changes {
		prev, ok := f.pending[c.Key]
		if !ok {
			kv, had := f.view[c.Key]
			prev = pendingValue{value: kv.Value, present: had}
		}
		if prev.present {
			d = d.Without(c.Key, prev.value)
		}
		next := pendingValue{value: c.Value, present: c.Op != messages.UpdateTypeDeleted.String()}
		if next.present {
			d = d.With(c.Key, c.Value)
		}
		f.pending[c.Key] = next
	}
	return d
}

// sameHistory checks that the snapshot ending now can be a later state of
// the history the view came from, when both are of one cluster. In one
// history a key's value at a revision is one value, and a relay's snapshot
// at r2 holds each key at its latest revision up to r2; so a key the two
// share, at a revision the snapshot covers, with another value at a
// revision no higher than the view's, comes from another history. (A lower
// revision with the same value is one history: a v2 TTL refresh moves a
// key's modifiedIndex without telling watchers, so relays differ on it.)
// And at the view's own position, the snapshot must be the view: a key
// gone or added at the same revision is another history too (or, the one
// false alarm, a view at a position that ended inside one revision's
// directory deletion, where a reset costs a resync).
//
// Such a snapshot comes from etcd rebuilt with the same cluster ID: a relay
// sends a snapshot, not a resume, to a client whose digest its log lacks at
// the revision. The merge core's marks are of the old history, so its mark
// and sweep would keep a key of the new history at a revision at or below
// a mark, and never sweep a key whose mark is at or above the snapshot's
// revision: only a reset makes the host etcd's. (A view at no position,
// given a snapshot at or below its marks, would still keep the keys the
// old history alone had: the check needs a position to compare with.)
func (f *RelayFeed) sameHistory() error {
	if f.snapCluster == "" || f.snapCluster != f.cluster {
		return nil
	}
	if f.consistent && f.snapRev == f.rev && f.snapDigest != f.digest {
		return fmt.Errorf("the relay's snapshot at %d is another view (digest %s) than the one at the same position (%s): etcd was rebuilt with the same cluster ID",
			f.snapRev, f.snapDigest, f.digest)
	}
	for k, kv := range f.snap {
		old, ok := f.view[k]
		if ok && kv.Value != old.Value && kv.ModifiedIndex <= old.ModifiedIndex && old.ModifiedIndex <= f.snapRev {
			return fmt.Errorf("the relay's snapshot at %d has another value for %s at revision %d than the view had at %d: etcd was rebuilt with the same cluster ID",
				f.snapRev, k, kv.ModifiedIndex, old.ModifiedIndex)
		}
	}
	return nil
}

// Request takes the merge core's snapshot request at now, and serves it if
// the view is at a position that satisfies it.
func (f *RelayFeed) Request(req messages.SnapshotRequest, now time.Time) ([]messages.MergeInput, error) {
	f.want, f.behind, f.stale = &req, false, StaleCheck{Timeout: f.StaleTimeout}
	return f.serve(nil, now)
}

// Tick judges, at now, a request waiting for a relay that stays behind.
func (f *RelayFeed) Tick(now time.Time) ([]messages.MergeInput, error) { return f.serve(nil, now) }

// position takes fr's resume position, if it has one: the view is etcd's
// state at it. A frame without one leaves the view at no known state.
func (f *RelayFeed) position(fr *wire.Frame) {
	if fr.ClusterID != "" && fr.Revision != 0 {
		f.cluster, f.rev, f.consistent = fr.ClusterID, fr.Revision, true
		return
	}
	f.consistent = false
}

// release forwards the held changes once the view is at a position: the
// relay's state of etcd at a revision, so the last of them ends an index.
// Each one before it says More: only the relay's positions are known to be
// ends of an index (a batch the relay folded per key is in no revision
// order), so the merge core hands the host nothing short of one.
func (f *RelayFeed) release(out []messages.MergeInput) []messages.MergeInput {
	if !f.consistent || len(f.held) == 0 {
		return out
	}
	switch last := f.held[len(f.held)-1].(type) {
	case messages.WatcherUpdate:
		last.More = false
		f.held[len(f.held)-1] = last
	case messages.WatcherDeletion:
		last.More = false
		f.held[len(f.held)-1] = last
	}
	out = append(out, f.held...)
	f.held = nil
	return out
}

// goLive starts forwarding at a position where the relay is in sync.
func (f *RelayFeed) goLive(out []messages.MergeInput) []messages.MergeInput {
	if f.live || !f.order.Synced() || !f.consistent || f.status != messages.InSync {
		return out
	}
	f.live = true
	return append(out, messages.WatcherNeedsSnapshot{MinIndex: f.rev, Cause: "relay"})
}

// lose ends live forwarding.
func (f *RelayFeed) lose(why error) []messages.MergeInput {
	f.held = nil // the resync that follows brings them
	if !f.live {
		return nil
	}
	f.live = false
	return []messages.MergeInput{messages.WatcherLostSync{Err: fmt.Errorf("%w: %w", messages.ErrLostSync, why)}}
}

// serve sends the view as the requested snapshot, if the feed is live at a
// position that satisfies the request.
func (f *RelayFeed) serve(out []messages.MergeInput, now time.Time) ([]messages.MergeInput, error) {
	if f.want == nil || !f.live || !f.order.Synced() || !f.consistent {
		return out, nil
	}
	if f.rev < f.want.MinIndex {
		// A relay behind what we have applied (another relay was
		// ahead), or one whose etcd went back in time.
		f.behind = true
		if err := f.stale.Observe(now, f.cluster, f.rev, f.want.MinIndex); err != nil {
			return out, fmt.Errorf("relay in sync at %d: %w", f.rev, err)
		}
		return out, nil
	}
	f.want, f.behind = nil, false
	keys := slices.Sorted(maps.Keys(f.view)) // sorted: a schedule replays exactly
	for chunk := range slices.Chunk(keys, f.BatchSize) {
		b := messages.SnapshotBatch{Index: f.rev, KVs: make([]messages.KV, len(chunk))}
		for i, k := range chunk {
			b.KVs[i] = f.view[k]
		}
		out = append(out, b)
	}
	return append(out, messages.SnapshotFinished{Index: f.rev}), nil
}
