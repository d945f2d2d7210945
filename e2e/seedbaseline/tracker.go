package seedbaseline

import "github.com/tchap/go-patricia/v2/patricia"

// Tracker is the seed's high-water-mark tracker: a byte-wise patricia trie
// keyed by the key plus a trailing "/" (so that "/foo" is not a prefix of
// "/foobar"), each mark stored boxed in an interface, and a second trie for
// deletions while they are tracked.
type Tracker struct {
	marks   *patricia.Trie
	dels    *patricia.Trie
	delsMax uint64
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{marks: patricia.NewTrie()}
}

// StartTrackingDeletions starts a fresh deletion trie.
func (t *Tracker) StartTrackingDeletions() {
	t.dels, t.delsMax = patricia.NewTrie(), 0
}

// StopTrackingDeletions drops the deletion trie.
func (t *Tracker) StopTrackingDeletions() {
	t.dels, t.delsMax = nil, 0
}

// StoreUpdate raises key's mark, unless a deeper tracked deletion is newer.
func (t *Tracker) StoreUpdate(key string, idx uint64) (old uint64) {
	p := prefixOf(key)
	if t.dels != nil && idx < t.delsMax {
		var deepest patricia.Prefix
		var del patricia.Item
		_ = t.dels.VisitPrefixes(p, func(q patricia.Prefix, item patricia.Item) error {
			if len(q) > len(deepest) {
				deepest, del = q, item
			}
			return nil
		})
		if del != nil && idx < del.(uint64) {
			return del.(uint64)
		}
	}
	if item := t.marks.Get(p); item != nil {
		old = item.(uint64)
	}
	if old < idx {
		t.marks.Set(p, idx)
	}
	return old
}

// StoreDeletion removes key's subtree below idx.
func (t *Tracker) StoreDeletion(key string, idx uint64) []string {
	t.delsMax = max(t.delsMax, idx)
	p := prefixOf(key)
	if t.dels != nil {
		for _, k := range olderUnder(t.dels, p, idx) {
			t.dels.Delete(prefixOf(k))
		}
		if item := t.dels.Get(p); item == nil || item.(uint64) < idx {
			t.dels.Set(p, idx)
		}
	}
	deleted := olderUnder(t.marks, p, idx)
	for _, k := range deleted {
		t.marks.Delete(prefixOf(k))
	}
	return deleted
}

// DeleteOldKeys removes every key below limit.
func (t *Tracker) DeleteOldKeys(limit uint64) []string {
	if t.dels != nil {
		panic("seedbaseline: DeleteOldKeys while tracking deletions")
	}
	var gone []patricia.Prefix
	deleted := make([]string, 0)
	_ = t.marks.Visit(func(p patricia.Prefix, item patricia.Item) error {
		if item.(uint64) < limit {
			p = append(patricia.Prefix(nil), p...)
			gone = append(gone, p)
			deleted = append(deleted, keyOf(p))
		}
		return nil
	})
	for _, p := range gone {
		t.marks.Delete(p)
	}
	return deleted
}

func olderUnder(trie *patricia.Trie, p patricia.Prefix, idx uint64) []string {
	out := make([]string, 0, 1)
	_ = trie.VisitSubtree(p, func(q patricia.Prefix, item patricia.Item) error {
		if item.(uint64) < idx {
			out = append(out, keyOf(q))
		}
		return nil
	})
	return out
}

func prefixOf(key string) patricia.Prefix {
	if key[len(key)-1] != '/' {
		key += "/"
	}
	return patricia.Prefix(key)
}

func keyOf(p patricia.Prefix) string { return string(p[:len(p)-1]) }
