package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/etcdsync/etcdsync/messages"
)

// V2 is what the Host reads v2 through besides the syncer: values with
// their TTLs. *V2Reader implements it.
type V2 interface {
	Snapshot(ctx context.Context, prefix string) (V2Snapshot, error)
	Key(ctx context.Context, key string) (V2Key, bool, error)
}

// V3 is the target as the Host uses it. *Target implements it.
type V3 interface {
	ReadAll(ctx context.Context) (map[string]Entry, int64, error)
	ReadKeys(ctx context.Context, keys []string) (map[string]Entry, error)
	Apply(ctx context.Context, ops []Op) (Result, error)
}

var (
	_ V2 = (*V2Reader)(nil)
	_ V3 = (*Target)(nil)
)

// Defaults of the Host's zero fields.
const (
	// DefaultBulkAt: from this many changed keys on, a flush reads the whole
	// prefix from both sides rather than key by key.
	DefaultBulkAt = 256
	// DefaultChunk is how many ops a flush applies between progress checks.
	DefaultChunk = 4096
	// DefaultProgressEvery is the least time between progress log lines.
	DefaultProgressEvery = 2 * time.Second
)

// Host is the syncer's host for a migration: it keeps the syncer's view of
// the v2 prefix and the keys that changed in it, and Run writes them into
// v3.
//
// Whenever the syncer reports InSync after a (re)sync, the next flush is
// full: it reads the whole prefix from v2 (for the TTLs) and from v3, and
// makes v3 equal to the view, deleting what v3 has and the view lacks.
// Later flushes handle the keys that changed since, reading each from v2
// and v3. A key is written only with a value the view and v2 agree on (the
// same value): when v2 has moved on to another value, the syncer's update
// for it is on its way, and the key is written then. With ReconcileEvery,
// the whole prefix is compared again now and then while in sync.
//
// The Host assumes it is the only writer of v3 under the prefix while it
// runs: a write by another after its full read is undone only by the next
// ReconcileEvery (or, with --once, by the final verification).
//
// The callbacks are called by the syncer one at a time; Run must be called
// once, from one goroutine; Stats and Ready may be called from any.
type Host struct {
	Prefix string
	V2     V2
	V3     V3
	Logger *slog.Logger
	// BulkAt, Chunk, ProgressEvery: zero takes the defaults above.
	BulkAt        int
	Chunk         int
	ProgressEvery time.Duration
	// Now is the clock of progress rates; default time.Now.
	Now func() time.Time
	// RetryDelay is the pause after a flush that failed transiently or left
	// keys for a later update; default 100 ms, doubling to 5 s while it
	// recurs.
	RetryDelay time.Duration
	// ReconcileEvery is how often, while in sync, a flush compares the whole
	// prefix again (0: never). v2 does not tell watchers of a TTL refresh
	// (a PUT with refresh=true), so without it a refreshed key would keep
	// its old lease in v3 and vanish there first.
	ReconcileEvery time.Duration

	mu       sync.Mutex
	view     map[string]viewKey
	dirty    map[string]struct{}
	full     bool // the next flush is full
	status   messages.SyncStatus
	received uint64 // highest index the view holds (the InSync index, or an update's)
	stats    Stats
	written  map[string]struct{}
	wake     chan struct{}
	settled  chan struct{} // closed, and replaced, whenever Ready turns true
	copied   chan struct{} // closed once a full flush has succeeded

	// Run's goroutine only:
	emptyDirs int         // how many empty directories were last reported
	pre       <-chan both // a read of both sides begun while the syncer read its snapshot
	preResets int         // stats.Resets when pre began: a read of another cluster is no use
}

type viewKey struct {
	value string
	rev   uint64
}

// Stats are the Host's counters.
type Stats struct {
	Written, Deleted, Unchanged uint64 // keys, since start
	Txns                        uint64
	Applied                     uint64 // v2 index whose changes are all in v3
	Pending                     int    // changed keys not yet in v3
	Resets                      int    // times the syncer went back to WaitForDatastore after data
	Ready                       bool
	Err                         string // the last flush's error; "" after a good one
}

func (h *Host) init() {
	if h.view == nil {
		h.view = map[string]viewKey{}
		h.dirty = map[string]struct{}{}
		h.written = map[string]struct{}{}
		h.wake = make(chan struct{}, 1)
		h.settled = make(chan struct{})
		h.copied = make(chan struct{})
		h.status = messages.WaitForDatastore
	}
}

// NewHost returns a Host with its state made; set its fields before Run.
func NewHost() *Host {
	h := &Host{}
	h.init()
	return h
}

// OnStatusUpdated implements messages.Callbacks; the syncer calls
// OnStatusAt instead.
func (h *Host) OnStatusUpdated(s messages.SyncStatus) { h.OnStatusAt(s, 0) }

// OnStatusAt implements messages.StatusAtCallback.
func (h *Host) OnStatusAt(s messages.SyncStatus, index uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == messages.WaitForDatastore && h.status != messages.WaitForDatastore && len(h.view) > 0 {
		// A new or restored v2 cluster: its indexes start over. The
		// syncer's resync will send every key it has and delete the rest.
		h.stats.Resets++
		h.logger().Warn("etcd v2 was rebuilt or restored; the syncer resyncs (--on-cluster-reset resync): "+
			"v3 will be made equal to the new v2, and keys it lacks deleted from v3", "prefix", h.Prefix)
		h.received, h.stats.Applied = 0, 0
	}
	if s != messages.InSync {
		h.full = true
	} else {
		h.received = max(h.received, index)
	}
	h.status = s
	h.poke()
}

// OnUpdates implements messages.Callbacks.
func (h *Host) OnUpdates(us []messages.Update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range us {
		if u.Type == messages.UpdateTypeDeleted {
			delete(h.view, u.Key)
		} else {
			h.view[u.Key] = viewKey{u.Value, u.Revision}
		}
		h.dirty[u.Key] = struct{}{}
		h.received = max(h.received, u.Revision)
	}
	h.poke()
}

var _ messages.StatusAtCallback = (*Host)(nil)
var _ messages.Callbacks = (*Host)(nil)

func (h *Host) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (h *Host) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Pending = len(h.dirty) + s.Pending
	s.Ready = h.readyLocked()
	return s
}

// Ready reports whether v3 equals the view: the syncer is in sync, and
// every change it delivered is written.
func (h *Host) Ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.readyLocked()
}

func (h *Host) readyLocked() bool {
	return h.status == messages.InSync && !h.full && len(h.dirty) == 0 && h.stats.Pending == 0 && h.stats.Err == ""
}

// Settled returns a channel closed the next time Ready turns true (at once
// if it is true).
func (h *Host) Settled() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readyLocked() {
		c := make(chan struct{})
		close(c)
		return c
	}
	return h.settled
}

// Copied returns a channel closed once the first full flush has made v3
// equal to the syncer's first in-sync view (but for keys v2 had already
// changed again).
func (h *Host) Copied() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.copied
}

// Written returns the keys the Host has put into v3 since it started.
func (h *Host) Written() map[string]struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(map[string]struct{}, len(h.written))
	for k := range h.written {
		c[k] = struct{}{}
	}
	return c
}

// Run writes the view into v3 until ctx is done, returning ctx's error, or
// until a write is refused or cannot fit (ErrTargetRefused, ErrOpTooLarge),
// returning that. Other failures are logged and retried.
func (h *Host) Run(ctx context.Context) error {
	h.mu.Lock()
	h.init()
	h.mu.Unlock()
	retry := h.retryDelay()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var reconcile <-chan time.Time
	if h.ReconcileEvery > 0 {
		t := time.NewTicker(h.ReconcileEvery)
		defer t.Stop()
		reconcile = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.wake:
		case <-timer.C:
		case <-reconcile:
			h.mu.Lock()
			if h.status == messages.InSync {
				h.full = true
			}
			h.mu.Unlock()
		}
		h.prefetch(ctx)
		again, err := h.flush(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrTargetRefused), errors.Is(err, ErrOpTooLarge):
			return err
		default:
			h.logger().Warn("writing to etcd v3 failed; retrying", "err", err, "retryIn", retry)
		}
		if !again && err == nil {
			retry = h.retryDelay()
			continue
		}
		timer.Reset(retry)
		retry = min(2*retry, 5*time.Second)
	}
}

func (h *Host) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// prefetch begins the next full flush's read of both sides while the
// syncer reads its snapshot, so that the two reads of v2 overlap. The read
// may predate the view: values are compared before anything is written,
// and a key whose value differs waits for its update.
func (h *Host) prefetch(ctx context.Context) {
	h.mu.Lock()
	begin := h.pre == nil && h.full && h.status == messages.Resync
	resets := h.stats.Resets
	h.mu.Unlock()
	if !begin {
		return
	}
	ch := make(chan both, 1)
	h.pre, h.preResets = ch, resets
	go func() { ch <- readBoth(ctx, h.V2, h.V3, h.Prefix) }()
}

// fullRead returns the prefetched read of both sides if there is one of
// this cluster, else reads them now.
func (h *Host) fullRead(ctx context.Context) both {
	if pre := h.pre; pre != nil {
		h.pre = nil
		h.mu.Lock()
		same := h.stats.Resets == h.preResets
		h.mu.Unlock()
		select {
		case read := <-pre:
			if same && read.v2Err == nil && read.v3Err == nil {
				return read
			}
		case <-ctx.Done():
		}
	}
	return readBoth(ctx, h.V2, h.V3, h.Prefix)
}

func (h *Host) retryDelay() time.Duration {
	if h.RetryDelay > 0 {
		return h.RetryDelay
	}
	return 100 * time.Millisecond
}

// flush writes what changed, if the view is in sync. again says that keys
// were left for a later try.
func (h *Host) flush(ctx context.Context) (again bool, err error) {
	h.mu.Lock()
	if h.status != messages.InSync || (!h.full && len(h.dirty) == 0) {
		h.mu.Unlock()
		return false, nil
	}
	full, index := h.full, h.received
	keys := make([]string, 0, len(h.dirty))
	for k := range h.dirty {
		keys = append(keys, k)
	}
	view := map[string]viewKey{}
	if full {
		view = make(map[string]viewKey, len(h.view))
		for k, v := range h.view {
			view[k] = v
		}
	} else {
		for _, k := range keys {
			if v, ok := h.view[k]; ok {
				view[k] = v
			}
		}
	}
	h.full, h.dirty = false, map[string]struct{}{}
	h.stats.Pending = len(keys)
	h.mu.Unlock()

	left, err := h.write(ctx, full, keys, view)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.Pending = 0
	if err != nil {
		// Nothing is lost: all of it is tried again.
		h.full = h.full || full
		for _, k := range keys {
			h.dirty[k] = struct{}{}
		}
		h.stats.Err = err.Error()
		return false, err
	}
	h.stats.Err = ""
	for _, k := range left {
		h.dirty[k] = struct{}{}
	}
	if full {
		select {
		case <-h.copied:
		default:
			close(h.copied)
		}
	}
	if len(h.dirty) == 0 && !h.full {
		h.stats.Applied = max(h.stats.Applied, index)
	}
	if h.readyLocked() {
		close(h.settled)
		h.settled = make(chan struct{})
	}
	return len(left) > 0, nil
}

// write makes v3 equal to view for keys (for every key, if full). It
// returns the keys it left because v2 has moved on from the view.
func (h *Host) write(ctx context.Context, full bool, keys []string, view map[string]viewKey) (left []string, err error) {
	bulk := full || len(keys) >= h.bulkAt()
	var v2 map[string]V2Key
	var have map[string]Entry
	if bulk {
		var read both
		if full {
			read = h.fullRead(ctx)
		} else {
			read = readBoth(ctx, h.V2, h.V3, h.Prefix)
		}
		snap, err := read.v2, read.v2Err
		if errors.Is(err, ErrPrefixMissing) {
			// Deleted, or a rebuilt v2 without it: v2 holds nothing there.
			snap, err = V2Snapshot{Keys: map[string]V2Key{}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the TTLs of %s from etcd v2: %w", h.Prefix, err)
		}
		v2 = snap.Keys
		if full && len(snap.EmptyDirs) > 0 && len(snap.EmptyDirs) != h.emptyDirs {
			h.emptyDirs = len(snap.EmptyDirs)
			h.logger().Warn("empty v2 directories have no v3 form and are not copied",
				"count", len(snap.EmptyDirs), "dirs", snap.EmptyDirs[:min(len(snap.EmptyDirs), 10)])
		}
		if have, err = read.v3, read.v3Err; err != nil {
			return nil, err
		}
		if !full {
			have = only(have, keys)
		}
	} else {
		v2 = make(map[string]V2Key, len(keys))
		for _, k := range keys {
			if _, ok := view[k]; !ok {
				continue // deleted: its TTL does not matter
			}
			v, found, err := h.V2.Key(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("reading the TTL of %s from etcd v2: %w", k, err)
			}
			if found {
				v2[k] = v
			}
		}
		if have, err = h.V3.ReadKeys(ctx, keys); err != nil {
			return nil, err
		}
	}

	want := make(map[string]Entry, len(view))
	for k, v := range view {
		cur, ok := v2[k]
		if !ok || cur.Value != v.value {
			left = append(left, k) // v2 moved on: its update is coming
			continue
		}
		// The same value at a later modifiedIndex: a TTL refresh, which v2
		// does not always tell watchers of; v2's expiry is the current one.
		want[k] = cur.Entry
	}
	// A v3 key the view lacks is deleted even if the v2 read has it: the
	// read may be older than the view (a prefetch), and a key new in v2
	// since the view comes back with its update.
	for _, k := range left {
		delete(have, k)
	}
	ops, unchanged := Diff(want, have)
	h.mu.Lock()
	h.stats.Unchanged += uint64(unchanged)
	h.mu.Unlock()
	return left, h.apply(ctx, ops)
}

// only returns the entries of have whose keys are in keys.
func only(have map[string]Entry, keys []string) map[string]Entry {
	m := make(map[string]Entry, len(keys))
	for _, k := range keys {
		if e, ok := have[k]; ok {
			m[k] = e
		}
	}
	return m
}

// apply writes ops chunk by chunk, counting and logging progress.
func (h *Host) apply(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	now := h.now
	start, last := now(), now()
	done := 0
	chunk := h.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	every := h.ProgressEvery
	if every <= 0 {
		every = DefaultProgressEvery
	}
	for c := range slices.Chunk(ops, chunk) {
		res, err := h.V3.Apply(ctx, c)
		h.mu.Lock()
		h.stats.Written += uint64(res.Put)
		h.stats.Deleted += uint64(res.Deleted)
		h.stats.Txns += uint64(res.Txns)
		for _, k := range res.PutKeys {
			h.written[k] = struct{}{}
		}
		h.mu.Unlock()
		if err != nil {
			return err
		}
		done += len(c)
		if t := now(); t.Sub(last) >= every && done < len(ops) {
			last = t
			h.logger().Info("migrate progress", "done", done, "of", len(ops),
				"keysPerSecond", rate(done, t.Sub(start)))
		}
	}
	if len(ops) >= chunk {
		h.logger().Info("migrate progress", "done", len(ops), "of", len(ops),
			"keysPerSecond", rate(len(ops), now().Sub(start)))
	}
	return nil
}

func rate(n int, d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(float64(n) / d.Seconds())
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) bulkAt() int {
	if h.BulkAt > 0 {
		return h.BulkAt
	}
	return DefaultBulkAt
}
