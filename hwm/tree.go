package hwm

import "strings"

// tree maps normalised keys to non-zero marks. It is a radix tree on path
// segments: a node stands for a path, and a node with neither a mark nor a
// second child is merged into its only child, so a key whose parent holds
// several children costs a single node. That is the common Calico shape
// (".../workload/k8s/<pod>/endpoint/eth0" below a host holding many pods).
//
// Invariant: every node but the root has a mark or at least two children.
type tree struct {
	root node
	n    int // marks stored
}

// node is 32 bytes. It keeps its full path rather than a label so that keys
// are returned without allocating, and because the path is a substring of a
// key the caller handed in, it shares that key's bytes. A child's label is
// child.path[len(parent.path)+1:], which the descent always knows.
type node struct {
	path string // "" for the root
	kids *kids
	mark uint64 // 0: no mark
}

// smallKids is the fan-out up to which children are a slice searched
// linearly; above it they move to a map keyed by their first label segment.
const smallKids = 8

type kids struct {
	list []*node
	m    map[string]*node // non-nil once the set outgrew smallKids
}

// firstSeg returns s up to its first '/'.
func firstSeg(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// off is where the labels of n's children start in their paths.
func (n *node) off() int { return len(n.path) + 1 }

func (n *node) key() string {
	if n.path == "" {
		return "/"
	}
	return n.path
}

func (n *node) nkids() int {
	switch {
	case n.kids == nil:
		return 0
	case n.kids.m != nil:
		return len(n.kids.m)
	}
	return len(n.kids.list)
}

// child returns n's child whose label starts with segment seg.
func (n *node) child(seg string) *node {
	k := n.kids
	if k == nil {
		return nil
	}
	if k.m != nil {
		return k.m[seg]
	}
	// A label starts with seg when seg is its first segment: compared in
	// place, without cutting each label at its first '/'.
	end := n.off() + len(seg)
	for _, c := range k.list {
		if p := c.path; len(p) >= end && (len(p) == end || p[end] == '/') && p[end-len(seg):end] == seg {
			return c
		}
	}
	return nil
}

// setChild stores c as the child for segment seg, replacing any child there;
// a nil c removes it.
func (n *node) setChild(seg string, c *node) {
	k := n.kids
	if k == nil {
		if c != nil {
			n.kids = &kids{list: []*node{c}}
		}
		return
	}
	if k.m != nil {
		if c == nil {
			delete(k.m, seg)
			n.shrink()
		} else {
			k.m[firstSeg(c.path[n.off():])] = c
		}
		return
	}
	off := n.off()
	for i, old := range k.list {
		if firstSeg(old.path[off:]) == seg {
			if c == nil {
				k.list = append(k.list[:i], k.list[i+1:]...)
				n.shrink()
			} else {
				k.list[i] = c
			}
			return
		}
	}
	if c == nil {
		return
	}
	if len(k.list) < smallKids {
		k.list = append(k.list, c)
		return
	}
	k.m = make(map[string]*node, 2*smallKids)
	for _, old := range k.list {
		k.m[firstSeg(old.path[off:])] = old
	}
	k.m[firstSeg(c.path[off:])] = c
	k.list = nil
}

// shrink returns a map that has fallen well below smallKids to a slice, and
// drops an empty child set.
func (n *node) shrink() {
	k := n.kids
	switch {
	case k.m != nil && len(k.m) <= smallKids/2:
		k.list = make([]*node, 0, smallKids)
		for _, c := range k.m {
			k.list = append(k.list, c)
		}
		k.m = nil
	case k.m == nil && len(k.list) == 0:
		n.kids = nil
	}
}

// only returns the single child of a node that has exactly one; shrink has
// turned a map that small back into a slice.
func (n *node) only() *node {
	return n.kids.list[0]
}

// compact returns what should stand in n's place in its parent: n, its only
// child when n has no mark of its own, or nil when n is empty.
func compact(n *node) *node {
	if n.mark != 0 {
		return n
	}
	switch n.nkids() {
	case 0:
		return nil
	case 1:
		return n.only()
	}
	return n
}

// segPrefix returns the length of the longest common prefix of a and b that
// ends on a segment boundary of both. a and b share their first segment.
func segPrefix(a, b string) int {
	last, i := 0, 0
	for ; i < len(a) && i < len(b) && a[i] == b[i]; i++ {
		if a[i] == '/' {
			last = i
		}
	}
	if (i == len(a) || a[i] == '/') && (i == len(b) || b[i] == '/') {
		return i
	}
	return last
}

// below reports whether label l is the first full segments of rem, with more
// segments following: rem continues below the node labelled l.
func below(rem, l string) bool {
	return len(rem) > len(l) && rem[len(l)] == '/' && rem[:len(l)] == l
}

// get returns the mark of key, or 0.
func (t *tree) get(key string) uint64 {
	if key == "/" {
		return t.root.mark
	}
	n, rem := &t.root, key[1:]
	for {
		c := n.child(firstSeg(rem))
		if c == nil {
			return 0
		}
		l := c.path[n.off():]
		if rem == l {
			return c.mark
		}
		if !below(rem, l) {
			return 0
		}
		n, rem = c, rem[len(l)+1:]
	}
}

// maxOnPath returns the highest mark of key and of its ancestors.
func (t *tree) maxOnPath(key string) uint64 {
	best := t.root.mark
	if key == "/" {
		return best
	}
	n, rem := &t.root, key[1:]
	for {
		c := n.child(firstSeg(rem))
		if c == nil {
			return best
		}
		l := c.path[n.off():]
		if rem != l && !below(rem, l) {
			return best
		}
		best = max(best, c.mark)
		if rem == l {
			return best
		}
		n, rem = c, rem[len(l)+1:]
	}
}

// upsert returns the node for key, creating it (with no mark) if needed. The
// caller must give a created node a mark to keep the invariant.
func (t *tree) upsert(key string) *node {
	if key == "/" {
		return &t.root
	}
	n, rem := &t.root, key[1:]
	for {
		seg := firstSeg(rem)
		c := n.child(seg)
		if c == nil {
			leaf := &node{path: key}
			n.setChild(seg, leaf)
			return leaf
		}
		off := n.off()
		l := c.path[off:]
		m := len(l) // rem runs through l: the common case, compared at once
		if rem != l && !below(rem, l) {
			m = segPrefix(rem, l)
		}
		if m == len(l) {
			if m == len(rem) {
				return c
			}
			n, rem = c, rem[m+1:]
			continue
		}
		// key parts from c inside c's label: put a node at the fork.
		at := len(key) - len(rem) + m
		mid := &node{path: key[:at], kids: &kids{list: []*node{c}}}
		n.setChild(seg, mid)
		if at == len(key) {
			return mid
		}
		leaf := &node{path: key}
		mid.kids.list = append(mid.kids.list, leaf)
		return leaf
	}
}

// set raises key's mark to idx if idx is higher, and returns the old mark.
func (t *tree) set(key string, idx uint64) (old uint64) {
	n := t.upsert(key)
	old = n.mark
	if old < idx {
		if old == 0 {
			t.n++
		}
		n.mark = idx
	}
	return old
}

// sweep removes every mark below limit in the subtree rooted at n, appends
// the keys it removed to out, and returns what should now stand in n's place
// (see compact).
func (t *tree) sweep(n *node, limit uint64, out []string) (*node, []string) {
	if n.mark != 0 && n.mark < limit {
		out = append(out, n.key())
		n.mark = 0
		t.n--
	}
	if k := n.kids; k != nil {
		if k.m != nil {
			for seg, c := range k.m {
				var r *node
				if r, out = t.sweep(c, limit, out); r == nil {
					delete(k.m, seg)
				} else if r != c {
					k.m[seg] = r
				}
			}
		} else {
			kept := k.list[:0]
			for _, c := range k.list {
				var r *node
				if r, out = t.sweep(c, limit, out); r != nil {
					kept = append(kept, r)
				}
			}
			clear(k.list[len(kept):]) // let the garbage collector have them
			k.list = kept
		}
		n.shrink()
	}
	if n == &t.root {
		return n, out
	}
	return compact(n), out
}

// sweepUnder removes every mark below limit on key and below it, appending
// the removed keys to out.
func (t *tree) sweepUnder(key string, limit uint64, out []string) []string {
	if key == "/" {
		_, out = t.sweep(&t.root, limit, out)
		return out
	}
	var gp *node // n's parent, nil while n is the root
	var gpSeg string
	n, rem := &t.root, key[1:]
	for {
		seg := firstSeg(rem)
		c := n.child(seg)
		if c == nil {
			return out
		}
		l := c.path[n.off():]
		if rem == l || (len(l) > len(rem) && l[len(rem)] == '/' && l[:len(rem)] == rem) {
			// c is key itself, or the first node below it.
			var r *node
			r, out = t.sweep(c, limit, out)
			if r == c {
				return out
			}
			n.setChild(seg, r)
			if gp != nil {
				if p := compact(n); p != n {
					gp.setChild(gpSeg, p)
				}
			}
			return out
		}
		if !below(rem, l) {
			return out
		}
		gp, gpSeg = n, seg
		n, rem = c, rem[len(l)+1:]
	}
}

// walk calls f for every marked node.
func (n *node) walk(f func(*node)) {
	if n.mark != 0 {
		f(n)
	}
	if k := n.kids; k != nil {
		for _, c := range k.m {
			c.walk(f)
		}
		for _, c := range k.list {
			c.walk(f)
		}
	}
}
