package hwm_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/hwm"
)

var _ = Describe("Flat", func() {
	var f *hwm.Flat

	BeforeEach(func() {
		f = hwm.NewFlat()
		f.StoreUpdate("/a", 100)
		f.StoreUpdate("/a/b", 110)
		f.StoreUpdate("/a//c/", 120) // a key of its own: v3 keys are never normalised
	})

	It("holds every key at its mark, exactly as given", func() {
		Expect(f.ToMap()).To(Equal(map[string]uint64{"/a": 100, "/a/b": 110, "/a//c/": 120}))
		Expect(f.Len()).To(Equal(3))
		Expect(f.StoreUpdate("/a", 0)).To(BeEquivalentTo(100), "index 0 records nothing")
		Expect(f.StoreUpdate("/new", 0)).To(BeZero())
		Expect(f.Len()).To(Equal(3))
	})

	It("raises a mark, returns the old one, and ignores updates at or below it", func() {
		Expect(f.StoreUpdate("/a", 130)).To(BeEquivalentTo(100))
		Expect(f.StoreUpdate("/a", 130)).To(BeEquivalentTo(130))
		Expect(f.StoreUpdate("/a", 90)).To(BeEquivalentTo(130))
		Expect(f.ToMap()).To(HaveKeyWithValue("/a", uint64(130)))
	})

	It("deletes exactly its key: a key below it is a key of its own", func() {
		Expect(f.StoreDeletion("/a", 150)).To(Equal([]string{"/a"}))
		Expect(f.ToMap()).To(Equal(map[string]uint64{"/a/b": 110, "/a//c/": 120}))
	})

	It("keeps a key whose mark is not below the deletion, and returns an empty non-nil slice", func() {
		Expect(f.StoreDeletion("/a/b", 110)).To(BeEmpty())
		Expect(f.StoreDeletion("/a/b", 110)).NotTo(BeNil())
		Expect(f.StoreDeletion("/missing", 500)).To(BeEmpty())
		Expect(f.Len()).To(Equal(3))
	})

	It("sweeps the keys below a limit, sorted", func() {
		Expect(f.DeleteOldKeys(115)).To(Equal([]string{"/a", "/a/b"}))
		Expect(f.DeleteOldKeys(115)).To(BeEmpty())
		Expect(f.ToMap()).To(Equal(map[string]uint64{"/a//c/": 120}))
	})

	When("tracking deletions", func() {
		BeforeEach(func() {
			f.StartTrackingDeletions()
			f.StoreDeletion("/a", 200)
			f.StoreDeletion("/gone", 210) // never held: still refuses older values
		})

		It("refuses older updates of the deleted key and returns the deletion's index", func() {
			Expect(f.StoreUpdate("/a", 150)).To(BeEquivalentTo(200))
			Expect(f.StoreUpdate("/gone", 205)).To(BeEquivalentTo(210))
			Expect(f.ToMap()).NotTo(HaveKey("/a"))
		})

		It("accepts an older update of a key below the deleted one", func() {
			Expect(f.StoreUpdate("/a/x", 150)).To(BeZero())
			Expect(f.ToMap()).To(HaveKeyWithValue("/a/x", uint64(150)))
		})

		It("accepts updates at or above the deletion (comparisons are strict)", func() {
			Expect(f.StoreUpdate("/a", 200)).To(BeZero())
			Expect(f.StoreUpdate("/gone", 211)).To(BeZero())
		})

		It("forgets them when tracking stops, and refuses to sweep while tracking", func() {
			Expect(func() { f.DeleteOldKeys(1) }).To(Panic())
			f.StopTrackingDeletions()
			Expect(f.StoreUpdate("/a", 150)).To(BeZero())
		})
	})
})
