package actors_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
)

// history is a toy etcd key space: every write gets the next index, and
// the state at any index can be read back, as a lagging follower would serve
// it. A v2 one has directories; a flat one is v3's, where a key may also
// have keys below it, and a range delete is one revision for several keys.
type history struct {
	flat   bool
	states []map[string]m.KV // states[i] is the key space at index i
	events [][]m.MergeInput  // events[i-1] are the watch events of index i
}

func newHistory(flat bool) *history {
	return &history{flat: flat, states: []map[string]m.KV{{}}}
}

func (h *history) head() uint64 { return uint64(len(h.states) - 1) }

func (h *history) write(r *rand.Rand) {
	idx := h.head() + 1
	next := maps.Clone(h.states[idx-1])
	dirs := []string{"/a", "/b", "/a/x", "/b/y"}
	dir := dirs[r.IntN(len(dirs))]
	switch r.IntN(10) {
	case 0: // directory delete; in v3, a range delete of the keys under dir
		var evs []m.MergeInput
		if !h.flat {
			evs = append(evs, m.WatcherDeletion{Key: dir, ModifiedIndex: idx})
		}
		for _, k := range slices.Sorted(maps.Keys(next)) {
			if strings.HasPrefix(k, dir+"/") {
				delete(next, k)
				if h.flat {
					evs = append(evs, m.WatcherDeletion{Key: k, ModifiedIndex: idx})
				}
			}
		}
		h.events = append(h.events, evs)
	case 1, 2: // key delete (of a key that may not exist: etcd would refuse it, so pick one that does)
		keys := slices.Sorted(maps.Keys(next))
		if len(keys) == 0 {
			h.events = append(h.events, nil) // a write outside the prefix: the index moves, nothing is seen
			break
		}
		k := keys[r.IntN(len(keys))]
		delete(next, k)
		h.events = append(h.events, []m.MergeInput{m.WatcherDeletion{Key: k, ModifiedIndex: idx}})
	case 3:
		h.events = append(h.events, nil)
	default:
		k := fmt.Sprintf("%s/k%d", dir, r.IntN(4))
		if h.flat && r.IntN(4) == 0 {
			k = dir // v3: a key with keys below it
		}
		kv := m.KV{Key: k, Value: strconv.FormatUint(idx, 10), ModifiedIndex: idx}
		next[k] = kv
		h.events = append(h.events, []m.MergeInput{m.WatcherUpdate{KV: kv}})
	}
	h.states = append(h.states, next)
}

func (h *history) view(idx uint64) map[string]string {
	out := map[string]string{}
	for k, kv := range h.states[idx] {
		out[k] = kv.Value
	}
	return out
}

// runSchedule drives a Merge with a random interleaving of writes, watch
// deliveries, lost syncs and snapshot batches from lagging reads, then lets
// everything drain and checks the invariant (ARCHITECTURE.md).
func runSchedule(t *testing.T, seed uint64, flat bool) {
	r := rand.New(rand.NewPCG(seed, 0))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, flat %v (ETCDSYNC_MERGE_SEED=%d reproduces): %s", seed, flat, seed, fmt.Sprintf(format, args...))
	}
	etcd := newHistory(flat)
	merge := actors.NewMergeCore()
	if flat {
		merge = actors.NewFlatMergeCore()
	}
	view := map[string]string{}
	revs := map[string]uint64{}
	var status m.SyncStatus
	take := func(out actors.Output) []uint64 {
		for _, u := range out.Updates {
			_, had := view[u.Key]
			switch {
			case u.Type == m.UpdateTypeNew && had, u.Type != m.UpdateTypeNew && !had:
				fail("%v, host has key: %v", u, had)
			case u.Revision < revs[u.Key]:
				fail("%v goes below revision %d", u, revs[u.Key])
			}
			revs[u.Key] = u.Revision
			if u.Type == m.UpdateTypeDeleted {
				delete(view, u.Key)
			} else {
				view[u.Key] = u.Value
			}
		}
		if out.Status != 0 {
			status = out.Status
		}
		if out.Snapshot != nil {
			return []uint64{out.Snapshot.MinIndex}
		}
		return nil
	}
	step := func(in m.MergeInput) []uint64 {
		if os.Getenv("ETCDSYNC_MERGE_TRACE") != "" {
			t.Logf("step %v", in)
		}
		return take(merge.Step(in))
	}
	take(merge.Start())

	for range r.IntN(20) {
		etcd.write(r)
	}
	watchNext := etcd.head() + 1
	var pending []uint64       // snapshot requests not yet served
	var reading []m.MergeInput // the rest of the snapshot being delivered
	pending = append(pending, step(m.WatcherNeedsSnapshot{MinIndex: etcd.head(), Cause: "start"})...)
	watcherDown := false
	// restartWatcher restarts the watch at the current head, as the watcher
	// does after a failure.
	restartWatcher := func() {
		watcherDown = false
		watchNext = etcd.head() + 1
		pending = append(pending, step(m.WatcherNeedsSnapshot{MinIndex: etcd.head(), Cause: "watcher-restart"})...)
	}

	for round := 0; round < 300; round++ {
		quiet := round >= 200 // no more writes or faults: let it drain
		switch c := r.IntN(10); {
		case c < 3 && !quiet:
			etcd.write(r)
		case c < 6 && !watcherDown && watchNext <= etcd.head():
			for _, ev := range etcd.events[watchNext-1] {
				pending = append(pending, step(ev)...)
			}
			watchNext++
		case c == 6 && !quiet && !watcherDown && r.IntN(4) == 0:
			// Lost sync: the watcher fails; events are missed until it
			// is restarted.
			watcherDown = true
			pending = append(pending, step(m.WatcherLostSync{})...)
		case c == 6 && watcherDown:
			restartWatcher()
		case c == 6 && !quiet && r.IntN(40) == 0:
			// The cluster is rebuilt: a new index space and new content.
			// The supervisor stops the watcher and the reader (their
			// work is dropped) and resets the merge.
			etcd = newHistory(flat)
			for range 1 + r.IntN(15) {
				etcd.write(r)
			}
			watchNext, pending, reading, watcherDown = etcd.head()+1, nil, nil, false
			clear(revs) // revisions only rise within one cluster
			merge.ResetCluster()
			take(merge.Start())
			pending = append(pending, step(m.WatcherNeedsSnapshot{MinIndex: etcd.head(), Cause: "start"})...)
		case c >= 7 && len(reading) > 0:
			pending = append(pending, step(reading[0])...)
			reading = reading[1:]
		case c >= 7 && len(pending) > 0:
			// Read at some index between the request and the head, as
			// a follower at least as new as requested would serve it.
			lo := pending[0]
			pending = pending[1:]
			if lo > etcd.head() {
				fail("snapshot requested at %d beyond head %d", lo, etcd.head())
			}
			at := lo + uint64(r.IntN(int(etcd.head()-lo)+1))
			kvs := slices.SortedFunc(maps.Values(etcd.states[at]), func(a, b m.KV) int { return strings.Compare(a.Key, b.Key) })
			r.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
			for len(kvs) > 0 {
				n := min(len(kvs), 1+r.IntN(3))
				reading = append(reading, m.SnapshotBatch{Index: at, KVs: kvs[:n]})
				kvs = kvs[n:]
			}
			reading = append(reading, m.SnapshotFinished{Index: at})
		}
	}
	// Drain: the watch to the head, then any snapshot in flight.
	if watcherDown {
		restartWatcher()
	}
	for watchNext <= etcd.head() || len(reading) > 0 || len(pending) > 0 {
		switch {
		case watchNext <= etcd.head():
			for _, ev := range etcd.events[watchNext-1] {
				pending = append(pending, step(ev)...)
			}
			watchNext++
		case len(reading) > 0:
			pending = append(pending, step(reading[0])...)
			reading = reading[1:]
		default:
			lo := pending[0]
			pending = pending[1:]
			reading = append(reading, m.SnapshotBatch{Index: lo, KVs: slices.Collect(maps.Values(etcd.states[lo]))})
			reading = append(reading, m.SnapshotFinished{Index: lo})
		}
	}
	if status != m.InSync {
		fail("status %v after draining", status)
	}
	if want := etcd.view(etcd.head()); !maps.Equal(view, want) {
		fail("in-sync view\n%v\ndiffers from etcd\n%v", view, want)
	}
	if merge.Keys() != len(view) {
		fail("merge counts %d keys, host has %d", merge.Keys(), len(view))
	}
}

// TestMergeRandomSchedules checks the invariant over many seeded schedules.
// ETCDSYNC_MERGE_SEED replays one (ETCDSYNC_MERGE_TRACE=1 logs its inputs);
// ETCDSYNC_MERGE_SCHEDULES sets how many.
func TestMergeRandomSchedules(t *testing.T) {
	if s := os.Getenv("ETCDSYNC_MERGE_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ETCDSYNC_MERGE_SEED=%q: %v", s, err)
		}
		runSchedule(t, seed, false)
		runSchedule(t, seed, true)
		return
	}
	n := 2000
	if s := os.Getenv("ETCDSYNC_MERGE_SCHEDULES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("ETCDSYNC_MERGE_SCHEDULES=%q: %v", s, err)
		}
	}
	base := rand.Uint64()
	for i := range uint64(n) {
		runSchedule(t, base+i, false)
		runSchedule(t, base+i, true) // v3's flat keys
	}
}
