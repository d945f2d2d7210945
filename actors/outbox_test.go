package actors_test

import (
	"fmt"
	"maps"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
)

var _ = Describe("Outbox", func() {
	var o *actors.Outbox
	BeforeEach(func() { o = &actors.Outbox{FoldAt: 1} }) // fold as soon as two updates wait

	take := func() m.Deliver {
		GinkgoHelper()
		d, ok := o.Take()
		Expect(ok).To(BeTrue())
		o.Done()
		return d
	}

	When("a batch ends inside an etcd index", func() {
		// Two keys of one directory delete at index 12, pushed by two
		// merge steps: a host handed the first alone would hold a state
		// etcd never had, and a relay would announce 12 with /b to come.
		It("holds it back until a Push ends the index", func() {
			o.Push(m.Deliver{Updates: []m.Update{gone("/a", 12)}, Partial: true})
			_, ok := o.Take()
			Expect(ok).To(BeFalse(), "index 12 is not whole yet")
			o.Push(m.Deliver{Updates: []m.Update{gone("/b", 12)}})
			Expect(take().Updates).To(Equal([]m.Update{gone("/a", 12), gone("/b", 12)}))
		})

		It("hands it over once an empty Push ends the index (its last change emitted nothing)", func() {
			o.Push(m.Deliver{Updates: []m.Update{gone("/a", 12)}, Partial: true})
			o.Push(m.Deliver{})
			Expect(take().Updates).To(Equal([]m.Update{gone("/a", 12)}))
		})

		It("hands it over with a status that closes it: the rest will not come", func() {
			o.Push(m.Deliver{Updates: []m.Update{gone("/a", 12)}, Partial: true})
			o.Push(m.Deliver{Status: m.Resync})
			d := take()
			Expect(d.Updates).To(Equal([]m.Update{gone("/a", 12)}))
			Expect(d.Status).To(Equal(m.Resync))
		})

		It("still hands over what came before, in its own batch", func() {
			o.Push(m.Deliver{Updates: []m.Update{added("/x", "1", 11)}, Status: m.InSync, Index: 11})
			o.Push(m.Deliver{Updates: []m.Update{gone("/a", 12)}, Partial: true})
			d := take()
			Expect(d.Updates).To(Equal([]m.Update{added("/x", "1", 11)}))
			_, ok := o.Take()
			Expect(ok).To(BeFalse())
		})
	})

	It("hands over one batch at a time", func() {
		o.Push(m.Deliver{Updates: []m.Update{added("/a", "1", 1)}})
		d, ok := o.Take()
		Expect(ok).To(BeTrue())
		Expect(d.Updates).To(Equal([]m.Update{added("/a", "1", 1)}))
		o.Push(m.Deliver{Updates: []m.Update{added("/b", "2", 2)}})
		_, ok = o.Take()
		Expect(ok).To(BeFalse(), "the host is still busy")
		o.Done()
		Expect(take().Updates).To(Equal([]m.Update{added("/b", "2", 2)}))
		_, ok = o.Take()
		Expect(ok).To(BeFalse(), "nothing left")
	})

	DescribeTable("coalesces a key's updates while the host is busy",
		func(updates []m.Update, want []m.Update) {
			o.Push(m.Deliver{Updates: []m.Update{added("/busy", "x", 1)}})
			_, _ = o.Take() // in flight
			for _, u := range updates {
				o.Push(m.Deliver{Updates: []m.Update{u}})
			}
			o.Done()
			d, ok := o.Take()
			if want == nil {
				Expect(ok).To(BeFalse())
				return
			}
			Expect(d.Updates).To(Equal(want))
		},
		Entry("the last write wins", []m.Update{changed("/k", "1", 5), changed("/k", "2", 6)}, []m.Update{changed("/k", "2", 6)}),
		Entry("a new key stays new", []m.Update{added("/k", "1", 5), changed("/k", "2", 6)}, []m.Update{added("/k", "2", 6)}),
		Entry("created and deleted meanwhile: nothing", []m.Update{added("/k", "1", 5), gone("/k", 6)}, nil),
		Entry("updated then deleted: deleted", []m.Update{changed("/k", "1", 5), gone("/k", 6)}, []m.Update{gone("/k", 6)}),
		Entry("deleted then created again: updated", []m.Update{gone("/k", 5), added("/k", "2", 6)}, []m.Update{changed("/k", "2", 6)}),
		Entry("created, deleted, created: new", []m.Update{added("/k", "1", 5), gone("/k", 6), added("/k", "3", 7)}, []m.Update{added("/k", "3", 7)}),
		Entry("other keys keep their first-seen order", []m.Update{added("/b", "1", 5), added("/a", "1", 6), changed("/b", "2", 7)},
			[]m.Update{added("/b", "2", 7), added("/a", "1", 6)}),
	)

	It("never coalesces across a status change, and ends each batch with its status", func() {
		o.Push(m.Deliver{Updates: []m.Update{added("/a", "1", 1)}, Status: m.Resync})
		o.Push(m.Deliver{Updates: []m.Update{changed("/a", "2", 2)}, Status: m.InSync})
		o.Push(m.Deliver{Updates: []m.Update{changed("/a", "3", 3)}})
		Expect(take()).To(Equal(m.Deliver{Updates: []m.Update{added("/a", "1", 1)}, Status: m.Resync}))
		Expect(take()).To(Equal(m.Deliver{Updates: []m.Update{changed("/a", "2", 2)}, Status: m.InSync}))
		Expect(take()).To(Equal(m.Deliver{Updates: []m.Update{changed("/a", "3", 3)}}))
	})

	It("delivers a status with no updates", func() {
		o.Push(m.Deliver{Status: m.WaitForDatastore})
		Expect(take()).To(Equal(m.Deliver{Updates: []m.Update{}, Status: m.WaitForDatastore}))
	})

	It("holds one entry per key however many events a slow host misses", func() {
		// At most one entry per key folded, plus what waits to be folded:
		// up to FoldAt, or as many as the folded entries, whichever is more.
		for foldAt, bound := range map[int]int{1: 50 + 50, actors.DefaultFoldAt: 50 + actors.DefaultFoldAt} {
			o = &actors.Outbox{FoldAt: foldAt}
			o.Push(m.Deliver{Updates: []m.Update{added("/busy", "x", 1)}})
			_, _ = o.Take()
			for i := range 100_000 {
				k := fmt.Sprintf("/k%d", i%50)
				o.Push(m.Deliver{Updates: []m.Update{changed(k, fmt.Sprint(i), uint64(10+i))}})
			}
			Expect(o.Pending()).To(BeNumerically("<=", bound))
			o.Done()
			d, ok := o.Take()
			Expect(ok).To(BeTrue())
			Expect(d.Updates).To(HaveLen(50))
		}
	})

	It("hands a host that keeps up the merger's batch as it came", func() {
		o = &actors.Outbox{}
		batch := []m.Update{added("/a", "1", 1), changed("/a", "2", 2)}
		o.Push(m.Deliver{Updates: batch})
		d, ok := o.Take()
		Expect(ok).To(BeTrue())
		Expect(d.Updates).To(Equal(batch))
		Expect(&d.Updates[0]).To(BeIdenticalTo(&batch[0]), "no copy")
	})

	It("leaves the host exactly where applying every update would, over random pushes and takes", func() {
		r := rand.New(rand.NewPCG(7, 7))
		direct, host := map[string]string{}, map[string]string{}
		apply := func(view map[string]string, us []m.Update) {
			for _, u := range us {
				_, had := view[u.Key]
				switch u.Type {
				case m.UpdateTypeNew:
					Expect(had).To(BeFalse(), "new for a key the host has: %v", u)
					view[u.Key] = u.Value
				case m.UpdateTypeUpdated:
					Expect(had).To(BeTrue(), "updated for a key the host lacks: %v", u)
					view[u.Key] = u.Value
				case m.UpdateTypeDeleted:
					Expect(had).To(BeTrue(), "deleted for a key the host lacks: %v", u)
					delete(view, u.Key)
				}
			}
		}
		for i := range 20_000 {
			k := fmt.Sprintf("/k%d", r.IntN(20))
			var u m.Update
			_, has := direct[k]
			switch {
			case has && r.IntN(3) == 0:
				u = gone(k, uint64(i))
			case has:
				u = changed(k, fmt.Sprint(i), uint64(i))
			default:
				u = added(k, fmt.Sprint(i), uint64(i))
			}
			var status m.SyncStatus
			if r.IntN(50) == 0 {
				status = m.SyncStatus(1 + r.IntN(3))
			}
			apply(direct, []m.Update{u})
			o.Push(m.Deliver{Updates: []m.Update{u}, Status: status})
			if r.IntN(10) == 0 { // the host finishes a batch now and then
				if _, busy := o.InFlight(); busy {
					o.Done()
				}
				if d, ok := o.Take(); ok {
					apply(host, d.Updates)
				}
			}
		}
		for {
			if _, busy := o.InFlight(); busy {
				o.Done()
			}
			d, ok := o.Take()
			if !ok {
				break
			}
			apply(host, d.Updates)
		}
		Expect(maps.Equal(host, direct)).To(BeTrue())
	})
})
