package relay

import (
	"slices"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// logOf returns a log holding entries with the given revisions, all of
// cluster "c", in one epoch, bounded to max entries; all are resumable but
// those listed in notResumable (by revision). An entry's digest is its
// revision: see at.
func logOf(max int, revs []uint64, notResumable ...uint64) *retainedLog {
	l := &retainedLog{maxEntries: max, maxBytes: 1 << 30}
	for _, r := range revs {
		l.push(&entry{rev: r, cluster: "c", resumable: !slices.Contains(notResumable, r), digest: wire.Digest(r), enc: encoded{raw: []byte("x\n")}})
	}
	return l
}

func revs(rs ...uint64) []uint64 { return rs }

// at is the position of a client of cluster c at rev whose view is the one
// logOf's entries at rev stand for.
func at(c string, rev uint64) position {
	return position{cluster: c, rev: rev, digest: wire.Digest(rev), hasDigest: true}
}

func TestResumeAt(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  *retainedLog
		pos  position
		next uint64
		ok   bool
	}{
		{"after the entry at the revision", logOf(10, revs(1, 2, 3)), at("c", 2), 2, true},
		{"at the head: nothing to send", logOf(10, revs(1, 2, 3)), at("c", 3), 3, true},
		{"several entries at one revision: after the first", logOf(10, revs(1, 2, 2, 2, 3)), at("c", 2), 2, true},
		{"a revision no entry has", logOf(10, revs(1, 3)), at("c", 2), 0, false},
		{"beyond the head", logOf(10, revs(1, 2)), at("c", 9), 0, false},
		{"another cluster", logOf(10, revs(1, 2)), at("d", 1), 0, false},
		{"no cluster", logOf(10, revs(1, 2)), at("", 1), 0, false},
		{"revision 0", logOf(10, revs(1, 2)), at("c", 0), 0, false},
		// Trimmed to 3, 4, 5: the base (after 2) is still a position.
		{"the base of a trimmed log", logOf(3, revs(1, 2, 3, 4, 5)), at("c", 2), 2, true},
		{"before the base", logOf(3, revs(1, 2, 3, 4, 5)), at("c", 1), 0, false},
		// A resync brought 4, 4 and 6 in key order; 6 is a whole batch in
		// sync again.
		{"not at a resync's position", logOf(10, revs(3, 4, 4, 6, 7), 4, 6), at("c", 4), 0, false},
		{"after the last in-sync position", logOf(10, revs(3, 4, 4, 6, 7), 4, 6), at("c", 3), 1, true},
		{"equal revisions, none resumable", logOf(10, revs(3, 5, 5, 5), 5), at("c", 5), 0, false},
	} {
		next, ok := tc.log.resumeAt(tc.pos)
		if next != tc.next || ok != tc.ok {
			t.Errorf("%s: resumeAt(%+v) = %d, %v; want %d, %v", tc.name, tc.pos, next, ok, tc.next, tc.ok)
		}
	}
}

// A revision names a view only with its digest: a client whose view at the
// revision is another (etcd rebuilt with the same cluster ID, a batch
// that ended inside a directory deletion), or that sent no digest, is
// never resumed.
func TestResumeAtNeedsTheDigestOfTheViewThere(t *testing.T) {
	l := logOf(10, revs(1, 2, 3))
	for _, p := range []position{
		{cluster: "c", rev: 2, digest: 99, hasDigest: true},
		{cluster: "c", rev: 2}, // a client older than digests
		{cluster: "c", rev: 2, digest: 2},
	} {
		if next, ok := l.resumeAt(p); ok {
			t.Errorf("resumeAt(%+v) resumed at %d", p, next)
		}
	}
	// One etcd revision deleting a directory, delivered in two batches:
	// two positions at 5, the first with the directory half deleted.
	l.push(&entry{rev: 5, cluster: "c", resumable: true, digest: 51, enc: encoded{raw: []byte("x\n")}})
	l.push(&entry{rev: 5, cluster: "c", resumable: true, digest: 52, enc: encoded{raw: []byte("x\n")}})
	for _, tc := range []struct {
		digest wire.Digest
		next   uint64
		ok     bool
	}{{51, 4, true}, {52, 5, true}, {53, 0, false}} {
		next, ok := l.resumeAt(position{cluster: "c", rev: 5, digest: tc.digest, hasDigest: true})
		if next != tc.next || ok != tc.ok {
			t.Errorf("at 5 with digest %d: resumeAt = %d, %v; want %d, %v", tc.digest, next, ok, tc.next, tc.ok)
		}
	}
	// Trimmed to the last two: the base is the first entry at 5.
	l.maxEntries = 1
	l.push(&entry{rev: 6, cluster: "c", resumable: true, digest: 6, enc: encoded{raw: []byte("x\n")}})
	if next, ok := l.resumeAt(position{cluster: "c", rev: 5, digest: 52, hasDigest: true}); !ok || next != 5 {
		t.Errorf("at the base's revision with the base's digest: resumeAt = %d, %v; want 5, true", next, ok)
	}
	if _, ok := l.resumeAt(position{cluster: "c", rev: 5, digest: 51, hasDigest: true}); ok {
		t.Error("resumed at a trimmed entry's digest")
	}
}

func TestResumeAtIgnoresEarlierEpochs(t *testing.T) {
	l := logOf(10, revs(1, 2, 3))
	l.epoch = l.head() // a reset: revisions start over
	l.push(&entry{rev: 1, cluster: "c", resumable: true, digest: 1, enc: encoded{raw: []byte("x\n")}})
	if next, ok := l.resumeAt(at("c", 2)); ok {
		t.Errorf("resumed into an earlier epoch at %d", next)
	}
	if next, ok := l.resumeAt(at("c", 1)); !ok || next != 4 {
		t.Errorf("resumeAt(c, 1) = %d, %v; want 4 (after the new epoch's entry), true", next, ok)
	}
}

func TestPushBoundsCountAndBytes(t *testing.T) {
	l := &retainedLog{maxEntries: 100, maxBytes: 10}
	for range 20 {
		l.push(&entry{enc: encoded{raw: []byte("abcd\n")}}) // 5 bytes
	}
	if len(l.entries) != 2 || l.bytes != 10 || l.first != 18 {
		t.Errorf("%d entries, %d bytes, first %d; want 2, 10, 18", len(l.entries), l.bytes, l.first)
	}
	l.push(&entry{enc: encoded{raw: make([]byte, 50)}}) // over the bound alone: kept
	if len(l.entries) != 1 || l.head() != 21 {
		t.Errorf("%d entries, head %d; want 1, 21", len(l.entries), l.head())
	}
	batch := l.from(l.first, 10)
	l.push(&entry{enc: encoded{raw: make([]byte, 50)}})
	if batch[0] == nil {
		t.Error("from shares its slots with the log: a push cleared an entry under the reader")
	}
}

// The sharing window counts from when a client asked, so a burst whose
// first snapshot takes longer than SnapshotShare to write still shares it.
func TestSnapshotSharedWithEveryClientThatAskedWithinTheWindowOfItsBuild(t *testing.T) {
	s := loaded(t, 10)
	share := s.cfg.SnapshotShare
	// Each client has written its snapshot by the next one's turn: none
	// holds it.
	snapshotFor := func(asked time.Time) *snapshot {
		h := &holder{interrupt: func() {}}
		sn := s.snapshotFor(asked, h)
		s.release(sn, h)
		return sn
	}
	first := snapshotFor(time.Now())
	s.OnUpdates([]messages.Update{{Key: "/calico/v1/later", Value: "x", Revision: 1 << 20, Type: messages.UpdateTypeNew}})
	if got := snapshotFor(first.built.Add(-time.Hour)); got != first {
		t.Error("a client that asked before the build, and reached it late, got another snapshot")
	}
	if got := snapshotFor(first.built.Add(share - time.Millisecond)); got != first {
		t.Error("a client that asked within the window got another snapshot")
	}
	if got := snapshotFor(first.built.Add(share + time.Millisecond)); got == first {
		t.Error("a client that asked after the window, of a view that changed since, got the old snapshot")
	}
	if st := s.Stats(); st.SnapshotsBuilt != 2 || st.SnapshotsShared != 2 {
		t.Errorf("built %d, shared %d; want 2 and 2", st.SnapshotsBuilt, st.SnapshotsShared)
	}
}
