package migrate_test

import (
	"errors"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/internal/migrate"
)

var _ = Describe("Diff", func() {
	It("puts what differs or is missing, deletes what want lacks, in key order, and counts the rest", func() {
		want := map[string]migrate.Entry{
			"/p/same":    {Value: "1"},
			"/p/changed": {Value: "new"},
			"/p/missing": {Value: "m"},
			"/p/ttl":     {Value: "t", Expires: 100},
			"/p/ttlsame": {Value: "t", Expires: 100},
			"/p/noLease": {Value: "x"},
			"/p/foreign": {Value: "f"},
		}
		have := map[string]migrate.Entry{
			"/p/same":    {Value: "1"},
			"/p/changed": {Value: "old"},
			"/p/ttl":     {Value: "t", Expires: 99}, // refreshed in v2: a new second
			"/p/ttlsame": {Value: "t", Expires: 100},
			"/p/noLease": {Value: "x", Expires: 100}, // the TTL was removed in v2
			"/p/foreign": {Value: "f", Foreign: true},
			"/p/extra":   {Value: "gone"},
		}
		ops, unchanged := migrate.Diff(want, have)
		Expect(unchanged).To(Equal(2))
		Expect(ops).To(Equal([]migrate.Op{
			{Key: "/p/changed", Value: "new"},
			{Key: "/p/extra", Delete: true},
			{Key: "/p/foreign", Value: "f"},
			{Key: "/p/missing", Value: "m"},
			{Key: "/p/noLease", Value: "x"},
			{Key: "/p/ttl", Value: "t", Expires: 100},
		}))
	})

	It("finds nothing to do when both sides are equal", func() {
		m := map[string]migrate.Entry{"/p/a": {Value: "1"}, "/p/b": {Value: "2", Expires: 5}}
		ops, unchanged := migrate.Diff(m, m)
		Expect(ops).To(BeEmpty())
		Expect(unchanged).To(Equal(2))
	})
})

var _ = Describe("Batcher", func() {
	put := func(key string, size int) migrate.Op {
		return migrate.Op{Key: key, Value: strings.Repeat("v", size)}
	}
	keys := func(batches [][]migrate.Op) [][]string {
		var out [][]string
		for _, b := range batches {
			var ks []string
			for _, op := range b {
				ks = append(ks, op.Key)
			}
			out = append(out, ks)
		}
		return out
	}

	It("cuts at MaxOps", func() {
		ops := []migrate.Op{put("a", 1), put("b", 1), put("c", 1), {Key: "d", Delete: true}, put("e", 1)}
		batches, err := migrate.Batcher{MaxOps: 2}.Split(ops)
		Expect(err).NotTo(HaveOccurred())
		Expect(keys(batches)).To(Equal([][]string{{"a", "b"}, {"c", "d"}, {"e"}}))
	})

	It("cuts before the op that would pass MaxBytes, counting keys, values and framing", func() {
		// Each op is 1 + 100 + 32 bytes: three fit in 400, four do not.
		ops := []migrate.Op{put("a", 100), put("b", 100), put("c", 100), put("d", 100), put("e", 100)}
		batches, err := migrate.Batcher{MaxOps: 128, MaxBytes: 400}.Split(ops)
		Expect(err).NotTo(HaveOccurred())
		Expect(keys(batches)).To(Equal([][]string{{"a", "b", "c"}, {"d", "e"}}))
	})

	It("takes etcd's defaults: 128 ops, 1.5 MiB less a margin; a 1 MiB value goes alone", func() {
		var ops []migrate.Op
		for i := range 300 {
			ops = append(ops, put(string(rune('a'+i%26))+strings.Repeat("k", i), 1))
		}
		batches, err := migrate.Batcher{}.Split(ops)
		Expect(err).NotTo(HaveOccurred())
		Expect(batches).To(HaveLen(3))
		Expect(batches[0]).To(HaveLen(128))

		big := []migrate.Op{put("a", 1<<20), put("b", 1<<20), put("c", 10)}
		batches, err = migrate.Batcher{}.Split(big)
		Expect(err).NotTo(HaveOccurred())
		Expect(keys(batches)).To(Equal([][]string{{"a"}, {"b", "c"}}))
	})

	It("refuses an op bigger than MaxBytes on its own, naming its key", func() {
		_, err := migrate.Batcher{MaxBytes: 100}.Split([]migrate.Op{put("small", 1), put("huge", 200)})
		Expect(errors.Is(err, migrate.ErrOpTooLarge)).To(BeTrue())
		Expect(err).To(MatchError(ContainSubstring(`"huge"`)))
	})

	It("returns no batch for no ops", func() {
		batches, err := migrate.Batcher{}.Split(nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(batches).To(BeEmpty())
	})
})

var _ = Describe("Leases", func() {
	It("names the expiry second in the lease ID, and knows its own from others'", func() {
		const s = int64(1_800_000_000)
		id := migrate.LeaseID(s)
		Expect(id).To(BeNumerically(">", 0))
		got, ours := migrate.ExpirySecond(id)
		Expect(ours).To(BeTrue())
		Expect(got).To(Equal(s))
		Expect(migrate.LeaseID(s)).NotTo(Equal(migrate.LeaseID(s + 1)))
		_, ours = migrate.ExpirySecond(0x694d8d3f2a5b1c07) // an etcd-made ID
		Expect(ours).To(BeFalse())
	})

	It("rounds a v2 expiration up to the second the key is gone at", func() {
		Expect(migrate.ExpirySecondOf(time.Unix(100, 0))).To(Equal(int64(100)))
		Expect(migrate.ExpirySecondOf(time.Unix(100, 1))).To(Equal(int64(101)))
		Expect(migrate.ExpirySecondOf(time.Unix(100, 999_999_999))).To(Equal(int64(101)))
	})

	It("grants the seconds left, at least one", func() {
		now := time.Unix(1000, 500_000_000)
		Expect(migrate.LeaseTTL(1010, now)).To(Equal(int64(10)))
		Expect(migrate.LeaseTTL(1000, now)).To(Equal(int64(1)))
		Expect(migrate.LeaseTTL(990, now)).To(Equal(int64(1)))
	})
})
