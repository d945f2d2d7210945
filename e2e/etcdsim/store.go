package etcdsim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// node is one key or directory. Keys are clean absolute paths; the root
// is "/" (etcd's "/1", shown to clients as "").
type node struct {
	key      string
	dir      bool
	value    string
	created  uint64
	modified uint64
	expire   time.Time // zero: permanent
	parent   *node
	children map[string]*node // directories only
}

func (n *node) hidden() bool { return strings.HasPrefix(path.Base(n.key), "_") }

func (n *node) clone(parent *node) *node {
	c := *n
	c.parent = parent
	if n.dir {
		c.children = make(map[string]*node, len(n.children))
		for name, child := range n.children {
			c.children[name] = child.clone(&c)
		}
	}
	return &c
}

// store is the v2 store of one etcd member: the tree, the index, the
// history and the set of nodes with a TTL. Its methods follow v2store's
// functions of the same names; they run under Server.mu.
type store struct {
	root  *node
	index uint64
	hist  *history
	ttl   map[*node]struct{}
	hub   *hub // watchers to notify; nil for a follower's copy
	// states logs every visible change, for StateAt; nil for a
	// follower's copy and a backup.
	states *states
}

func newStore(startIndex uint64) *store {
	s := &store{
		root: &node{key: "/", dir: true, children: map[string]*node{}},
		hist: newHistory(),
		ttl:  map[*node]struct{}{},
	}
	// A fresh etcd has already written its membership under /0. Only the
	// last HistorySize of those writes can show, as the history's start.
	if startIndex > HistorySize {
		s.index = startIndex - HistorySize
	}
	for s.index < startIndex {
		s.internalEvent()
	}
	return s
}

// internalEvent stands for a write of etcd's own under /0.
func (s *store) internalEvent() {
	s.index++
	e := newEvent("internal", "", s.index, s.index)
	e.internal = true
	s.hist.add(e)
}

// clone copies everything but the watchers.
func (s *store) clone() *store {
	c := &store{root: s.root.clone(nil), index: s.index, hist: s.hist.clone(), ttl: map[*node]struct{}{}}
	var walk func(n *node)
	walk = func(n *node) {
		if !n.expire.IsZero() {
			c.ttl[n] = struct{}{}
		}
		for _, child := range n.children {
			walk(child)
		}
	}
	walk(c.root)
	return c
}

// shownKey is a key as the client sees it: the root is "".
func shownKey(key string) string {
	if key == "/" {
		return ""
	}
	return key
}

func cleanKey(key string) string { return path.Clean(path.Join("/", key)) }

// lookup is v2store's internalGet.
func (s *store) lookup(key string) (*node, error) {
	cur := s.root
	if key == "/" {
		return cur, nil
	}
	for _, name := range strings.Split(key[1:], "/") {
		if !cur.dir {
			return nil, etcdError(client.ErrorCodeNotDir, cur.key, s.index)
		}
		child, ok := cur.children[name]
		if !ok {
			return nil, etcdError(client.ErrorCodeKeyNotFound, path.Join(cur.key, name), s.index)
		}
		cur = child
	}
	return cur, nil
}

// repr is v2store's node.Repr: a directory's children only if recursive,
// hidden ones never, in random order unless sorted.
func repr(n *node, recursive, sorted bool, now time.Time, rng *rand.Rand) *client.Node {
	c := &client.Node{Key: shownKey(n.key), Dir: n.dir, CreatedIndex: n.created, ModifiedIndex: n.modified}
	c.Expiration, c.TTL = expirationAndTTL(n.expire, now)
	if !n.dir {
		c.Value = n.value
		return c
	}
	if recursive {
		c.Nodes = listChildren(n, recursive, sorted, now, rng)
	}
	return c
}

// listChildren lists a directory as a GET does. An empty listing is nil:
// etcd omits an empty "nodes", so client/v2 decodes nil.
func listChildren(n *node, recursive, sorted bool, now time.Time, rng *rand.Rand) client.Nodes {
	// Map order is random in etcd too; list in key order (so that the seed
	// is drawn on in the same order below), then shuffle under the seed, so
	// that a run is reproducible.
	names := slices.Sorted(maps.Keys(n.children))
	var nodes client.Nodes
	for _, name := range names {
		if child := n.children[name]; !child.hidden() {
			nodes = append(nodes, repr(child, recursive, sorted, now, rng))
		}
	}
	if !sorted {
		rng.Shuffle(len(nodes), nodes.Swap)
	}
	return nodes
}

func (s *store) get(key string, recursive, sorted bool, now time.Time, rng *rand.Rand) (*event, error) {
	n, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	e := newEvent("get", shownKey(key), n.modified, n.created)
	e.node.Expiration, e.node.TTL = expirationAndTTL(n.expire, now)
	if n.dir {
		e.node.Dir = true
		e.node.Nodes = listChildren(n, recursive, sorted, now, rng)
	} else {
		e.node.Value = n.value
	}
	return e, nil
}

// ttlOptions is v2store.TTLOptionSet.
type ttlOptions struct {
	expire  time.Time
	refresh bool
}

// set is v2store's Set.
func (s *store) set(key string, dir bool, value string, opts ttlOptions, now time.Time) (*event, error) {
	n, getErr := s.lookup(key)
	if getErr != nil && getErr.(client.Error).Code != client.ErrorCodeKeyNotFound {
		return nil, getErr
	}
	if opts.refresh {
		if getErr != nil {
			return nil, getErr
		}
		value = n.value
	}
	e, err := s.create(key, dir, value, true, opts.expire, "set", now)
	if err != nil {
		return nil, err
	}
	if getErr == nil {
		e.prev = repr(n, false, false, now, nil)
	}
	s.publish(e, opts.refresh)
	return e, nil
}

// create is v2store's internalCreate; unique appends the next index as
// CreateInOrder (POST) does.
func (s *store) create(key string, dir bool, value string, replace bool, expire time.Time, action string, now time.Time) (*event, error) {
	cur, next := s.index, s.index+1
	if key == "/" {
		return nil, etcdError(client.ErrorCodeRootROnly, "/", cur)
	}
	dirName, name := path.Split(key)
	d, err := s.mkdirs(dirName, next)
	if err != nil {
		return nil, err
	}
	e := newEvent(action, key, next, next)
	if n := d.children[name]; n != nil {
		if !replace {
			return nil, etcdError(client.ErrorCodeNodeExist, key, cur)
		}
		if n.dir {
			return nil, etcdError(client.ErrorCodeNotFile, key, cur)
		}
		e.prev = repr(n, false, false, now, nil)
		s.unlink(n, nil)
	}
	n := &node{key: key, dir: dir, created: next, modified: next, expire: expire, parent: d}
	if dir {
		n.children = map[string]*node{}
		e.node.Dir = true
	} else {
		n.value = value
		e.node.Value = value
	}
	d.children[name] = n
	if !expire.IsZero() {
		s.ttl[n] = struct{}{}
		e.node.Expiration, e.node.TTL = expirationAndTTL(expire, now)
	}
	s.index = next
	return e, nil
}

// mkdirs walks to directory dirName, creating what is missing with index
// next (v2store's walk with checkDir).
func (s *store) mkdirs(dirName string, next uint64) (*node, error) {
	cur := s.root
	for _, name := range strings.Split(strings.Trim(dirName, "/"), "/") {
		if name == "" {
			break
		}
		child, ok := cur.children[name]
		if !ok {
			child = &node{key: path.Join(cur.key, name), dir: true, created: next, modified: next,
				parent: cur, children: map[string]*node{}}
			cur.children[name] = child
		} else if !child.dir {
			return nil, etcdError(client.ErrorCodeNotDir, child.key, s.index)
		}
		cur = child
	}
	return cur, nil
}

// createNew is v2store's Create (PUT prevExist=false, or POST if unique).
func (s *store) createNew(key string, dir bool, value string, unique bool, opts ttlOptions, now time.Time) (*event, error) {
	if unique {
		key = cleanKey(fmt.Sprintf("%s/%020d", key, s.index+1))
	}
	e, err := s.create(key, dir, value, false, opts.expire, "create", now)
	if err != nil {
		return nil, err
	}
	s.publish(e, false)
	return e, nil
}

// update is v2store's Update.
func (s *store) update(key, value string, opts ttlOptions, now time.Time) (*event, error) {
	if key == "/" {
		return nil, etcdError(client.ErrorCodeRootROnly, "/", s.index)
	}
	next := s.index + 1
	n, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	if n.dir && value != "" {
		return nil, etcdError(client.ErrorCodeNotFile, key, s.index)
	}
	if opts.refresh {
		value = n.value
	}
	if n.dir {
		// etcd's node.Write refuses a directory and Update wraps that in a
		// plain error, which the HTTP layer answers with a 500.
		return nil, errInternal
	}
	e := newEvent("update", key, next, n.created)
	e.prev = repr(n, false, false, now, nil)
	n.value, n.modified = value, next
	e.node.Value = value
	s.setTTL(n, opts.expire)
	e.node.Expiration, e.node.TTL = expirationAndTTL(n.expire, now)
	s.index = next
	s.publish(e, opts.refresh)
	return e, nil
}

// setTTL is node.UpdateTTL: no expiry time makes the node permanent.
func (s *store) setTTL(n *node, expire time.Time) {
	n.expire = expire
	if expire.IsZero() {
		delete(s.ttl, n)
	} else {
		s.ttl[n] = struct{}{}
	}
}

// compareFailCause is v2store's getCompareFailCause.
func compareFailCause(n *node, prevValue string, prevIndex uint64) (string, bool) {
	indexMatch := prevIndex == 0 || n.modified == prevIndex
	valueMatch := prevValue == "" || n.value == prevValue
	switch {
	case indexMatch && valueMatch:
		return "", true
	case indexMatch:
		return fmt.Sprintf("[%v != %v]", prevValue, n.value), false
	case valueMatch:
		return fmt.Sprintf("[%v != %v]", prevIndex, n.modified), false
	default:
		return fmt.Sprintf("[%v != %v] [%v != %v]", prevValue, n.value, prevIndex, n.modified), false
	}
}

// compareAndSwap is v2store's CompareAndSwap.
func (s *store) compareAndSwap(key, prevValue string, prevIndex uint64, value string, opts ttlOptions, now time.Time) (*event, error) {
	if key == "/" {
		return nil, etcdError(client.ErrorCodeRootROnly, "/", s.index)
	}
	n, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, etcdError(client.ErrorCodeNotFile, key, s.index)
	}
	if cause, ok := compareFailCause(n, prevValue, prevIndex); !ok {
		return nil, etcdError(client.ErrorCodeTestFailed, cause, s.index)
	}
	if opts.refresh {
		value = n.value
	}
	s.index++
	e := newEvent("compareAndSwap", key, s.index, n.created)
	e.prev = repr(n, false, false, now, nil)
	n.value, n.modified = value, s.index
	s.setTTL(n, opts.expire)
	e.node.Value = value
	e.node.Expiration, e.node.TTL = expirationAndTTL(n.expire, now)
	s.publish(e, opts.refresh)
	return e, nil
}

// delete is v2store's Delete.
func (s *store) delete(key string, dir, recursive bool, now time.Time) (*event, error) {
	if key == "/" {
		return nil, etcdError(client.ErrorCodeRootROnly, "/", s.index)
	}
	if recursive {
		dir = true
	}
	n, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	if n.dir {
		if !dir {
			return nil, etcdError(client.ErrorCodeNotFile, n.key, s.index)
		}
		if len(n.children) != 0 && !recursive {
			return nil, etcdError(client.ErrorCodeDirNotEmpty, n.key, s.index)
		}
	}
	e := newEvent("delete", key, s.index+1, n.created)
	e.prev = repr(n, false, false, now, nil)
	e.node.Dir = n.dir
	s.unlink(n, e)
	s.index++
	s.publish(e, false)
	return e, nil
}

// compareAndDelete is v2store's CompareAndDelete (which, unlike the
// others, has no read-only check for the root: it fails as a directory).
func (s *store) compareAndDelete(key, prevValue string, prevIndex uint64, now time.Time) (*event, error) {
	n, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, etcdError(client.ErrorCodeNotFile, shownKey(key), s.index)
	}
	if cause, ok := compareFailCause(n, prevValue, prevIndex); !ok {
		return nil, etcdError(client.ErrorCodeTestFailed, cause, s.index)
	}
	s.index++
	e := newEvent("compareAndDelete", key, s.index, n.created)
	e.prev = repr(n, false, false, now, nil)
	s.unlink(n, e)
	s.publish(e, false)
	return e, nil
}

// expire is v2store's DeleteExpiredKeys: every node whose time has come
// goes, earliest first (ties by key), each with an event of its own.
func (s *store) expire(now time.Time) {
	var due []*node
	for n := range s.ttl {
		if !n.expire.After(now) {
			due = append(due, n)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].expire.Equal(due[j].expire) {
			return due[i].expire.Before(due[j].expire)
		}
		return due[i].key < due[j].key
	})
	for _, n := range due {
		if _, ok := s.ttl[n]; !ok {
			continue // went with an expired parent
		}
		s.index++
		e := newEvent("expire", n.key, s.index, n.created)
		// etcd's leader expires keys within 500 ms of their time: seen
		// from then, the TTL left is 0, however far the clock jumped.
		e.prev = repr(n, false, false, n.expire, nil)
		e.node.Dir = n.dir
		s.unlink(n, e)
		s.publish(e, false)
	}
}

// unlink removes n and everything below it. If e is not nil, watchers of
// every removed node get e (v2store's Remove callback).
func (s *store) unlink(n *node, e *event) {
	for _, child := range n.children {
		s.unlink(child, e)
	}
	if n.parent != nil && n.parent.children[path.Base(n.key)] == n {
		delete(n.parent.children, path.Base(n.key))
	}
	delete(s.ttl, n)
	if e != nil && s.hub != nil {
		s.hub.notifyAt(e, n.key, true)
	}
}

// publish records e in the history and, unless it is a refresh, tells the
// watchers (v2store's WatcherHub.notify or add).
func (s *store) publish(e *event, refresh bool) {
	e.refresh = refresh
	s.hist.add(e)
	if s.states != nil {
		s.states.record(s, e)
	}
	if !refresh && s.hub != nil {
		s.hub.notify(e)
	}
}

// leaves calls f for every visible key below prefix.
func (s *store) leaves(prefix string, f func(key, value string)) {
	n, err := s.lookup(cleanKey(prefix))
	if err != nil {
		return
	}
	var walk func(n *node)
	walk = func(n *node) {
		if !n.dir {
			f(n.key, n.value)
			return
		}
		for _, child := range n.children {
			if !child.hidden() { // as a GET lists them
				walk(child)
			}
		}
	}
	walk(n)
}
