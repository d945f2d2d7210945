package wire

import (
	"errors"
	"reflect"
	"testing"

	"github.com/etcdsync/etcdsync/messages"
)

func TestMirrorAppliesASnapshotThenDeltas(t *testing.T) {
	m := NewMirror()
	for _, f := range sampleFrames()[:7] { // up to the error frame
		if err := m.Apply(f); err != nil {
			t.Fatalf("%s: %v", f.Type, err)
		}
	}
	want := map[string]string{"/calico/v1/b": "", "/calico/v1/c": "ü\n\""}
	if !reflect.DeepEqual(m.Map(), want) {
		t.Errorf("map %v, want %v", m.Map(), want)
	}
	if m.Status != messages.Resync || m.ClusterID != "" || m.Revision != 0 || m.Snapshots != 1 || m.Pings != 1 {
		t.Errorf("mirror %+v", m)
	}
	if err := m.Apply(sampleFrames()[7]); err == nil {
		t.Error("an error frame applied without error")
	}
}

func TestMirrorRefusesFramesOutOfOrder(t *testing.T) {
	hello := &Frame{Type: TypeHello, Version: Version}
	for name, frames := range map[string][]*Frame{
		"delta before hello":        {{Type: TypeDelta}},
		"delta before a snapshot":   {hello, {Type: TypeDelta}},
		"kvs outside a snapshot":    {hello, {Type: TypeKVs}},
		"end without begin":         {hello, {Type: TypeSnapshotEnd, Status: "in-sync"}},
		"fewer keys than announced": {hello, {Type: TypeSnapshotBegin, Count: 1}, {Type: TypeSnapshotEnd, Status: "in-sync"}},
		"delta inside a snapshot":   {hello, {Type: TypeSnapshotBegin}, {Type: TypeDelta}},
		// A server writes a snapshot whole: a second begin is a broken
		// relay, as the relay client's core has always said.
		"snapshot inside a snapshot": {hello, {Type: TypeSnapshotBegin}, {Type: TypeSnapshotBegin}},
		// Refused at the first key too many, not at an end that may
		// never come.
		"a key past the count": {hello, {Type: TypeSnapshotBegin, Count: 1}, {Type: TypeKVs, KVs: []KV{{Key: "/a"}}},
			{Type: TypeKVs, KVs: []KV{{Key: "/b"}}}},
	} {
		m := NewMirror()
		var err error
		for _, f := range frames {
			if err = m.Apply(f); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
	}
	// A resumed stream has deltas at once.
	m := NewMirror()
	if err := m.Apply(&Frame{Type: TypeHello, Version: Version, Resume: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(&Frame{Type: TypeDelta}); err != nil {
		t.Errorf("delta after a resuming hello: %v", err)
	}
}

// A map past its last position (a resync's frames, the leading frames of a
// split batch) must not resume from it: another relay's log need not
// mention what those frames changed.
func TestMirrorResumesOnlyFromAPositionItIsExactlyAt(t *testing.T) {
	m := NewMirror()
	for _, f := range []*Frame{
		{Type: TypeHello, Version: Version},
		{Type: TypeSnapshotBegin, ClusterID: "c1", Revision: 5},
		{Type: TypeSnapshotEnd, Status: "in-sync"},
		{Type: TypeStatus, Status: "resync"},
		{Type: TypeDelta, Changes: []Change{{Op: "new", Key: "/a", Value: "1", Revision: 3}}}, // a resync's: no position
	} {
		if err := m.Apply(f); err != nil {
			t.Fatal(err)
		}
	}
	if m.ClusterID != "" || m.Revision != 0 {
		t.Errorf("position (%q, %d) past the frames of a resync, want none", m.ClusterID, m.Revision)
	}
	if err := m.Apply(&Frame{Type: TypeStatus, Status: "in-sync", ClusterID: "c1", Revision: 8}); err != nil ||
		m.ClusterID != "c1" || m.Revision != 8 {
		t.Errorf("after an in-sync status at c1@8: position (%q, %d), %v", m.ClusterID, m.Revision, err)
	}
	next := m.Resuming()
	if next.Revision != 8 || next.Status != messages.InSync || next.Keys["/a"].Value != "1" || next.Snapshots != 0 {
		t.Errorf("Resuming() = %+v", next)
	}
	if err := m.Apply(&Frame{Type: TypeStatus, Status: "wait-for-datastore"}); err != nil || m.Revision != 0 || m.ClusterID != "" {
		t.Errorf("after wait-for-datastore: position (%q, %d), %v; want none", m.ClusterID, m.Revision, err)
	}
	next.Keys["/b"] = KV{Key: "/b"}
	if _, shared := m.Keys["/b"]; shared {
		t.Error("Resuming shares the map")
	}
}

// A snapshot cut short (a frame too large, a broken stream) leaves the map
// and the position it stands for, so a client resumes from there.
func TestMirrorKeepsItsPositionWhenASnapshotIsCutShort(t *testing.T) {
	m := NewMirror()
	for _, f := range []*Frame{
		{Type: TypeHello, Version: Version},
		{Type: TypeSnapshotBegin, ClusterID: "c1", Revision: 5, Count: 1},
		{Type: TypeKVs, KVs: []KV{{Key: "/a", Value: "1", Revision: 5}}},
		{Type: TypeSnapshotEnd, Status: "in-sync"},
		{Type: TypeSnapshotBegin, ClusterID: "c1", Revision: 50, Count: 2},
		{Type: TypeKVs, KVs: []KV{{Key: "/b", Value: "2", Revision: 50}}},
	} {
		if err := m.Apply(f); err != nil {
			t.Fatalf("%s: %v", f.Type, err)
		}
	}
	r := m.Resuming()
	if r.ClusterID != "c1" || r.Revision != 5 || !reflect.DeepEqual(r.Map(), map[string]string{"/a": "1"}) {
		t.Errorf("resuming from %s@%d with %v, want c1@5 with /a only", r.ClusterID, r.Revision, r.Map())
	}
}

func TestChunksBoundEntriesAndBytes(t *testing.T) {
	sizes := []int{10, MaxFrameValueBytes, 10, 10, 2 * MaxFrameValueBytes, 1}
	got := Chunks(len(sizes), func(i int) int { return sizes[i] })
	want := [][2]int{{0, 1}, {1, 2}, {2, 4}, {4, 5}, {5, 6}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Chunks by bytes = %v, want %v", got, want)
	}
	got = Chunks(MaxFrameChanges+1, func(int) int { return 1 })
	if want := [][2]int{{0, MaxFrameChanges}, {MaxFrameChanges, MaxFrameChanges + 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Chunks by count = %v, want %v", got, want)
	}
	if got := Chunks(0, nil); len(got) != 0 {
		t.Errorf("Chunks(0) = %v", got)
	}
}
