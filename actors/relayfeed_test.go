package actors_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
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
func (l *leaf) frames(fs ...*wire.Frame) {
	GinkgoHelper()
	Expect(l.try(fs...)).To(Succeed())
}

// try applies frames until one fails, and returns its error.
func (l *leaf) try(fs ...*wire.Frame) error {
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
func hello(resume bool) *wire.Frame {
	return &wire.Frame{Type: wire.TypeHello, Version: wire.Version, Prefix: feedPrefix, Resume: resume}
}
func begin(cluster string, rev uint64, count int) *wire.Frame {
	return &wire.Frame{Type: wire.TypeSnapshotBegin, ClusterID: cluster, Revision: rev, Count: count}
}
func kvs(kvs ...wire.KV) *wire.Frame {
	return &wire.Frame{Type: wire.TypeKVs, KVs: kvs}
}
func wkv(k, v string, rev uint64) wire.KV { return wire.KV{Key: k, Value: v, Revision: rev} }
func end(st m.SyncStatus) *wire.Frame {
	return &wire.Frame{Type: wire.TypeSnapshotEnd, Status: st.String()}
}
func delta(cluster string, rev uint64, changes ...wire.Change) *wire.Frame {
	return &wire.Frame{Type: wire.TypeDelta, ClusterID: cluster, Revision: rev, Changes: changes}
}
func wput(k, v string, rev uint64) wire.Change {
	return wire.Change{Op: "updated", Key: k, Value: v, Revision: rev}
}
func wgone(k string, rev uint64) wire.Change {
	return wire.Change{Op: "deleted", Key: k, Revision: rev}
}
func status(st m.SyncStatus, cluster string, rev uint64) *wire.Frame {
	return &wire.Frame{Type: wire.TypeStatus, Status: st.String(), ClusterID: cluster, Revision: rev}
}

// withDigest gives a positioned frame the digest a relay would put on it.
func withDigest(f *wire.Frame, d wire.Digest) *wire.Frame {
	f.Digest = d.String()
	return f
}

const cid = "c0ffee"

// viewAt10 is the digest of the view inSync brings the leaf to.
var viewAt10 = wire.Digest(0).With("/calico/v1/a", "1").With("/calico/v1/b", "2")

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
		p := l.feed.Position()
		Expect(p.ClusterID).To(Equal(cid))
		Expect(p.Revision).To(BeEquivalentTo(12))
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

	It("after a stream broke past its position, asks for a snapshot, not a resume", func() {
		inSync()
		l.frames(delta("", 0, wput("/calico/v1/c", "3", 11))) // half a batch: no position
		l.merge(l.feed.Disconnected(errors.New("cut")))
		Expect(l.feed.Position()).To(BeZero(), "the view is past (cid, 10): no relay may resume it from there")
		l.feed.Connected()
		l.frames(hello(false), begin(cid, 12, 3),
			kvs(wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/c", "3", 11), wkv("/calico/v1/d", "4", 12)), end(m.InSync))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/c": "3", "/calico/v1/d": "4"}))
	})

	When("it fails over to another relay", func() {
		// relayB is a second relay of the same cluster, as the issue
		// tells it: both relays were in sync at 10 and lost their watch;
		// /c was created at 11 and deleted at 12; B resynced after that,
		// its mark and sweep found nothing to send, and it is in sync at
		// 12. Its log holds positions 10 and 12, with only its resync's
		// statuses between them. It resumes a client at 10 and gives any
		// other a snapshot.
		relayB := func() []*wire.Frame {
			if p := l.feed.Position(); p.ClusterID == cid && p.Revision == 10 {
				return []*wire.Frame{hello(true), status(m.Resync, "", 0), status(m.InSync, cid, 12)}
			}
			return []*wire.Frame{hello(false), begin(cid, 12, 2),
				kvs(wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/b", "2", 10)), end(m.InSync)}
		}

		It("after applying frames with no position from the first, is in sync only with the second's keys", func() {
			inSync()
			// Relay A resyncs while /c exists: a status and a delta
			// with no position. Then its stream breaks.
			l.frames(status(m.Resync, "", 0), delta("", 0, wput("/calico/v1/c", "3", 11)))
			l.merge(l.feed.Disconnected(errors.New("relay A gone")))
			l.feed.Connected()
			l.frames(relayB()...)
			Expect(l.status()).To(Equal(m.InSync))
			Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}),
				"/c was deleted at 12; no frame of B will ever mention it")
		})

		It("from a position its view is exactly at, resumes without a snapshot", func() {
			inSync()
			l.merge(l.feed.Disconnected(errors.New("relay A gone")))
			l.feed.Connected()
			l.frames(relayB()...)
			Expect(l.feed.Live()).To(BeTrue())
			Expect(l.status()).To(Equal(m.InSync))
			Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}))
		})
	})

	It("takes a hello whose prefix has a trailing slash for its own prefix", func() {
		h := hello(false)
		h.Prefix = feedPrefix + "/"
		l.frames(h, begin(cid, 10, 1), kvs(wkv("/calico/v1/a", "1", 5)), end(m.InSync))
		Expect(l.status()).To(Equal(m.InSync))
	})

	It("sizes nothing by the count a snapshot announces", func() {
		l.frames(hello(false))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l.frames(begin(cid, 10, 1<<22)) // a 77-byte frame
		runtime.ReadMemStats(&after)
		Expect(after.TotalAlloc-before.TotalAlloc).To(BeNumerically("<", 1<<20), "bytes allocated")
	})

	It("refuses the first key past a snapshot's count, before the snapshot ends", func() {
		err := l.try(hello(false), begin(cid, 10, 1), kvs(wkv("/calico/v1/a", "1", 5)), kvs(wkv("/calico/v1/b", "2", 6)))
		Expect(err).To(MatchError(actors.ErrRelayProtocol))
		Expect(l.try(hello(false))).To(MatchError(actors.ErrRelayProtocol), "the stream is dropped: a second hello is out of order")
	})

	It("forwards a frame's changes as one index: each but the last says More, so the host gets them whole", func() {
		inSync()
		ins, err := l.feed.Frame(delta(cid, 12, wgone("/calico/v1/a", 12), wgone("/calico/v1/b", 12)), l.now, feedPrefix)
		Expect(err).NotTo(HaveOccurred())
		Expect(ins).To(Equal([]m.MergeInput{
			m.WatcherDeletion{Key: "/calico/v1/a", ModifiedIndex: 12, More: true},
			m.WatcherDeletion{Key: "/calico/v1/b", ModifiedIndex: 12},
		}))
	})

	It("holds the changes of a frame with no position (a split batch) until the frame with one", func() {
		inSync()
		ins, err := l.feed.Frame(delta("", 0, wgone("/calico/v1/a", 12)), l.now, feedPrefix)
		Expect(err).NotTo(HaveOccurred())
		Expect(ins).To(BeEmpty())
		ins, err = l.feed.Frame(delta(cid, 12, wgone("/calico/v1/b", 12)), l.now, feedPrefix)
		Expect(err).NotTo(HaveOccurred())
		Expect(ins).To(Equal([]m.MergeInput{
			m.WatcherDeletion{Key: "/calico/v1/a", ModifiedIndex: 12, More: true},
			m.WatcherDeletion{Key: "/calico/v1/b", ModifiedIndex: 12},
		}))
	})

	It("holds at most MaxHeldChanges, then resyncs from its view at the next position", func() {
		inSync()
		var fs []*wire.Frame
		for i := range actors.MaxHeldChanges/512 + 1 {
			changes := make([]wire.Change, 512)
			for j := range changes {
				changes[j] = wput(fmt.Sprintf("/calico/v1/k%d-%d", i, j), "x", 12)
			}
			fs = append(fs, delta("", 0, changes...))
		}
		l.frames(fs...)
		Expect(l.status()).To(Equal(m.Resync), "no longer forwarding")
		l.frames(delta(cid, 12, wgone("/calico/v1/a", 12)))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(HaveLen(actors.MaxHeldChanges+512+1), "every held key, /b, and not /a")
	})

	It("drops held changes when the stream breaks: the resync brings them", func() {
		inSync()
		l.frames(delta("", 0, wgone("/calico/v1/a", 12)))
		l.merge(l.feed.Disconnected(errors.New("cut")))
		Expect(l.status()).To(Equal(m.Resync))
		Expect(l.values()).To(HaveKey("/calico/v1/a"), "not applied without its index's end")
	})

	It("takes changes at its position's revision: one etcd index deletes a directory, in several batches", func() {
		inSync()
		l.frames(delta(cid, 12, wgone("/calico/v1/a", 12)), delta(cid, 12, wgone("/calico/v1/b", 12)))
		Expect(l.status()).To(Equal(m.InSync))
		Expect(l.values()).To(BeEmpty())
	})

	DescribeTable("refuses a hostile frame, and keeps the host's map and the position its view is at",
		func(fs ...*wire.Frame) {
			inSync()
			Expect(l.try(fs...)).To(MatchError(actors.ErrRelayProtocol))
			l.merge(l.feed.Disconnected(errors.New("protocol error")))
			Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}))
			p := l.feed.Position()
			Expect(p.ClusterID).To(Equal(cid))
			Expect(p.Revision).To(BeEquivalentTo(10))
			Expect(p.Digest).To(Equal(viewAt10.String()))
		},
		Entry("a snapshot key outside the prefix", begin(cid, 12, 1), kvs(wkv("/calico/v2/a", "1", 11))),
		Entry("a delta key outside the prefix", delta(cid, 12, wput("/calico/v1/c", "3", 11), wput("/other", "x", 12))),
		Entry("the prefix itself as a key", delta(cid, 12, wput("/calico/v1", "x", 12))),
		Entry("a delta whose position goes back", delta(cid, 9, wput("/calico/v1/c", "3", 9))),
		Entry("a status whose position goes back", status(m.InSync, cid, 9)),
		Entry("a change in sync below the position it follows", delta(cid, 12, wput("/calico/v1/c", "3", 9))),
		Entry("a change above its own frame's position", delta(cid, 12, wput("/calico/v1/c", "3", 13))),
		Entry("a snapshot inside a snapshot", begin(cid, 12, 1), begin(cid, 12, 0)),
		Entry("a delta whose digest is not the view it leaves",
			withDigest(delta(cid, 12, wput("/calico/v1/c", "3", 11)), viewAt10.With("/calico/v1/c", "other"))),
		Entry("a status whose digest is not the view's", withDigest(status(m.InSync, cid, 12), viewAt10.With("/calico/v1/c", "3"))),
		Entry("a snapshot whose keys are not the digest it announced",
			withDigest(begin(cid, 12, 1), wire.Digest(0).With("/calico/v1/a", "1")), kvs(wkv("/calico/v1/a", "2", 11)), end(m.InSync)),
	)

	It("checks a delta's digest against the view it leaves, a key changed twice in it included", func() {
		inSync()
		want := wire.Digest(0).With("/calico/v1/a", "1c")
		l.frames(withDigest(delta(cid, 13, wput("/calico/v1/a", "1b", 11), wgone("/calico/v1/b", 12), wput("/calico/v1/a", "1c", 13)), want))
		Expect(l.feed.Digest()).To(Equal(want))
		Expect(l.feed.Position().Digest).To(Equal(want.String()))
	})

	When("a relay of etcd rebuilt with the same cluster ID sends a snapshot", func() {
		// The relay of the new history would not resume the leaf's
		// position (its digest at 10 is another): it sends a snapshot at
		// a position at or past the leaf's. The merge core's marks are of
		// the old history, so a mark and sweep would keep /a's old value.
		DescribeTable("takes it for an upstream reset: only a reset drops the old history's marks",
			func(a wire.KV) {
				inSync()
				l.merge(l.feed.Disconnected(errors.New("relay gone")))
				l.feed.Connected()
				err := l.try(hello(false), begin(cid, 10, 2), kvs(wkv("/calico/v1/b", "2", 10), a), end(m.InSync))
				Expect(err).To(MatchError(m.ErrUpstreamReset))
				Expect(err).To(MatchError(ContainSubstring("rebuilt with the same cluster ID")))
			},
			Entry("another value at the same revision", wkv("/calico/v1/a", "other", 5)),
			Entry("another value at a lower revision", wkv("/calico/v1/a", "other", 4)),
			Entry("another key at the same position", wkv("/calico/v1/c", "3", 7)),
		)

		It("takes a shared key at a lower revision with the same value for one history (a v2 TTL refresh that relay did not see)", func() {
			inSync()
			l.merge(l.feed.Disconnected(errors.New("relay gone")))
			l.feed.Connected()
			l.frames(hello(false), begin(cid, 12, 2), kvs(wkv("/calico/v1/a", "1", 4), wkv("/calico/v1/b", "2", 10)), end(m.InSync))
			Expect(l.status()).To(Equal(m.InSync))
			Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1", "/calico/v1/b": "2"}))
		})

		It("takes a later state of the same history by mark and sweep, as from any relay", func() {
			inSync()
			l.merge(l.feed.Disconnected(errors.New("relay gone")))
			l.feed.Connected()
			l.frames(hello(false), begin(cid, 12, 2), kvs(wkv("/calico/v1/a", "1b", 12), wkv("/calico/v1/b", "2", 10)), end(m.InSync))
			Expect(l.values()).To(Equal(map[string]string{"/calico/v1/a": "1b", "/calico/v1/b": "2"}))
		})
	})

	// The digest is kept as frames come; it must always be the one of the
	// view recomputed from scratch, or a leaf would resume nowhere (or, with
	// a collision, anywhere). A model relay sends random snapshots, deltas
	// (a key changed twice in one included) and statuses, with digests
	// computed from its map; the feed must take every frame and agree.
	It("keeps the digest of its view through any sequence of frames (property; seed from -ginkgo.seed)", func() {
		seed := GinkgoRandomSeed()
		GinkgoWriter.Printf("seed %d: replay with -ginkgo.seed=%d\n", seed, seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		model := map[string]wire.KV{} // the relay's view: one etcd history
		digestOf := func() wire.Digest { return wire.DigestOf(model, func(kv wire.KV) string { return kv.Value }) }
		rev := uint64(1)
		key := func() string { return fmt.Sprintf("/calico/v1/k%d", rng.IntN(12)) }
		for range rng.IntN(8) {
			k := key()
			model[k] = wkv(k, fmt.Sprint(rng.IntN(4)), rev)
		}
		// snapshot sends the relay's view, as a relay does to a client it
		// does not resume.
		snapshot := func() {
			var kv []wire.KV
			for _, x := range model {
				kv = append(kv, x)
			}
			l.frames(hello(false), withDigest(begin(cid, rev, len(kv)), digestOf()), kvs(kv...), end(m.InSync))
		}
		snapshot()
		for step := range 500 {
			switch r := rng.IntN(20); {
			case r == 0:
				l.merge(l.feed.Disconnected(errors.New("cut")))
				l.feed.Connected()
				snapshot()
			case r == 1:
				l.frames(withDigest(status(m.InSync, cid, rev), digestOf()))
			default:
				var changes []wire.Change
				for range 1 + rng.IntN(4) {
					rev++
					k := key()
					if _, ok := model[k]; ok && rng.IntN(3) == 0 {
						delete(model, k)
						changes = append(changes, wgone(k, rev))
						continue
					}
					v := fmt.Sprint(rng.IntN(4))
					model[k] = wkv(k, v, rev)
					changes = append(changes, wput(k, v, rev))
				}
				f := delta("", 0, changes...)
				if rng.IntN(2) == 0 { // the last frame of a batch: a position
					f = withDigest(delta(cid, rev, changes...), digestOf())
				}
				l.frames(f)
			}
			Expect(l.feed.Digest()).To(Equal(digestOf()), "after step %d", step)
		}
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
		p := l.feed.Position()
		Expect(p.ClusterID).To(Equal(cid))
		Expect(p.Revision).To(BeEquivalentTo(10), "the position the view stands at, not the unfinished snapshot's")
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
		func(fs ...*wire.Frame) {
			Expect(l.try(fs...)).To(MatchError(actors.ErrRelayProtocol))
		},
		Entry("a snapshot before hello", begin("", 0, 0)),
		Entry("a delta before a snapshot", hello(false), delta(cid, 1, wput("/calico/v1/a", "1", 1))),
		Entry("kvs outside a snapshot", hello(false), kvs(wkv("/calico/v1/a", "1", 1))),
		Entry("a snapshot short of its count", hello(false), begin("", 0, 2), kvs(wkv("/calico/v1/a", "1", 1)), end(m.InSync)),
		Entry("another prefix", &wire.Frame{Type: wire.TypeHello, Version: 1, Prefix: "/other"}),
		Entry("a second hello", hello(false), hello(false)),
		Entry("a resume never asked for: no position to resume from", hello(true)),
	)
})
