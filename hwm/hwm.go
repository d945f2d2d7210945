package hwm

import (
	"path"
	"slices"
	"strings"
)

// Tracker records the high-water mark of every key. The zero value is not
// usable; call New.
type Tracker struct {
	marks tree
	// dels holds the deletions seen since StartTrackingDeletions, nil when
	// not tracking. delMax is the highest of them: an update at or above it
	// cannot be refused, which spares most updates the lookup.
	dels   *tree
	delMax uint64
}

// New returns an empty Tracker that is not tracking deletions.
func New() *Tracker {
	return &Tracker{}
}

// StoreUpdate records that key was seen at index modIdx and returns the mark
// the key had before (0 if it had none). The mark only ever rises: an update
// at or below the current mark changes nothing.
//
// While deletions are tracked, an update below a tracked deletion of the key
// or of any directory above it is refused: nothing is stored, and the index of
// the newest such deletion is returned in place of the old mark. Since that
// index is above modIdx, a caller that emits only when the returned index is
// below the event's own index suppresses the stale value.
func (t *Tracker) StoreUpdate(key string, modIdx uint64) (oldModIdx uint64) {
	key = normalise(key)
	if t.dels != nil && modIdx < t.delMax {
		if d := t.dels.maxOnPath(key); modIdx < d {
			return d
		}
	}
	if modIdx == 0 {
		return t.marks.get(key) // index 0 records nothing
	}
	return t.marks.set(key, modIdx)
}

// StoreDeletion records that key, a leaf or a directory, was deleted at index
// modIdx. It removes key and every key below it whose mark is below modIdx
// and returns the removed keys, sorted, as a non-nil slice (empty when
// nothing was removed). While deletions are tracked the deletion is also
// remembered, so that older updates of anything under key are refused.
func (t *Tracker) StoreDeletion(key string, modIdx uint64) (deletedKeys []string) {
	key = normalise(key)
	if t.dels != nil && modIdx != 0 {
		// Deletions under key that are older than this one can no longer
		// decide anything: this one refuses everything they refused.
		t.dels.sweepUnder(key, modIdx, nil)
		t.dels.set(key, modIdx)
		t.delMax = max(t.delMax, modIdx)
	}
	deletedKeys = t.marks.sweepUnder(key, modIdx, make([]string, 0, 1))
	slices.Sort(deletedKeys)
	return deletedKeys
}

// StartTrackingDeletions starts remembering deletions, forgetting any that
// an earlier tracking period remembered. A merger calls it when it starts
// reading a snapshot.
func (t *Tracker) StartTrackingDeletions() {
	t.dels = &tree{}
	t.delMax = 0
}

// StopTrackingDeletions forgets the tracked deletions and stops tracking.
func (t *Tracker) StopTrackingDeletions() {
	t.dels = nil
	t.delMax = 0
}

// DeleteOldKeys removes every key whose mark is below limit and returns the
// removed keys, sorted, as a non-nil slice. After a snapshot at index limit has
// refreshed every key it holds, these are the keys it did not hold.
//
// It panics if deletions are being tracked: the sweep is only meaningful once
// a snapshot is complete, and tracking ends when it completes.
func (t *Tracker) DeleteOldKeys(limit uint64) (deletedKeys []string) {
	if t.dels != nil {
		panic("hwm: DeleteOldKeys called while tracking deletions; call StopTrackingDeletions first")
	}
	_, deletedKeys = t.marks.sweep(&t.marks.root, limit, make([]string, 0))
	slices.Sort(deletedKeys)
	return deletedKeys
}

// ToMap returns a copy of every key and its mark.
func (t *Tracker) ToMap() map[string]uint64 {
	m := make(map[string]uint64, t.marks.n)
	t.marks.root.walk(func(n *node) { m[n.key()] = n.mark })
	return m
}

// Len returns the number of keys with a mark.
func (t *Tracker) Len() int {
	return t.marks.n
}

// normalise returns key as etcd v2 stores it: path.Clean of key joined to
// "/". Keys that are already clean, as every key etcd returns is, are
// returned as they are, without allocating.
func normalise(key string) string {
	if isClean(key) {
		return key
	}
	return path.Clean("/" + key)
}

// isClean reports whether key is rooted, has no empty, "." or ".." segment
// and no trailing slash (the root, "/", excepted).
func isClean(key string) bool {
	if key == "/" {
		return true
	}
	if len(key) < 2 || key[0] != '/' {
		return false
	}
	// One pass from slash to slash (IndexByte skips the bytes between
	// faster than a loop): every '/' must start a segment that is neither
	// empty, nor "." nor "..", and the key must not end in '/'.
	for rest := key[1:]; ; {
		switch {
		case rest == "" || rest[0] == '/':
			return false
		case rest[0] == '.' && (len(rest) == 1 || rest[1] == '/'):
			return false
		case rest[0] == '.' && rest[1] == '.' && (len(rest) == 2 || rest[2] == '/'):
			return false
		}
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return true
		}
		rest = rest[i+1:]
	}
}
