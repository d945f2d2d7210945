package actors_test

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/actors/relaywire"
	m "github.com/etcdsync/etcdsync/messages"
)

const feedPrefix = "/calico/v1"

// leaf is a RelayFeed feeding a real MergeCore, and the map and statuses a
// host applying the core's output holds: the relay client without its
// actors.
type leaf struct {
	feed     *actors.RelayFeed
	core     *actors.MergeCore
	host     map[string]m.Update
	statuses []m.SyncStatus
	updates  []m.Update // every update delivered, in order
	now      time.Time
}

func newLeaf() *leaf {
	l := &leaf{feed: actors.NewRelayFeed(2, time.Minute), core: actors.NewMergeCore(), host: map[string]m.Update{},
		now: time.Unix(1000, 0)}
	l.apply(l.core.Start())
	return l
}

func (l *leaf) apply(out actors.Output) {
	GinkgoHelper()
	for _, u := range out.Updates {
		l.updates = append(l.updates, u)
		if u.Type == m.UpdateTypeDeleted {
			Expect(l.host).To(HaveKey(u.Key), "a deletion of a key the host lacks")
			delete(l.host, u.Key)
		} else {
			l.host[u.Key] = u
		}
	}
	if out.Status != 0 {
		l.statuses = append(l.statuses, out.Status)
	}
	if out.Snapshot != nil {
		ins, err := l.feed.Request(*out.Snapshot, l.now)
		Expect(err).NotTo(HaveOccurred())
		l.merge(ins)
	}
}

func (l *leaf) merge(ins []m.MergeInput) {
	GinkgoHelper()
	for _, in := range ins {
		l.apply(l.core.Step(in))
	}
}

// frames applies frames, failing on an error.
func (l *leaf) frames(fs ...*relaywire.Frame) {
	GinkgoHelper()
	Expect(l.try(fs...)).To(Succeed())
}

// try applies frames until one fails, and returns its error.
func (l *leaf) try(fs ...*relaywire.Frame) error {
	GinkgoHelper()
	for _, f := range fs {
		ins, err := l.feed.Frame(f, l.now, feedPrefix)
		l.merge(ins)
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *leaf) status() m.SyncStatus { return l.core.Status() }

func (l *leaf) values() map[string]string {
	out := map[string]string{}
	for k, u := range l.host {
		out[k] = u.Value
	}
	return out
}

// Frames, spelled short.
func hello(resume bool) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeHello, Version: relaywire.Version, Prefix: feedPrefix, Resume: resume}
}
func begin(cluster string, rev uint64, count int) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeSnapshotBegin, ClusterID: cluster, Revision: rev, Count: count}
}
func kvs(kvs ...relaywire.KV) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeKVs, KVs: kvs}
}
func wkv(k, v string, rev uint64) relaywire.KV { return relaywire.KV{Key: k, Value: v, Revision: rev} }
func end(st m.SyncStatus) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeSnapshotEnd, Status: st.String()}
}
func delta(cluster string, rev uint64, changes ...relaywire.Change) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeDelta, ClusterID: cluster, Revision: rev, Changes: changes}
}
func wput(k, v string, rev uint64) relaywire.Change {
	return relaywire.Change{Op: "updated", Key: k, Value: v, Revision: rev}
}
func wgone(k string, rev uint64) relaywire.Change {
	return relaywire.Change{Op: "deleted", Key: k, Revision: rev}
}
func status(st m.SyncStatus, cluster string, rev uint64) *relaywire.Frame {
	return &relaywire.Frame{Type: relaywire.TypeStatus, Status: st.String(), ClusterID: cluster, Revision: rev}
}

const cid = "c0ffee"

var _ = Describe("RelayFeed", func() {
	var l *leaf
	BeforeEach(func() { l = newLeaf() })

	// inSync brings the leaf in sync from a relay at revision 10 holding
	// /a and /b.
	inSync := func() {
		l.frames(hello(false), begin(cid, 10, 2), kvs(wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/b", "2", 10)),
			end(m.InSync))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}))
	}

	It("is in sync once a snapshot at a position of a relay in sync has been merged, then applies deltas as watch events", func() {
		inSync()
		Expect(l.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore, m.Resync, m.InSync}))
		Expect(l.host["/calico/v1/a"].Revision).To(BeEquivalentTo(5), "etcd's revisions, not the snapshot's")
		l.frames(delta(cid, 12, wput("/calico/v1/a", "1b", 11), wgone("/calico/v1/b", 12)))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1b"}))
		Expect(l.status()).To(Equal(m.InSync))
		cluster, rev := l.feed.Position()
		Expect(cluster).To(Equal(cid))
		Expect(rev).To(BeEquivalentTo(12))
	})

	It("stays in resync while the relay resyncs, and is in sync, with the relay's keys, once the relay is", func() {
		l.frames(hello(false), begin("", 0, 1), kvs(wkv("/calico/v1/a", "1", 5)), end(m.Resync))
		Expect(l.status()).NotTo(Equal(m.InSync))
		// The relay's resync: key order, no positions.
		l.frames(delta("", 0, wput("/calico/v1/z", "26", 30)), delta("", 0, wput("/calico/v1/b", "2", 20)))
		Expect(l.status()).NotTo(Equal(m.InSync))
		Expect(l.host).To(BeEmpty(), "nothing before a state of etcd")
		l.frames(delta("", 0, wgone("/calico/v1/a", 31)), status(m.InSync, cid, 31))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/b": "2", "/calico/v1/z": "26"}))
	})

	It("drops to resync when the relay does, and tells the host only what changed once back", func() {
		inSync()
		before := len(l.updates)
		l.frames(status(m.Resync, "", 0))
		Expect(l.status()).To(Equal(m.Resync))
		l.frames(delta("", 0, wgone("/calico/v1/a", 20)), delta("", 0, wput("/calico/v1/c", "3", 15)))
		Expect(l.values()).To(HaveKey("/calico/v1/a"), "the resync's changes wait for a state of etcd")
		l.frames(status(m.InSync, cid, 20))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/b": "2", "/calico/v1/c": "3"}))
		Expect(l.updates[before:]).To(ConsistOf(
			HaveField("Key", "/calico/v1/a"), HaveField("Key", "/calico/v1/c")), "no update for /b, which did not change")
	})

	It("resumes a stream that broke at a position without a word to the host but the statuses", func() {
		inSync()
		before := len(l.updates)
		l.merge(l.feed.Disconnected(errors.New("cut")))
		Expect(l.status()).To(Equal(m.Resync), "a leaf cut off from its relay does not claim to be in sync")
		l.feed.Connected()
		l.frames(hello(true))
		Expect(l.status()).To(Equal(m.InSync), "a quiet relay resumed at the position needs no write")
		Expect(l.updates[before:]).To(BeEmpty())
		l.frames(delta(cid, 11, wput("/calico/v1/b", "2b", 11)))
		Expect(l.values()).To(HaveKeyWithValue("/calico/v1/b", "2b"))
	})

	It("after a stream broke past its position, waits for the next one before it is in sync", func() {
		inSync()
		l.frames(delta("", 0, wput("/calico/v1/c", "3", 11))) // half a batch: no position
		l.merge(l.feed.Disconnected(errors.New("cut")))
		l.feed.Connected()
		l.frames(hello(true))
		Expect(l.status()).To(Equal(m.Resync))
		l.frames(delta("", 0, wput("/calico/v1/c", "3", 11)), delta(cid, 12, wput("/calico/v1/d", "4", 12)))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2",
			"/calico/v1/c": "3", "/calico/v1/d": "4"}))
	})

	It("merges a fresh snapshot from another relay by mark and sweep", func() {
		inSync()
		before := len(l.updates)
		l.merge(l.feed.Disconnected(errors.New("relay gone")))
		l.feed.Connected()
		l.frames(hello(false), begin(cid, 40, 2), kvs(wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/c", "3", 33)),
			end(m.InSync))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/c": "3"}))
		Expect(l.updates[before:]).To(ConsistOf(
			And(HaveField("Key", "/calico/v1/b"), HaveField("Type", m.UpdateTypeDeleted)),
			And(HaveField("Key", "/calico/v1/c"), HaveField("Type", m.UpdateTypeNew))))
	})

	It("keeps its last position, and its view, when a snapshot is cut short", func() {
		inSync()
		l.merge(l.feed.Disconnected(errors.New("relay gone")))
		l.feed.Connected()
		l.frames(hello(false), begin(cid, 40, 3), kvs(wkv("/calico/v1/a", "1", 5)))
		l.merge(l.feed.Disconnected(errors.New("frame too large")))
		cluster, rev := l.feed.Position()
		Expect(cluster).To(Equal(cid))
		Expect(rev).To(BeEquivalentTo(10), "the position the view stands at, not the unfinished snapshot's")
		l.feed.Connected()
		l.frames(hello(true))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}))
	})

	It("waits for a relay in sync behind what it applied, and takes it for a datastore gone back in time if it stays there", func() {
		inSync()
		l.frames(delta(cid, 30, wput("/calico/v1/c", "3", 30)))
		l.merge(l.feed.Disconnected(errors.New("relay gone")))
		l.feed.Connected()
		l.frames(hello(false), begin(cid, 20, 2), kvs(wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/b", "2", 10)),
			end(m.InSync))
		Expect(l.status()).To(Equal(m.Resync), "the relay has not reached 30 yet")
		Expect(l.feed.Waiting()).To(BeTrue())
		l.frames(delta(cid, 30, wput("/calico/v1/c", "3", 30)))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.feed.Waiting()).To(BeFalse())

		l.merge(l.feed.Disconnected(errors.New("relay gone")))
		l.feed.Connected()
		l.frames(hello(false), begin(cid, 20, 1), kvs(wkv("/calico/v1/a", "1", 5)), end(m.InSync))
		l.now = l.now.Add(30 * time.Second)
		ins, err := l.feed.Tick(l.now)
		Expect(err).NotTo(HaveOccurred())
		l.merge(ins)
		l.now = l.now.Add(31 * time.Second)
		_, err = l.feed.Tick(l.now)
		Expect(err).To(MatchError(m.ErrIndexRegressed))
	})

	It("takes the relay's WaitForDatastore after another status for an upstream reset", func() {
		inSync()
		err := l.try(status(m.WaitForDatastore, "", 0))
		Expect(err).To(MatchError(m.ErrUpstreamReset))
		Expect(l.status()).To(Equal(m.Resync))
	})

	It("sends a relay that restarted nothing but its statuses when no key changed", func() {
		inSync()
		before := len(l.updates)
		l.merge(l.feed.Disconnected(errors.New("relay restarted")))
		l.feed.Connected()
		l.frames(hello(false), begin("", 0, 0), end(m.WaitForDatastore), status(m.Resync, "", 0),
			delta("", 0, wput("/calico/v1/a", "1", 5), wput("/calico/v1/b", "2", 10)),
			status(m.InSync, cid, 14))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.updates[before:]).To(BeEmpty())
	})

	DescribeTable("refuses a frame out of order",
		func(fs ...*relaywire.Frame) {
			Expect(l.try(fs...)).To(MatchError(actors.ErrRelayProtocol))
		},
		Entry("a snapshot before hello", begin("", 0, 0)),
		Entry("a delta before a snapshot", hello(false), delta(cid, 1, wput("/calico/v1/a", "1", 1))),
		Entry("kvs outside a snapshot", hello(false), kvs(wkv("/calico/v1/a", "1", 1))),
		Entry("a snapshot short of its count", hello(false), begin("", 0, 2), kvs(wkv("/calico/v1/a", "1", 1)), end(m.InSync)),
		Entry("another prefix", &relaywire.Frame{Type: relaywire.TypeHello, Version: 1, Prefix: "/other"}),
		Entry("a second hello", hello(false), hello(false)),
	)
})
