package hwm

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"
)

// model is the reference the Tracker is fuzzed against: deliberately naive,
// a map per concern and linear scans, so that it is obviously right.
type model struct {
	marks map[string]uint64
	dels  map[string]uint64 // nil when not tracking deletions
}

func newModel() *model { return &model{marks: map[string]uint64{}} }

func clean(k string) string { return path.Clean("/" + k) }

// under reports whether key is dir or lies below it.
func under(key, dir string) bool {
	return dir == "/" || key == dir || strings.HasPrefix(key, dir+"/")
}

func (m *model) StoreUpdate(k string, idx uint64) uint64 {
	k = clean(k)
	if m.dels != nil {
		var newest uint64
		for d, di := range m.dels {
			if under(k, d) && di > newest {
				newest = di
			}
		}
		if idx < newest {
			return newest
		}
	}
	old := m.marks[k]
	if idx > old {
		m.marks[k] = idx
	}
	return old
}

func (m *model) StoreDeletion(k string, idx uint64) []string {
	k = clean(k)
	if m.dels != nil {
		for d, di := range m.dels {
			if under(d, k) && di < idx {
				delete(m.dels, d)
			}
		}
		m.dels[k] = max(m.dels[k], idx)
	}
	out := []string{}
	for kk, v := range m.marks {
		if under(kk, k) && v < idx {
			out = append(out, kk)
			delete(m.marks, kk)
		}
	}
	slices.Sort(out)
	return out
}

func (m *model) DeleteOldKeys(limit uint64) []string {
	if m.dels != nil {
		panic("tracking")
	}
	out := []string{}
	for kk, v := range m.marks {
		if v < limit {
			out = append(out, kk)
			delete(m.marks, kk)
		}
	}
	slices.Sort(out)
	return out
}

// fuzzKeys are few enough to collide often, and include prefixes that are
// not path ancestors ("/a" and "/ab"), odd spellings of the same key, and
// the root.
var fuzzKeys = []string{
	"/a", "/ab", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/cd", "/a/bc", "/a/b/c/e",
	"/b", "/b/a", "/b/a/b", "/ab/c", "/a/c", "/a/c/d", "/a/b/d", "/c/d/e/f",
	"a/b", "/a/b/", "//a//b", "", "/", "/a/./b", "/a/../ab", "/calico/v1/host/h1",
}

// A wide directory, so that child sets grow past smallKids into a map and
// shrink back.
func init() {
	for i := range 20 {
		fuzzKeys = append(fuzzKeys, fmt.Sprintf("/m/%d", i), fmt.Sprintf("/m/%d/z", i))
	}
}

// checkInvariant verifies the tree's structure: every node but the root has
// a mark or two children, every child extends its parent's path at a segment
// boundary under the right first segment, and the mark count is right.
func checkInvariant(t *testing.T, tr *tree) {
	t.Helper()
	count := 0
	var visit func(n *node)
	visit = func(n *node) {
		if n.mark != 0 {
			count++
		}
		if n != &tr.root && n.mark == 0 && n.nkids() < 2 {
			t.Fatalf("node %q has no mark and %d children", n.path, n.nkids())
		}
		if n.kids != nil && n.nkids() == 0 {
			t.Fatalf("node %q keeps an empty child set", n.path)
		}
		check := func(seg string, c *node) {
			if !strings.HasPrefix(c.path, n.path+"/") || len(c.path) <= n.off() {
				t.Fatalf("child %q is not below %q", c.path, n.path)
			}
			if got := firstSeg(c.path[n.off():]); seg != "" && got != seg {
				t.Fatalf("child %q filed under %q", c.path, seg)
			}
			visit(c)
		}
		if n.kids != nil {
			for seg, c := range n.kids.m {
				check(seg, c)
			}
			for _, c := range n.kids.list {
				check("", c)
			}
		}
	}
	visit(&tr.root)
	if count != tr.n {
		t.Fatalf("tree counts %d marks, holds %d", tr.n, count)
	}
}

// runOps interprets data as a sequence of operations, applies each to a
// Tracker and to the model, and fails on the first difference.
func runOps(t *testing.T, data []byte) {
	tr, m := New(), newModel()
	for i := 0; i+2 < len(data); i += 3 {
		op, key, idx := data[i]%6, fuzzKeys[int(data[i+1])%len(fuzzKeys)], uint64(data[i+2]%32)
		what := fmt.Sprintf("op %d: ", i/3)
		switch op {
		case 0, 1:
			what += fmt.Sprintf("StoreUpdate(%q, %d)", key, idx)
			if got, want := tr.StoreUpdate(key, idx), m.StoreUpdate(key, idx); got != want {
				t.Fatalf("%s = %d, model says %d", what, got, want)
			}
		case 2:
			what += fmt.Sprintf("StoreDeletion(%q, %d)", key, idx)
			got, want := tr.StoreDeletion(key, idx), m.StoreDeletion(key, idx)
			if got == nil || !slices.Equal(got, want) {
				t.Fatalf("%s = %#v, model says %#v", what, got, want)
			}
		case 3:
			what += "StartTrackingDeletions()"
			tr.StartTrackingDeletions()
			m.dels = map[string]uint64{}
		case 4:
			what += "StopTrackingDeletions()"
			tr.StopTrackingDeletions()
			m.dels = nil
		case 5:
			what += fmt.Sprintf("DeleteOldKeys(%d)", idx)
			if m.dels != nil {
				if !panics(func() { tr.DeleteOldKeys(idx) }) {
					t.Fatalf("%s did not panic while tracking deletions", what)
				}
				continue
			}
			got, want := tr.DeleteOldKeys(idx), m.DeleteOldKeys(idx)
			if got == nil || !slices.Equal(got, want) {
				t.Fatalf("%s = %#v, model says %#v", what, got, want)
			}
		}
		if got := tr.ToMap(); !maps.Equal(got, m.marks) {
			t.Fatalf("after %s: ToMap() = %v, model has %v", what, got, m.marks)
		}
		if tr.Len() != len(m.marks) {
			t.Fatalf("after %s: Len() = %d, model has %d", what, tr.Len(), len(m.marks))
		}
		checkInvariant(t, &tr.marks)
		if tr.dels != nil {
			checkInvariant(t, tr.dels)
		}
	}
}

func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}

// FuzzTracker drives random sequences of every operation against the Tracker
// and the naive model. `make test` replays the seed corpus in
// testdata/fuzz/FuzzTracker; `make fuzz` searches for new inputs.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 3, 10, 3, 0, 0, 2, 3, 20, 0, 7, 15, 0, 7, 25, 4, 0, 0, 5, 0, 30})
	f.Fuzz(runOps)
}

// TestIsCleanOnEveryShortKey holds isClean, normalise's shortcut, to
// path.Clean on every key of up to 7 characters of "/.a".
func TestIsCleanOnEveryShortKey(t *testing.T) {
	var grow func(k string)
	n := 0
	grow = func(k string) {
		n++
		want := strings.HasPrefix(k, "/") && path.Clean(k) == k
		if got := isClean(k); got != want {
			t.Errorf("isClean(%q) = %v, want %v", k, got, want)
		}
		if len(k) < 7 {
			for _, c := range "/.a" {
				grow(k + string(c))
			}
		}
	}
	grow("")
	if n != 3280 {
		t.Fatalf("checked %d keys, want 3280", n)
	}
}
