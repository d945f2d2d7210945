package etcdsim

import (
	"fmt"
	"path"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// HistorySize is how many events the v2 store remembers for watches
// (v2store.newWatchHub(1000)).
const HistorySize = 1000

// event is one entry of the store's history. Its nodes are never mutated
// after creation; responses get copies.
type event struct {
	action string
	node   *client.Node
	prev   *client.Node
	// refresh events (a TTL refresh) take an index but no watcher sees them.
	refresh bool
	// internal events stand for etcd's own writes under /0 (membership,
	// cluster version): they take indexes and history slots, and never
	// match a client's watch.
	internal bool
}

func (e *event) index() uint64 { return e.node.ModifiedIndex }

func newEvent(action, key string, modified, created uint64) *event {
	return &event{action: action, node: &client.Node{Key: key, ModifiedIndex: modified, CreatedIndex: created}}
}

// response renders e as client/v2 decodes an event: fresh nodes the
// caller may keep.
func (e *event) response(index uint64, clusterID string) *client.Response {
	return &client.Response{
		Action:    e.action,
		Node:      cloneNode(e.node),
		PrevNode:  cloneNode(e.prev),
		Index:     index,
		ClusterID: clusterID,
	}
}

func cloneNode(n *client.Node) *client.Node {
	if n == nil {
		return nil
	}
	c := *n
	if n.Expiration != nil {
		t := *n.Expiration
		c.Expiration = &t
	}
	if n.Nodes != nil {
		c.Nodes = make(client.Nodes, len(n.Nodes))
		for i, child := range n.Nodes {
			c.Nodes[i] = cloneNode(child)
		}
	}
	return &c
}

// history is v2store's EventHistory over its eventQueue, kept to the
// letter because its quirks are visible to watchers: the window counts
// every event (refreshes and etcd's own included), and the scan starts at
// an offset computed from indexes.
type history struct {
	events            []*event
	size, front, back int
	start, last       uint64 // StartIndex, LastIndex
}

func newHistory() *history {
	return &history{events: make([]*event, HistorySize)}
}

func (h *history) add(e *event) {
	h.events[h.back] = e
	h.back = (h.back + 1) % len(h.events)
	if h.size == len(h.events) {
		h.front = (h.front + 1) % len(h.events)
	} else {
		h.size++
	}
	h.last = e.index()
	h.start = h.events[h.front].index()
}

// scan returns the first event at or after index that a watch of key
// would see, nil if there is none yet, or error 401 if index fell out of
// the window; the caller sets the error's index.
func (h *history) scan(key string, recursive bool, index uint64) (*event, *client.Error) {
	if index < h.start {
		return nil, &client.Error{
			Code:    client.ErrorCodeEventIndexCleared,
			Message: errorMessages[client.ErrorCodeEventIndexCleared],
			Cause:   fmt.Sprintf("the requested history has been cleared [%v/%v]", h.start, index),
		}
	}
	if index > h.last || h.size == 0 {
		return nil, nil
	}
	i := (h.front + int(index-h.start)) % len(h.events)
	for {
		e := h.events[i]
		if !e.refresh && !e.internal && matches(e, key, recursive) {
			return e, nil
		}
		i = (i + 1) % len(h.events)
		if i == h.back {
			return nil, nil
		}
	}
}

// matches is the history scan's test (not the live notification's: that
// one hides "_" keys from recursive watches, this one doesn't).
func matches(e *event, key string, recursive bool) bool {
	ok := e.node.Key == key
	if recursive {
		nkey := path.Clean(key)
		if nkey[len(nkey)-1] != '/' {
			nkey += "/"
		}
		ok = ok || strings.HasPrefix(e.node.Key, nkey)
	}
	// A directory's deletion or expiry reaches watchers of anything below
	// it. (etcd compares raw prefixes, so /foobar matches /foo too.)
	if (e.action == "delete" || e.action == "expire") && e.prev != nil && e.prev.Dir {
		ok = ok || strings.HasPrefix(key, e.prev.Key)
	}
	return ok
}

func (h *history) clone() *history {
	c := *h
	c.events = make([]*event, len(h.events))
	copy(c.events, h.events)
	return &c
}

// expirationAndTTL is v2store's node.expirationAndTTL: the TTL is the
// remaining time rounded up to whole seconds.
func expirationAndTTL(expire, now time.Time) (*time.Time, int64) {
	if expire.IsZero() {
		return nil, 0
	}
	left := expire.Sub(now)
	ttl := left / time.Second
	if left%time.Second > 0 {
		ttl++
	}
	t := expire.UTC()
	return &t, int64(ttl)
}
