package actors_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
)

// Inputs, spelled short so that each scenario reads as a script.
func needs(idx uint64) m.WatcherNeedsSnapshot {
	return m.WatcherNeedsSnapshot{MinIndex: idx, Cause: "test"}
}
func set(k, v string, idx uint64) m.WatcherUpdate {
	return m.WatcherUpdate{KV: m.KV{Key: k, Value: v, ModifiedIndex: idx}}
}
func del(k string, idx uint64) m.WatcherDeletion {
	return m.WatcherDeletion{Key: k, ModifiedIndex: idx}
}
func kv(k, v string, idx uint64) m.KV { return m.KV{Key: k, Value: v, ModifiedIndex: idx} }
func snap(idx uint64, kvs ...m.KV) []any {
	return []any{m.SnapshotBatch{Index: idx, KVs: kvs}, m.SnapshotFinished{Index: idx}}
}

// Updates, likewise.
func added(k, v string, rev uint64) m.Update {
	return m.Update{Key: k, Value: v, Revision: rev, Type: m.UpdateTypeNew}
}
func changed(k, v string, rev uint64) m.Update {
	return m.Update{Key: k, Value: v, Revision: rev, Type: m.UpdateTypeUpdated}
}
func gone(k string, rev uint64) m.Update {
	return m.Update{Key: k, Revision: rev, Type: m.UpdateTypeDeleted}
}

// host replays a MergeCore's outputs the way a host would.
type host struct {
	merge    *actors.MergeCore
	view     map[string]string
	updates  []m.Update
	statuses []m.SyncStatus
	requests []uint64
	calls    int // OnUpdates calls a batching consumer would make
}

func newHost() *host {
	h := &host{merge: actors.NewMergeCore(), view: map[string]string{}}
	h.take(h.merge.Start())
	return h
}

func (h *host) step(ins ...any) {
	GinkgoHelper()
	for _, in := range ins {
		if list, ok := in.([]any); ok {
			h.step(list...)
			continue
		}
		h.take(h.merge.Step(in.(m.MergeInput)))
	}
}

func (h *host) take(out actors.Output) {
	if len(out.Updates) > 0 {
		h.calls++
	}
	for _, u := range out.Updates {
		switch u.Type {
		case m.UpdateTypeNew:
			Expect(h.view).NotTo(HaveKey(u.Key), "new for a key the host has: %v", u)
		case m.UpdateTypeUpdated, m.UpdateTypeDeleted:
			Expect(h.view).To(HaveKey(u.Key), "%v for a key the host lacks", u.Type)
		}
		if u.Type == m.UpdateTypeDeleted {
			delete(h.view, u.Key)
		} else {
			h.view[u.Key] = u.Value
		}
	}
	h.updates = append(h.updates, out.Updates...)
	if out.Status != 0 {
		h.statuses = append(h.statuses, out.Status)
	}
	if out.Snapshot != nil {
		h.requests = append(h.requests, out.Snapshot.MinIndex)
	}
}

// inSync brings a fresh host in sync with the given keys at index idx.
func inSync(idx uint64, kvs ...m.KV) *host {
	h := newHost()
	h.step(needs(idx), snap(idx, kvs...))
	Expect(h.merge.Status()).To(Equal(m.InSync))
	h.updates, h.statuses, h.requests = nil, nil, nil
	return h
}

var _ = Describe("MergeCore", func() {
	When("one etcd index comes as several watch inputs (a v3 range delete, a relay's frame)", func() {
		It("says the index is partial until its last input, and that this one closed it", func() {
			h := inSync(10, kv("/a", "1", 5), kv("/b", "2", 6))
			out := h.merge.Step(m.WatcherDeletion{Key: "/a", ModifiedIndex: 12, More: true})
			Expect(out.Partial).To(BeTrue())
			Expect(out.Closed).To(BeFalse())
			out = h.merge.Step(m.WatcherDeletion{Key: "/b", ModifiedIndex: 12})
			Expect(out.Partial).To(BeFalse())
			Expect(out.Closed).To(BeTrue())
			Expect(out.Updates).To(Equal([]m.Update{gone("/b", 12)}))
		})

		It("reports in-sync only once the index is whole", func() {
			h := newHost()
			h.step(needs(10), set("/x", "1", 11))
			h.take(h.merge.Step(m.WatcherUpdate{KV: kv("/y", "2", 12), More: true}))
			h.step(snap(10, kv("/a", "1", 5))...)
			Expect(h.statuses).NotTo(ContainElement(m.InSync), "in sync with /y@12 and not the rest of 12")
			h.step(set("/z", "3", 12))
			Expect(h.statuses).To(HaveExactElements(m.WaitForDatastore, m.Resync, m.InSync))
		})

		It("forgets the rest of an index the watcher lost", func() {
			h := inSync(10)
			h.merge.Step(m.WatcherUpdate{KV: kv("/y", "2", 12), More: true})
			Expect(h.merge.Step(m.WatcherLostSync{Err: m.ErrLostSync}).Partial).To(BeFalse())
		})
	})

	It("announces wait-for-datastore once, and nothing on a resumed start", func() {
		h := newHost()
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore}))
		Expect(h.merge.Start()).To(Equal(actors.Output{}))
	})

	It("reaches in-sync on a first sync", func() {
		h := newHost()
		h.step(needs(10))
		Expect(h.requests).To(Equal([]uint64{10}))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore, m.Resync}))
		h.step(snap(10, kv("/a", "1", 5), kv("/b", "2", 8)))
		Expect(h.updates).To(Equal([]m.Update{added("/a", "1", 5), added("/b", "2", 8)}))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore, m.Resync, m.InSync}))
		Expect(h.calls).To(Equal(1), "a snapshot batch is delivered as one batch")
	})

	It("reaches in-sync on an empty datastore", func() {
		h := newHost()
		h.step(needs(3), snap(3))
		Expect(h.updates).To(BeEmpty())
		Expect(h.merge.Status()).To(Equal(m.InSync))
	})

	DescribeTable("a watch update racing the snapshot",
		func(order []any, want []m.Update) {
			h := newHost()
			h.step(needs(10))
			h.step(order...)
			Expect(h.updates).To(Equal(want))
			Expect(h.view).To(Equal(map[string]string{"/a": "new"}))
			Expect(h.merge.Status()).To(Equal(m.InSync))
		},
		Entry("watch first: the older snapshot value is suppressed",
			[]any{set("/a", "new", 12), snap(10, kv("/a", "old", 5))},
			[]m.Update{added("/a", "new", 12)}),
		Entry("snapshot first: the watch value updates it",
			[]any{snap(10, kv("/a", "old", 5)), set("/a", "new", 12)},
			[]m.Update{added("/a", "old", 5), changed("/a", "new", 12)}),
		Entry("watch inside the snapshot: the snapshot batch after the watch is suppressed",
			[]any{set("/a", "new", 12), m.SnapshotBatch{Index: 10, KVs: []m.KV{kv("/a", "old", 5)}}, m.SnapshotFinished{Index: 10}},
			[]m.Update{added("/a", "new", 12)}),
	)

	When("the watch deletes a key before a stale snapshot value of it arrives", func() {
		It("suppresses the value of a key the host never had", func() {
			h := newHost()
			h.step(needs(10), del("/a", 12), snap(10, kv("/a", "old", 5)))
			Expect(h.updates).To(BeEmpty())
			Expect(h.view).To(BeEmpty())
			Expect(h.merge.Suppressed()).To(Equal(uint64(1)))
		})

		It("deletes a key the host had and keeps it deleted", func() {
			h := inSync(10, kv("/a", "old", 5))
			h.step(needs(20), del("/a", 22), snap(20, kv("/a", "old", 5)))
			Expect(h.updates).To(Equal([]m.Update{gone("/a", 22)}))
			Expect(h.view).To(BeEmpty())
		})

		It("deletes a whole directory ahead of a stale snapshot", func() {
			h := inSync(10, kv("/d/x", "1", 5))
			h.step(needs(20), del("/d", 22), snap(20, kv("/d/x", "1", 5), kv("/d/y", "2", 15)))
			Expect(h.updates).To(Equal([]m.Update{gone("/d/x", 22)}))
			Expect(h.view).To(BeEmpty())
		})
	})

	// Found by the random schedules; the seed syncer has both faults.
	When("a deletion arrives while one snapshot is read and the next is already needed", func() {
		It("still refuses the older value the next snapshot holds", func() {
			h := inSync(50, kv("/k", "v", 40))
			h.step(needs(55))     // its snapshot is being read
			h.step(needs(60))     // the watch restarts at 60
			h.step(del("/k", 62)) // seen during the snapshot at 55
			h.step(m.SnapshotFinished{Index: 55})
			Expect(h.requests).To(Equal([]uint64{55, 60}))
			h.step(snap(60, kv("/k", "v", 40))) // read at 60, before the deletion
			Expect(h.updates).To(Equal([]m.Update{gone("/k", 62)}))
			Expect(h.view).To(BeEmpty())
		})
	})

	When("the watch lags behind a snapshot that has finished", func() {
		It("drops events the snapshot already holds instead of resurrecting swept keys", func() {
			h := inSync(40, kv("/k", "v", 30))
			h.step(needs(45), snap(47)) // /k was set at 44 and deleted at 46
			Expect(h.updates).To(Equal([]m.Update{gone("/k", 47)}))
			h.step(set("/k", "w", 44), del("/k", 46)) // the watch catches up
			Expect(h.updates).To(Equal([]m.Update{gone("/k", 47)}))
			Expect(h.view).To(BeEmpty())
		})
	})

	It("deletes every key under a deleted directory, and only those", func() {
		h := inSync(10, kv("/d/x", "1", 5), kv("/d/y", "2", 6), kv("/dx", "3", 7))
		h.step(del("/d", 20))
		Expect(h.updates).To(Equal([]m.Update{gone("/d/x", 20), gone("/d/y", 20)}))
		Expect(h.view).To(Equal(map[string]string{"/dx": "3"}))
	})

	It("ignores a watch event older than what it already holds", func() {
		h := inSync(10, kv("/a", "1", 8))
		h.step(set("/a", "older", 7))
		Expect(h.updates).To(BeEmpty())
	})

	It("sweeps keys missing from a resync's snapshot and re-sends nothing unchanged", func() {
		h := inSync(10, kv("/a", "1", 5), kv("/b", "2", 6), kv("/c", "3", 7))
		h.step(needs(30))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.Resync}))
		h.step(snap(30, kv("/a", "1", 5), kv("/b", "2b", 25)))
		Expect(h.updates).To(Equal([]m.Update{changed("/b", "2b", 25), gone("/c", 30)}))
		Expect(h.view).To(Equal(map[string]string{"/a": "1", "/b": "2b"}))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.Resync, m.InSync}))
	})

	It("requests another snapshot when one finishes below the required index", func() {
		h := newHost()
		h.step(needs(10), needs(20))
		Expect(h.requests).To(Equal([]uint64{10}), "one snapshot at a time")
		h.step(snap(15, kv("/a", "1", 5)))
		Expect(h.merge.Status()).To(Equal(m.Resync))
		Expect(h.requests).To(Equal([]uint64{10, 20}))
		h.step(snap(20, kv("/a", "1", 5)))
		Expect(h.merge.Status()).To(Equal(m.InSync))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore, m.Resync, m.InSync}))
	})

	It("goes back to resync and asks for a snapshot when in-sync is lost", func() {
		h := inSync(10, kv("/a", "1", 5))
		h.step(set("/b", "2", 11))
		h.step(needs(50))
		Expect(h.statuses).To(Equal([]m.SyncStatus{m.Resync}))
		Expect(h.requests).To(Equal([]uint64{50}))
	})

	When("the watcher reports it lost sync", func() {
		It("goes to resync at once and waits for the watcher's index before asking for a snapshot", func() {
			h := inSync(10, kv("/a", "1", 5))
			h.step(m.WatcherLostSync{})
			Expect(h.statuses).To(Equal([]m.SyncStatus{m.Resync}))
			Expect(h.requests).To(BeEmpty())
			h.step(needs(40))
			Expect(h.requests).To(Equal([]uint64{40}))
		})

		It("keeps wait-for-datastore when etcd was never reached", func() {
			h := newHost()
			h.step(m.WatcherLostSync{})
			Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore}))
		})

		It("does not call a snapshot that finishes meanwhile in-sync", func() {
			h := newHost()
			h.step(needs(10), m.WatcherLostSync{}, snap(10, kv("/a", "1", 5)))
			Expect(h.merge.Status()).To(Equal(m.Resync))
			h.step(needs(12))
			Expect(h.requests).To(Equal([]uint64{10, 12}))
			h.step(snap(12, kv("/a", "1", 5)))
			Expect(h.merge.Status()).To(Equal(m.InSync))
		})
	})

	It("never asks for a snapshot below what it has applied", func() {
		h := inSync(10)
		h.step(set("/a", "1", 100), needs(50))
		Expect(h.requests).To(Equal([]uint64{100}))
		Expect(h.merge.Applied()).To(Equal(uint64(100)))
	})

	When("the cluster is reset", func() {
		It("re-sends present keys as updated, new keys as new, and deletes vanished ones", func() {
			h := inSync(1000, kv("/a", "1", 500), kv("/b", "2", 600))
			h.merge.ResetCluster()
			h.take(h.merge.Start())
			Expect(h.statuses).To(Equal([]m.SyncStatus{m.WaitForDatastore}))
			h.step(needs(3), snap(3, kv("/a", "1'", 2), kv("/c", "3", 3)))
			Expect(h.updates).To(Equal([]m.Update{changed("/a", "1'", 2), added("/c", "3", 3), gone("/b", 3)}))
			Expect(h.view).To(Equal(map[string]string{"/a": "1'", "/c": "3"}))
			Expect(h.merge.Status()).To(Equal(m.InSync))
			Expect(h.merge.Keys()).To(Equal(2))
		})

		It("deletes a carried key as soon as the new cluster's watch deletes it", func() {
			h := inSync(1000, kv("/d/a", "1", 500), kv("/e", "2", 600))
			h.merge.ResetCluster()
			h.step(needs(3), del("/d", 4))
			Expect(h.updates).To(Equal([]m.Update{gone("/d/a", 4)}))
		})
	})
})
