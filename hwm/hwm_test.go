package hwm_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/hwm"
)

var _ = Describe("Tracker", func() {
	var t *hwm.Tracker

	BeforeEach(func() {
		t = hwm.New()
	})

	It("starts empty", func() {
		Expect(t.Len()).To(Equal(0))
		Expect(t.ToMap()).To(BeEmpty())
	})

	It("records nothing for index 0", func() {
		Expect(t.StoreUpdate("/a", 0)).To(BeZero())
		Expect(t.Len()).To(Equal(0))
	})

	When("keys have been stored", func() {
		BeforeEach(func() {
			t.StoreUpdate("/foo/bar/", 100) // the trailing slash is dropped
			t.StoreUpdate("/foo/baz", 110)
			t.StoreUpdate("/foobar/baz", 110)
			t.StoreUpdate("/foo/ba", 120)
			t.StoreUpdate("/baz", 120)
		})

		It("holds every key at its mark", func() {
			Expect(t.ToMap()).To(Equal(map[string]uint64{
				"/foo/bar":    100,
				"/foo/baz":    110,
				"/foobar/baz": 110,
				"/foo/ba":     120,
				"/baz":        120,
			}))
			Expect(t.Len()).To(Equal(5))
		})

		It("raises a mark and returns the old one", func() {
			Expect(t.StoreUpdate("/foo/bar", 105)).To(Equal(uint64(100)))
			Expect(t.ToMap()).To(HaveKeyWithValue("/foo/bar", uint64(105)))
		})

		It("returns 0 for a new key", func() {
			Expect(t.StoreUpdate("/foo/new", 130)).To(BeZero())
			Expect(t.Len()).To(Equal(6))
		})

		It("ignores updates at or below the mark", func() {
			Expect(t.StoreUpdate("/foo/bar/", 90)).To(Equal(uint64(100)))
			Expect(t.StoreUpdate("/foo/bar", 100)).To(Equal(uint64(100)))
			Expect(t.ToMap()).To(HaveKeyWithValue("/foo/bar", uint64(100)))
		})

		It("deletes a directory's subtree but not a sibling sharing its prefix", func() {
			Expect(t.StoreDeletion("/foo", 130)).To(Equal([]string{"/foo/ba", "/foo/bar", "/foo/baz"}))
			Expect(t.ToMap()).To(Equal(map[string]uint64{
				"/baz":        120,
				"/foobar/baz": 110,
			}))
			Expect(t.Len()).To(Equal(2))
		})

		It("deletes a leaf and nothing that merely shares its prefix", func() {
			Expect(t.StoreDeletion("/foo/ba", 130)).To(Equal([]string{"/foo/ba"}))
			Expect(t.ToMap()).NotTo(HaveKey("/foo/ba"))
			Expect(t.ToMap()).To(HaveKey("/foo/bar"))
			Expect(t.ToMap()).To(HaveKey("/foo/baz"))
		})

		It("deletes only the keys older than the deletion", func() {
			Expect(t.StoreDeletion("/foo", 101)).To(Equal([]string{"/foo/bar"}))
			Expect(t.ToMap()).To(Equal(map[string]uint64{
				"/foo/baz":    110,
				"/foobar/baz": 110,
				"/foo/ba":     120,
				"/baz":        120,
			}))
		})

		It("keeps a key whose mark equals the deletion's index", func() {
			Expect(t.StoreDeletion("/foo/baz", 110)).To(BeEmpty())
			Expect(t.ToMap()).To(HaveKey("/foo/baz"))
		})

		It("returns an empty, non-nil slice when a deletion removes nothing", func() {
			deleted := t.StoreDeletion("/nothing/here", 200)
			Expect(deleted).NotTo(BeNil())
			Expect(deleted).To(BeEmpty())
		})

		It("deletes everything when the root is deleted", func() {
			Expect(t.StoreDeletion("/", 200)).To(HaveLen(5))
			Expect(t.Len()).To(Equal(0))
		})

		It("sweeps the keys a snapshot did not refresh, in order", func() {
			t.StoreUpdate("/foo/baz", 150)
			t.StoreUpdate("/baz", 150)
			Expect(t.DeleteOldKeys(150)).To(Equal([]string{"/foo/ba", "/foo/bar", "/foobar/baz"}))
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/foo/baz": 150, "/baz": 150}))
		})

		It("returns an empty, non-nil slice when the sweep removes nothing", func() {
			deleted := t.DeleteOldKeys(50)
			Expect(deleted).NotTo(BeNil())
			Expect(deleted).To(BeEmpty())
			Expect(t.Len()).To(Equal(5))
		})

		When("tracking deletions", func() {
			BeforeEach(func() {
				t.StartTrackingDeletions()
				Expect(t.StoreDeletion("/foo", 130)).To(HaveLen(3))
			})

			It("refuses an older update below the deletion and returns the deletion's index", func() {
				Expect(t.StoreUpdate("/foo/bar", 129)).To(Equal(uint64(130)))
				Expect(t.ToMap()).NotTo(HaveKey("/foo/bar"))
			})

			It("refuses an older update of the deleted key itself", func() {
				Expect(t.StoreUpdate("/foo", 125)).To(Equal(uint64(130)))
				Expect(t.ToMap()).NotTo(HaveKey("/foo"))
			})

			It("accepts an older update to a sibling that shares the prefix", func() {
				Expect(t.StoreUpdate("/foobar/biff", 129)).To(BeZero())
				Expect(t.ToMap()).To(HaveKeyWithValue("/foobar/biff", uint64(129)))
			})

			It("accepts an update at the deletion's index (comparisons are strict)", func() {
				Expect(t.StoreUpdate("/foo/bar", 130)).To(BeZero())
				Expect(t.ToMap()).To(HaveKeyWithValue("/foo/bar", uint64(130)))
			})

			It("accepts a newer update below the deletion", func() {
				Expect(t.StoreUpdate("/foo/bar", 131)).To(BeZero())
				Expect(t.ToMap()).To(HaveKeyWithValue("/foo/bar", uint64(131)))
			})

			It("panics on DeleteOldKeys, naming the mistake", func() {
				Expect(func() { t.DeleteOldKeys(200) }).To(PanicWith(ContainSubstring("tracking deletions")))
			})

			It("forgets the deletions when told to stop", func() {
				Expect(t.StoreUpdate("/foo/bar", 128)).To(Equal(uint64(130)))
				t.StopTrackingDeletions()
				Expect(t.StoreUpdate("/foo/baz", 129)).To(BeZero())
				Expect(t.ToMap()).To(Equal(map[string]uint64{
					"/baz":        120,
					"/foobar/baz": 110,
					"/foo/baz":    129,
				}))
			})

			It("forgets the deletions of an earlier tracking period when restarted", func() {
				t.StartTrackingDeletions()
				Expect(t.StoreUpdate("/foo/bar", 128)).To(BeZero())
			})
		})
	})

	When("tracking nested deletions at rising indexes", func() {
		BeforeEach(func() {
			t.StoreUpdate("/a/b/c/d", 200)
			t.StoreUpdate("/a/b/x", 205)
			t.StartTrackingDeletions()
			Expect(t.StoreDeletion("/a/b/c/d", 210)).To(Equal([]string{"/a/b/c/d"}))
			Expect(t.StoreDeletion("/a/b/c/", 220)).To(BeEmpty())
			Expect(t.StoreDeletion("/a/b/", 230)).To(Equal([]string{"/a/b/x"}))
		})

		It("refuses an update older than the outermost deletion", func() {
			Expect(t.StoreUpdate("/a/b/c/e", 225)).To(Equal(uint64(230)))
			Expect(t.StoreUpdate("/a/b/c/d", 215)).To(Equal(uint64(230)))
			Expect(t.ToMap()).To(BeEmpty())
		})

		It("accepts an update newer than every deletion", func() {
			Expect(t.StoreUpdate("/a/b/c/e", 235)).To(BeZero())
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/a/b/c/e": 235}))
		})

		It("accepts an old update outside the deleted directory", func() {
			Expect(t.StoreUpdate("/a/bc", 201)).To(BeZero())
		})
	})

	When("an older deletion of a subdirectory arrives after a newer one of its parent", func() {
		BeforeEach(func() {
			t.StartTrackingDeletions()
			t.StoreDeletion("/a/b", 230)
			t.StoreDeletion("/a/b/c", 220)
		})

		It("refuses by the newest deletion on the key's path", func() {
			Expect(t.StoreUpdate("/a/b/c/e", 225)).To(Equal(uint64(230)))
		})
	})

	When("an update races a tracked deletion of the same key", func() {
		BeforeEach(func() {
			t.StoreUpdate("/k", 10) // from an earlier snapshot
			t.StartTrackingDeletions()
		})

		It("keeps the deletion when the snapshot value is older", func() {
			Expect(t.StoreDeletion("/k", 12)).To(Equal([]string{"/k"})) // watch
			Expect(t.StoreUpdate("/k", 11)).To(Equal(uint64(12)))       // snapshot at 11
			Expect(t.ToMap()).To(BeEmpty())
		})

		It("keeps the snapshot value when it is newer", func() {
			Expect(t.StoreUpdate("/k", 13)).To(Equal(uint64(10)))    // snapshot at 13
			Expect(t.StoreDeletion("/k", 12)).To(BeEmpty())          // watch, older
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/k": 13})) // the snapshot saw the re-created key
		})
	})

	Describe("key normalisation", func() {
		It("treats spellings etcd treats as one key as one key", func() {
			t.StoreUpdate("/a/b", 1)
			Expect(t.StoreUpdate("a/b", 2)).To(Equal(uint64(1)))
			Expect(t.StoreUpdate("/a/b/", 3)).To(Equal(uint64(2)))
			Expect(t.StoreUpdate("//a//b", 4)).To(Equal(uint64(3)))
			Expect(t.StoreUpdate("/a/./c/../b", 5)).To(Equal(uint64(4)))
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/a/b": 5}))
		})

		It("stores the empty key as the root without disturbing other keys", func() {
			t.StoreUpdate("/a", 1)
			t.StoreUpdate("", 2)
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/": 2, "/a": 1}))
			Expect(t.StoreDeletion("/a", 3)).To(Equal([]string{"/a"}))
			Expect(t.ToMap()).To(Equal(map[string]uint64{"/": 2}))
		})

		It("returns deleted keys in normalised form", func() {
			t.StoreUpdate("x/y/", 1)
			Expect(t.StoreDeletion("x", 2)).To(Equal([]string{"/x/y"}))
		})
	})

	Describe("a directory holding many keys", func() {
		It("survives growing past the small-fan-out limit and shrinking back", func() {
			want := map[string]uint64{}
			for i := range 100 {
				k := "/h/" + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26))
				t.StoreUpdate(k, uint64(i+1))
				want[k] = uint64(i + 1)
			}
			Expect(t.ToMap()).To(Equal(want))
			// "/h/a/..." holds the marks 1, 27, 53 and 79.
			Expect(t.StoreDeletion("/h/a", 1000)).To(Equal([]string{"/h/a/a", "/h/a/b", "/h/a/c", "/h/a/d"}))
			// Of the marks 1..89, those four are gone already.
			Expect(t.DeleteOldKeys(90)).To(HaveLen(89 - 4))
			Expect(t.Len()).To(Equal(11))
			for k, v := range t.ToMap() {
				Expect(v).To(BeNumerically(">=", 90), k)
			}
		})
	})
})
