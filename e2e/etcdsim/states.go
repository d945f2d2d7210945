package etcdsim

import (
	"fmt"
	"maps"
	"strings"
)

// mutation is one change of one visible key's value, at an index: what
// StateAt replays.
type mutation struct {
	index   uint64
	key     string
	value   string
	deleted bool
}

// states is the log of every visible change since a base state, so that
// the key/value set at any index since can be rebuilt. A directory's
// deletion or expiry, and a directory set over a file, are one mutation per
// key they remove, all at the event's index. Only the leader's store keeps
// one; a follower's copy and a backup have none.
type states struct {
	baseIndex uint64            // the index the base state is at
	base      map[string]string // visible keys at baseIndex
	log       []mutation        // in index order
	cur       map[string]string // base with log applied: the head
}

// newStates starts a log at st's present visible state.
func newStates(st *store) *states {
	cur := map[string]string{}
	st.leaves("/", func(k, v string) { cur[k] = v })
	return &states{baseIndex: st.index, base: maps.Clone(cur), cur: cur}
}

// visible reports whether key and every directory above it are visible
// (no name starts with "_"), as a GET of the root lists them.
func visible(key string) bool {
	return !strings.Contains(key, "/_")
}

// record takes the visible changes event e made below (and at) its key.
// Called after the store applied e.
func (m *states) record(st *store, e *event) {
	key := e.node.Key
	now := map[string]string{}
	if visible(key) {
		st.leaves(key, func(k, v string) { now[k] = v })
	}
	gone := func(k string) {
		if _, ok := now[k]; !ok {
			m.log = append(m.log, mutation{index: e.index(), key: k, deleted: true})
			delete(m.cur, k)
		}
	}
	if !e.node.Dir && (e.prev == nil || !e.prev.Dir) {
		// A file's event changes that file only: no scan of every key,
		// which made loading 10^6 keys quadratic.
		if _, ok := m.cur[key]; ok {
			gone(key)
		}
	} else {
		for k := range m.cur {
			if k == key || strings.HasPrefix(k, key+"/") {
				gone(k)
			}
		}
	}
	for k, v := range now { // new or changed
		if old, ok := m.cur[k]; !ok || old != v {
			m.log = append(m.log, mutation{index: e.index(), key: k, value: v})
			m.cur[k] = v
		}
	}
}

// StateAt returns the visible keys below prefix (or prefix itself, if it is
// a key) and their values as they were once every event at or below index
// had been applied: what Map(prefix) returned then. It covers the indexes
// since the store began: its creation, the last Reset or the last Restore
// (a restore takes the index back, so the history before it is another
// one's). An index outside that span is an error.
func (s *Server) StateAt(prefix string, index uint64) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.states
	if index < m.baseIndex || index > s.st.index {
		return nil, fmt.Errorf("etcdsim: no state at index %d: the log holds %d to %d", index, m.baseIndex, s.st.index)
	}
	prefix = cleanKey(prefix)
	under := func(k string) bool {
		return prefix == "/" || k == prefix || strings.HasPrefix(k, prefix+"/")
	}
	out := map[string]string{}
	for k, v := range m.base {
		if under(k) {
			out[k] = v
		}
	}
	for _, mu := range m.log {
		if mu.index > index {
			break
		}
		if !under(mu.key) {
			continue
		}
		if mu.deleted {
			delete(out, mu.key)
		} else {
			out[mu.key] = mu.value
		}
	}
	return out, nil
}
