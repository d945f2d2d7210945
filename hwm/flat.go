package hwm

import "slices"

// Flat records high-water marks of flat keys, as etcd v3 has them: every key
// is a name of its own, with no directories, so "/a" and "/a/b" are two
// unrelated keys, a deletion removes exactly its key, and keys are never
// normalised ("/a//b" and "/a/b/" are keys of their own). Its methods mean
// what Tracker's do, less the directories. The zero value is not usable;
// call NewFlat. Not safe for concurrent use.
type Flat struct {
	marks map[string]uint64
	// dels holds the deletions seen since StartTrackingDeletions, nil when
	// not tracking.
	dels map[string]uint64
}

// NewFlat returns an empty Flat that is not tracking deletions.
func NewFlat() *Flat {
	return &Flat{marks: map[string]uint64{}}
}

// StoreUpdate records that key was seen at modIdx and returns its previous
// mark (0 if none). While deletions are tracked, an update below a tracked
// deletion of key is refused and that deletion's index returned.
func (f *Flat) StoreUpdate(key string, modIdx uint64) (oldModIdx uint64) {
	if d := f.dels[key]; modIdx < d {
		return d
	}
	old := f.marks[key]
	if modIdx > old {
		f.marks[key] = modIdx
	}
	return old
}

// StoreDeletion records that key was deleted at modIdx. It removes key if
// its mark is below modIdx and returns the removed key as a non-nil slice
// (empty when nothing was removed).
func (f *Flat) StoreDeletion(key string, modIdx uint64) (deletedKeys []string) {
	if f.dels != nil && modIdx > f.dels[key] {
		f.dels[key] = modIdx
	}
	if m, ok := f.marks[key]; ok && m < modIdx {
		delete(f.marks, key)
		return []string{key}
	}
	return []string{}
}

// StartTrackingDeletions starts remembering deletions, forgetting any that
// an earlier tracking period remembered.
func (f *Flat) StartTrackingDeletions() { f.dels = map[string]uint64{} }

// StopTrackingDeletions forgets the tracked deletions and stops tracking.
func (f *Flat) StopTrackingDeletions() { f.dels = nil }

// DeleteOldKeys removes every key whose mark is below limit and returns them,
// sorted, as a non-nil slice. It panics if deletions are being tracked, as
// Tracker's does.
func (f *Flat) DeleteOldKeys(limit uint64) (deletedKeys []string) {
	if f.dels != nil {
		panic("hwm: DeleteOldKeys called while tracking deletions; call StopTrackingDeletions first")
	}
	deletedKeys = []string{}
	for k, m := range f.marks {
		if m < limit {
			deletedKeys = append(deletedKeys, k)
			delete(f.marks, k)
		}
	}
	slices.Sort(deletedKeys)
	return deletedKeys
}

// ToMap returns a copy of every key and its mark.
func (f *Flat) ToMap() map[string]uint64 {
	m := make(map[string]uint64, len(f.marks))
	for k, v := range f.marks {
		m[k] = v
	}
	return m
}

// Len returns the number of keys with a mark.
func (f *Flat) Len() int { return len(f.marks) }
