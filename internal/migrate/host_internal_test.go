package migrate

import (
	"context"
	"errors"
	"io"
	"log/slog"

	g "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/messages"
)

// fakeV2 is v2 as the Host reads it: keys with their modifiedIndex and TTL.
type fakeV2 struct {
	keys  map[string]V2Key
	reads int
}

func (f *fakeV2) Snapshot(context.Context, string) (V2Snapshot, error) {
	f.reads++
	s := V2Snapshot{Keys: map[string]V2Key{}}
	for k, v := range f.keys {
		s.Keys[k] = v
	}
	return s, nil
}

func (f *fakeV2) Key(_ context.Context, key string) (V2Key, bool, error) {
	f.reads++
	v, ok := f.keys[key]
	return v, ok, nil
}

// fakeV3 is the target: its keys, the revision each write txn takes, and
// the next Apply's failure.
type fakeV3 struct {
	keys     map[string]Entry
	rev      int64
	failNext error
}

func (f *fakeV3) ReadAll(context.Context) (map[string]Entry, int64, error) {
	m := map[string]Entry{}
	for k, v := range f.keys {
		m[k] = v
	}
	return m, f.rev, nil
}

func (f *fakeV3) ReadKeys(_ context.Context, keys []string) (map[string]Entry, error) {
	m := map[string]Entry{}
	for _, k := range keys {
		if v, ok := f.keys[k]; ok {
			m[k] = v
		}
	}
	return m, nil
}

func (f *fakeV3) Apply(_ context.Context, ops []Op) (Result, error) {
	if err := f.failNext; err != nil {
		f.failNext = nil
		return Result{}, err
	}
	var r Result
	for _, op := range ops {
		if op.Delete {
			delete(f.keys, op.Key)
			r.Deleted++
		} else {
			f.keys[op.Key] = Entry{Value: op.Value, Expires: op.Expires}
			r.Put++
			r.PutKeys = append(r.PutKeys, op.Key)
		}
	}
	if len(ops) > 0 {
		f.rev++
		r.Txns, r.Revision = 1, f.rev
	}
	return r, nil
}

var _ = g.Describe("Host", func() {
	var (
		v2   *fakeV2
		v3   *fakeV3
		host *Host
		ctx  = context.Background()
	)
	upd := func(t messages.UpdateType, key, value string, rev uint64) messages.Update {
		return messages.Update{Type: t, Key: key, Value: value, Revision: rev}
	}
	flush := func() bool {
		g.GinkgoHelper()
		again, err := host.flush(ctx)
		Expect(err).NotTo(HaveOccurred())
		return again
	}
	g.BeforeEach(func() {
		v2 = &fakeV2{keys: map[string]V2Key{
			"/p/a":     {Entry: Entry{Value: "1"}, Modified: 10},
			"/p/dir/b": {Entry: Entry{Value: "2"}, Modified: 11},
			"/p/ttl":   {Entry: Entry{Value: "3", Expires: 5000}, Modified: 12},
		}}
		v3 = &fakeV3{keys: map[string]Entry{
			"/p/a":     {Value: "1"},     // right already
			"/p/stray": {Value: "old"},   // not in v2
			"/p/ttl":   {Value: "stale"}, // wrong
		}, rev: 40}
		host = NewHost()
		host.Prefix, host.V2, host.V3 = "/p", v2, v3
		host.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		host.OnStatusAt(messages.Resync, 0)
		host.OnUpdates([]messages.Update{
			upd(messages.UpdateTypeNew, "/p/a", "1", 10),
			upd(messages.UpdateTypeNew, "/p/dir/b", "2", 11),
			upd(messages.UpdateTypeNew, "/p/ttl", "3", 12),
		})
	})

	g.It("writes nothing before the view is in sync", func() {
		Expect(flush()).To(BeFalse())
		Expect(v3.rev).To(Equal(int64(40)))
		Expect(host.Ready()).To(BeFalse())
	})

	g.It("uses a read of both sides begun during the resync, writing only values the view agrees with", func() {
		host.prefetch(ctx)
		read := <-host.pre // done: the fakes may change now
		pre := make(chan both, 1)
		pre <- read
		host.pre = pre
		// After the early read, v2 changed a key and deleted another; the
		// view (the syncer's snapshot) is newer. v3's stray key is deleted.
		v2.keys["/p/a"] = V2Key{Entry: Entry{Value: "1b"}, Modified: 20}
		delete(v2.keys, "/p/dir/b")
		host.OnUpdates([]messages.Update{upd(messages.UpdateTypeUpdated, "/p/a", "1b", 20),
			upd(messages.UpdateTypeDeleted, "/p/dir/b", "", 21)})
		host.OnStatusAt(messages.InSync, 21)
		reads := v2.reads
		Expect(flush()).To(BeTrue(), "/p/a waits: the early read has its old value")
		Expect(v2.reads).To(Equal(reads), "the early read was used")
		Expect(v3.keys).To(Equal(map[string]Entry{"/p/a": {Value: "1"}, "/p/ttl": {Value: "3", Expires: 5000}}))
		Expect(flush()).To(BeFalse())
		Expect(v3.keys).To(Equal(map[string]Entry{"/p/a": {Value: "1b"}, "/p/ttl": {Value: "3", Expires: 5000}}))
		Expect(host.Ready()).To(BeTrue())
	})

	g.When("the syncer reports in-sync", func() {
		g.BeforeEach(func() {
			host.OnStatusAt(messages.InSync, 12)
			Expect(flush()).To(BeFalse())
		})

		g.It("makes v3 equal to v2 with the TTLs v2 answers, deleting v3's extra key, in one txn", func() {
			Expect(v3.keys).To(Equal(map[string]Entry{
				"/p/a":     {Value: "1"},
				"/p/dir/b": {Value: "2"},
				"/p/ttl":   {Value: "3", Expires: 5000},
			}))
			Expect(v3.rev).To(Equal(int64(41)))
			st := host.Stats()
			Expect(st).To(Equal(Stats{Written: 2, Deleted: 1, Unchanged: 1, Txns: 1, Applied: 12, Ready: true}))
			Expect(host.Copied()).To(BeClosed())
			Expect(host.Settled()).To(BeClosed())
		})

		g.It("writes a later change key by key, and nothing for an update that changes no value", func() {
			v2.keys["/p/a"] = V2Key{Entry: Entry{Value: "1"}, Modified: 13}
			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeUpdated, "/p/a", "1", 13)})
			Expect(host.Ready()).To(BeFalse())
			Expect(flush()).To(BeFalse())
			Expect(v3.rev).To(Equal(int64(41)))
			Expect(host.Stats().Applied).To(Equal(uint64(13)))

			delete(v2.keys, "/p/dir/b")
			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeDeleted, "/p/dir/b", "", 14)})
			Expect(flush()).To(BeFalse())
			Expect(v3.keys).NotTo(HaveKey("/p/dir/b"))
			Expect(host.Stats()).To(HaveField("Deleted", uint64(2)))
			Expect(host.Ready()).To(BeTrue())
		})

		g.It("leaves a key v2 has changed again until the syncer's update for it", func() {
			v2.keys["/p/a"] = V2Key{Entry: Entry{Value: "newer"}, Modified: 16}
			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeUpdated, "/p/a", "new", 15)})
			Expect(flush()).To(BeTrue())
			Expect(v3.keys["/p/a"].Value).To(Equal("1"))
			Expect(host.Ready()).To(BeFalse())

			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeUpdated, "/p/a", "newer", 16)})
			Expect(flush()).To(BeFalse())
			Expect(v3.keys["/p/a"].Value).To(Equal("newer"))
			Expect(host.Ready()).To(BeTrue())
		})

		g.It("takes v2's expiry for a key refreshed at a later index with the same value", func() {
			v2.keys["/p/ttl"] = V2Key{Entry: Entry{Value: "3", Expires: 6000}, Modified: 20}
			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeUpdated, "/p/ttl", "3", 12)})
			Expect(flush()).To(BeFalse())
			Expect(v3.keys["/p/ttl"]).To(Equal(Entry{Value: "3", Expires: 6000}))
			Expect(host.Ready()).To(BeTrue())
		})

		g.It("keeps every key of a failed write, not ready, and writes them on the next flush", func() {
			v2.keys["/p/c"] = V2Key{Entry: Entry{Value: "c"}, Modified: 17}
			host.OnUpdates([]messages.Update{upd(messages.UpdateTypeNew, "/p/c", "c", 17)})
			v3.failNext = errors.New("connection reset")
			_, err := host.flush(ctx)
			Expect(err).To(MatchError("connection reset"))
			Expect(host.Ready()).To(BeFalse())
			Expect(host.Stats().Err).To(Equal("connection reset"))

			Expect(flush()).To(BeFalse())
			Expect(v3.keys).To(HaveKeyWithValue("/p/c", Entry{Value: "c"}))
			Expect(host.Ready()).To(BeTrue())
		})

		g.It("after a cluster reset, compares everything again once back in sync", func() {
			host.OnStatusAt(messages.WaitForDatastore, 0)
			Expect(host.Stats().Resets).To(Equal(1))
			v2.keys = map[string]V2Key{"/p/a": {Entry: Entry{Value: "1"}, Modified: 3}}
			host.OnStatusAt(messages.Resync, 0)
			host.OnUpdates([]messages.Update{
				upd(messages.UpdateTypeUpdated, "/p/a", "1", 3),
				upd(messages.UpdateTypeDeleted, "/p/dir/b", "", 3),
				upd(messages.UpdateTypeDeleted, "/p/ttl", "", 3),
			})
			host.OnStatusAt(messages.InSync, 3)
			Expect(flush()).To(BeFalse())
			Expect(v3.keys).To(Equal(map[string]Entry{"/p/a": {Value: "1"}}))
			Expect(host.Stats().Applied).To(Equal(uint64(3)))
			Expect(host.Ready()).To(BeTrue())
		})
	})
})
