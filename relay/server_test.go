package relay_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// upstream plays the syncer: it calls the server's callbacks, one at a
// time, and keeps the map a host applying them would hold.
type upstream struct {
	rs   *relay.Server
	mu   sync.Mutex
	keys map[string]string
	rev  uint64
}

func (u *upstream) set(kv ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var batch []messages.Update
	for i := 0; i < len(kv); i += 2 {
		u.rev++
		t := messages.UpdateTypeUpdated
		if _, ok := u.keys[kv[i]]; !ok {
			t = messages.UpdateTypeNew
		}
		u.keys[kv[i]] = kv[i+1]
		batch = append(batch, messages.Update{Key: kv[i], Value: kv[i+1], Revision: u.rev, Type: t})
	}
	u.rs.OnUpdates(batch)
}

func (u *upstream) del(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rev++
	delete(u.keys, key)
	u.rs.OnUpdates([]messages.Update{{Key: key, Revision: u.rev, Type: messages.UpdateTypeDeleted}})
}

func (u *upstream) status(s messages.SyncStatus) { u.rs.OnStatusUpdated(s) }

func (u *upstream) Map() map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]string{}
	for k, v := range u.keys {
		out[k] = v
	}
	return out
}

func key(i int) string { return fmt.Sprintf("%s/k%03d", prefix, i) }

var _ = Describe("relay.Server", func() {
	var (
		cfg       relay.Config
		clusterID atomic.Pointer[string] // what the syncer would say
		rs        *relay.Server
		base      string
		up        *upstream
	)
	BeforeEach(func() {
		cfg = relay.Config{}
		id := "c0ffee01"
		clusterID.Store(&id)
	})
	JustBeforeEach(func() {
		rs, base = startServer(cfg, &clusterID)
		up = &upstream{rs: rs, keys: map[string]string{}}
		up.status(messages.WaitForDatastore)
		up.status(messages.Resync)
		up.set(key(1), "a", key(2), "b", key(3), "c")
		up.status(messages.InSync)
	})

	When("clients connect in a burst", func() {
		BeforeEach(func() { cfg.SnapshotShare = time.Minute }) // the burst's length does not matter

		It("sends every one the same snapshot, built once, then the deltas", func(ctx SpecContext) {
			const n = 20
			clients := make([]*client, n)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Go(func() {
					defer GinkgoRecover()
					clients[i], _ = dial(ctx, base, dialOpts{})
				})
			}
			wg.Wait()
			for _, c := range clients {
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(c.Status()).To(Equal(messages.InSync))
			}
			st := rs.Stats()
			Expect(st.SnapshotsBuilt).To(BeEquivalentTo(1))
			Expect(st.SnapshotsSent).To(BeEquivalentTo(n))
			Expect(st.Clients).To(Equal(n))

			up.set(key(4), "d", key(1), "a2")
			up.del(key(2))
			for _, c := range clients {
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(c.Snapshots()).To(Equal(1), "deltas, not another snapshot")
			}
		}, SpecTimeout(20*time.Second))
	})

	When("the sharing window has passed", func() {
		BeforeEach(func() { cfg.SnapshotShare = 20 * time.Millisecond })

		It("builds a fresh snapshot for the next client, once the view has changed", func(ctx SpecContext) {
			c, _ := dial(ctx, base, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			up.set(key(9), "changed") // else the one snapshot of this state serves every client
			Eventually(func() uint64 {
				d, _ := dial(ctx, base, dialOpts{})
				Eventually(d.Map).WithContext(ctx).Should(Equal(up.Map()))
				return rs.Stats().SnapshotsBuilt
			}).WithContext(ctx).Should(BeEquivalentTo(2))
		}, SpecTimeout(10*time.Second))
	})

	Describe("resume", func() {
		// connectAndLeave returns what a client held when it went away.
		connectAndLeave := func(ctx SpecContext) *wire.Mirror {
			c, resp := dial(ctx, base, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			up.set(key(5), "e")
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			resp.Body.Close()
			Eventually(c.ended).WithContext(ctx).Should(BeTrue())
			m := c.mirror()
			Expect(m.ClusterID).To(Equal(*clusterID.Load()))
			Expect(m.Revision).To(Equal(up.rev))
			return m
		}

		It("within the retained log sends only the missing deltas, no snapshot", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			up.set(key(6), "f")
			up.del(key(1))
			c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(c.Status()).To(Equal(messages.InSync))
			Expect(c.mirror().Resumed).To(BeTrue())
			Expect(c.Snapshots()).To(Equal(0))
			Expect(rs.Stats().Resumes).To(BeEquivalentTo(1))
		}, SpecTimeout(10*time.Second))

		When("snapshots are not shared", func() {
			BeforeEach(func() { cfg.SnapshotShare = time.Nanosecond }) // each client's is its own

			It("from a client that left during a resync, whose map is past its last position, sends a snapshot", func(ctx SpecContext) {
				c, resp := dial(ctx, base, dialOpts{})
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(c.mirror().Revision).To(BeZero(), "the resync's batches gave no position, nor does a snapshot after them")
				up.set(key(5), "e") // a batch in sync: a position
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				inSyncAt := up.rev
				up.status(messages.Resync)
				up.set(key(1), "resynced", key(9), "new") // a resync's batch: no resume position
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				resp.Body.Close()
				Eventually(c.ended).WithContext(ctx).Should(BeTrue())
				m := c.mirror()
				Expect(m.Revision).To(BeZero(), "the resync's frames moved its map past %d: no relay may resume it there", inSyncAt)

				By("a client that connects meanwhile gets a snapshot with no resume position")
				d, _ := dial(ctx, base, dialOpts{})
				Eventually(d.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(d.mirror().Revision).To(BeZero())

				up.status(messages.InSync)
				r, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
				Eventually(r.Map).WithContext(ctx).Should(Equal(up.Map()))
				Eventually(r.Status).WithContext(ctx).Should(Equal(messages.InSync))
				Expect(r.Snapshots()).To(Equal(1))
			}, SpecTimeout(10*time.Second))
		})

		It("tells a client resumed at the head of a quiet relay the status at its position", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			// What a client held that had applied a status with no
			// position after its last one (as every client did before
			// PROTOCOL.md's resume rule); or any client whose status is
			// not the relay's at its position.
			m.Status = messages.Resync
			c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(c.Status).WithContext(ctx).Should(Equal(messages.InSync), "nothing was written since: no later frame will tell it")
			Expect(c.mirror().Resumed).To(BeTrue())
			Expect(c.Snapshots()).To(Equal(0))
			Expect(c.mirror().Revision).To(Equal(m.Revision))
			Expect(c.Map()).To(Equal(up.Map()))
		}, SpecTimeout(10*time.Second))

		It("with a revision the relay never reached gets a snapshot", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision + 100, from: m})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(c.Snapshots()).To(Equal(1))
		}, SpecTimeout(10*time.Second))

		It("with another cluster ID gets a snapshot", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			c, _ := dial(ctx, base, dialOpts{clusterID: "0bad", revision: m.Revision, from: m})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(c.Snapshots()).To(Equal(1))
			Expect(rs.Stats().Resumes).To(BeEquivalentTo(0))
		}, SpecTimeout(10*time.Second))

		It("after the upstream's cluster ID changed gets a snapshot", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			other := "c0ffee02"
			clusterID.Store(&other)
			up.set(key(7), "g")
			c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(c.Snapshots()).To(Equal(1))
			Expect(c.mirror().ClusterID).NotTo(Equal(other), "no position in the new cluster before it is in sync there")
			up.status(messages.InSync)
			up.set(key(8), "h")
			Eventually(func() string { return c.mirror().ClusterID }).WithContext(ctx).Should(Equal(other))
		}, SpecTimeout(10*time.Second))

		It("across an upstream reset (WaitForDatastore again) gets a snapshot", func(ctx SpecContext) {
			m := connectAndLeave(ctx)
			up.status(messages.WaitForDatastore) // the syncer rebuilt against a reset etcd
			up.status(messages.Resync)
			up.set(key(7), "g")
			up.status(messages.InSync)
			c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(c.Snapshots()).To(Equal(1))
		}, SpecTimeout(10*time.Second))

		When("the log no longer holds the client's revision", func() {
			BeforeEach(func() { cfg.LogEntries = 4 })

			It("gets a snapshot", func(ctx SpecContext) {
				m := connectAndLeave(ctx)
				for i := range 10 {
					up.set(key(10+i), "x")
				}
				c, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: m})
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(c.Snapshots()).To(Equal(1))
				Expect(rs.Stats().LogEntries).To(Equal(4))
			}, SpecTimeout(10*time.Second))
		})
	})

	When("a client stops reading", func() {
		BeforeEach(func() {
			cfg.LogEntries = 16
			cfg.WriteTimeout = time.Minute // it is slow, not dead
		})

		It("blocks neither the callbacks nor another client, and gets a fresh snapshot once it reads again", func(ctx SpecContext) {
			slow, _ := dial(ctx, base, dialOpts{rcvbuf: 4096})
			fast, _ := dial(ctx, base, dialOpts{})
			Eventually(slow.Map).WithContext(ctx).Should(Equal(up.Map()))
			slow.pause()

			// Far more than the socket buffers hold: the slow stream's
			// writer blocks, and the log moves past its position.
			value := strings.Repeat("v", 32<<10)
			pushed := make(chan struct{})
			go func() {
				defer GinkgoRecover()
				defer close(pushed)
				for i := range 1000 {
					up.set(key(i%50), fmt.Sprintf("%d-%s", i, value))
				}
			}()
			Eventually(pushed).WithContext(ctx).Should(BeClosed(), "OnUpdates waited for a client")
			// The fast client may itself fall behind a writer this quick,
			// and catch up by snapshot: it converges all the same.
			Eventually(fast.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(slow.Snapshots()).To(Equal(1))

			slow.resume()
			Eventually(slow.Map).WithContext(ctx).Should(Equal(up.Map()))
			// At least one: the server's socket buffer may have taken more
			// than one snapshot while the client was paused.
			Expect(slow.Snapshots()).To(BeNumerically(">=", 2), "a fresh snapshot, on the same stream")
			Expect(rs.Stats().SnapshotsSent).To(BeNumerically(">=", 3))
			Expect(slow.Err()).NotTo(HaveOccurred())
		}, SpecTimeout(60*time.Second))
	})

	Describe("snapshot memory", func() {
		// stuck dials a client that takes its snapshot's first bytes and
		// then reads nothing: the stream holds its snapshot while the
		// write blocks.
		stuck := func(ctx SpecContext) *client {
			c, _ := dial(ctx, base, dialOpts{rcvbuf: 4096})
			c.pause()
			return c
		}
		// big makes the view a snapshot no socket buffers hold (12.5 MiB).
		big := func() {
			value := strings.Repeat("v", 256<<10)
			for i := range 50 {
				up.set(key(i), value)
			}
		}

		When("snapshots are not shared by time", func() {
			BeforeEach(func() {
				cfg.SnapshotShare = time.Nanosecond
				cfg.WriteTimeout = time.Minute
			})

			It("gives clients that do not read one snapshot of one state, not one each", func(ctx SpecContext) {
				big()
				for range 4 {
					stuck(ctx)
				}
				Eventually(func() uint64 { st := rs.Stats(); return st.SnapshotsBuilt + st.SnapshotsShared }).WithContext(ctx).
					Should(BeEquivalentTo(4), "every stream has its snapshot")
				Expect(rs.Stats().SnapshotsSent).To(BeZero(), "and is still writing it")
				Expect(rs.Stats().SnapshotsBuilt).To(BeEquivalentTo(1), "the view did not change")
			}, SpecTimeout(20*time.Second))

			It("gives a client the snapshot a slow reader still holds while the log holds what followed it", func(ctx SpecContext) {
				big()
				stuck(ctx)
				Eventually(func() uint64 { return rs.Stats().SnapshotsBuilt }).WithContext(ctx).Should(BeEquivalentTo(1))
				up.set(key(100), "later")
				c, _ := dial(ctx, base, dialOpts{})
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Expect(rs.Stats().SnapshotsBuilt).To(BeEquivalentTo(1), "the held snapshot, then the log")
			}, SpecTimeout(20*time.Second))
		})

		When("the snapshots slow readers hold are over SnapshotBytes", func() {
			BeforeEach(func() {
				cfg.SnapshotShare = time.Nanosecond
				cfg.WriteTimeout = time.Minute
				cfg.LogEntries = 4
				cfg.SnapshotBytes = 1 << 20
			})

			It("sheds the slowest reader, whose snapshot the log has moved past, to build the next", func(ctx SpecContext) {
				big()
				slow := stuck(ctx)
				Eventually(func() uint64 { return rs.Stats().SnapshotsBuilt }).WithContext(ctx).Should(BeEquivalentTo(1))
				for i := range 10 {
					up.set(key(200+i), "x") // past the log's 4 entries: the held snapshot is stale
				}
				c, _ := dial(ctx, base, dialOpts{})
				Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
				Eventually(func() map[string]uint64 { return rs.Stats().Ended }).WithContext(ctx).WithTimeout(5*time.Second).
					Should(HaveKeyWithValue(relay.EndShed, BeEquivalentTo(1)), "long before WriteTimeout")
				Expect(rs.Stats().Clients).To(Equal(1))
				Expect(rs.Stats().SnapshotsBuilt).To(BeEquivalentTo(2))
				slow.resume()
				Eventually(slow.ended).WithContext(ctx).Should(BeTrue(), "its stream was cut")
			}, SpecTimeout(20*time.Second))
		})
	})

	When("a client reads nothing for longer than the write timeout", func() {
		BeforeEach(func() { cfg.WriteTimeout = 200 * time.Millisecond })

		It("is dropped, and the others keep their streams", func(ctx SpecContext) {
			stuck, _ := dial(ctx, base, dialOpts{rcvbuf: 4096})
			fast, _ := dial(ctx, base, dialOpts{})
			Eventually(stuck.Map).WithContext(ctx).Should(Equal(up.Map()))
			stuck.pause()
			value := strings.Repeat("v", 32<<10)
			Eventually(func() int {
				up.set(key(1), value+time.Now().String())
				return rs.Stats().Clients
			}).WithContext(ctx).Should(Equal(1))
			Expect(rs.Stats().Ended).To(HaveKeyWithValue(relay.EndSlow, BeEquivalentTo(1)), "dropped as slow")
			Eventually(fast.Map).WithContext(ctx).Should(Equal(up.Map()))
			Expect(fast.ended()).To(BeFalse())
			st := rs.Stats()
			Expect(st.BytesSent).To(BeNumerically(">", 32<<10))
			Expect(st.MaxLag).To(BeZero(), "the fast client has read everything")
			stuck.resume()
		}, SpecTimeout(30*time.Second))
	})

	It("makes an in-sync status at an index a resume position, so that clients of a quiet relay resume", func(ctx SpecContext) {
		during, _ := dial(ctx, base, dialOpts{})
		Eventually(during.Map).WithContext(ctx).Should(Equal(up.Map()))
		up.status(messages.Resync)
		up.set(key(7), "g")
		at := up.rev + 5 // etcd moved on outside the prefix
		rs.OnStatusAt(messages.InSync, at)
		Eventually(func() uint64 { return during.mirror().Revision }).WithContext(ctx).Should(Equal(at),
			"a client reading through the resync gets the position with the status")

		after, resp := dial(ctx, base, dialOpts{})
		Eventually(after.Map).WithContext(ctx).Should(Equal(up.Map()))
		m := after.mirror()
		Expect(m.ClusterID).To(Equal(*clusterID.Load()))
		Expect(m.Revision).To(Equal(at), "a snapshot taken at the in-sync status is a position")
		resp.Body.Close()
		Eventually(after.ended).WithContext(ctx).Should(BeTrue())

		again, _ := dial(ctx, base, dialOpts{clusterID: m.ClusterID, revision: m.Revision, from: after.mirror()})
		Eventually(again.Map).WithContext(ctx).Should(Equal(up.Map()))
		Expect(again.mirror().Resumed).To(BeTrue(), "no write came since, and none is needed")
		Expect(again.Snapshots()).To(Equal(0))
	}, SpecTimeout(10*time.Second))

	When("it serves a prefix given with a trailing slash", func() {
		BeforeEach(func() { cfg.Prefix = prefix + "/" })

		It("says the prefix in its one form in the hello", func(ctx SpecContext) {
			resp, err := http.Get(base + wire.StreamPath + "?" + query(dialOpts{}).Encode())
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			f, err := wire.NewDecoder(resp.Body, 0).Next()
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Type).To(Equal(wire.TypeHello))
			Expect(f.Prefix).To(Equal(prefix))
		}, SpecTimeout(10*time.Second))
	})

	It("passes every status on, in order with the deltas", func(ctx SpecContext) {
		c, _ := dial(ctx, base, dialOpts{})
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		Expect(c.Status()).To(Equal(messages.InSync))
		up.status(messages.Resync)
		Eventually(c.Status).WithContext(ctx).Should(Equal(messages.Resync))
		up.set(key(9), "z")
		up.status(messages.InSync)
		Eventually(c.Status).WithContext(ctx).Should(Equal(messages.InSync))
		Expect(c.Map()).To(Equal(up.Map()), "in-sync arrives after the deltas before it")
	}, SpecTimeout(10*time.Second))

	When("pings are due", func() {
		BeforeEach(func() { cfg.PingInterval = 20 * time.Millisecond })

		It("pings a client that advertised pings, and only such a client", func(ctx SpecContext) {
			pinged, _ := dial(ctx, base, dialOpts{features: "ping,some-future-feature"})
			plain, _ := dial(ctx, base, dialOpts{})
			Eventually(pinged.Pings).WithContext(ctx).Should(BeNumerically(">=", 3))
			Consistently(plain.Pings).WithContext(ctx).WithTimeout(200 * time.Millisecond).Should(Equal(0))
			Expect(plain.mirror().Hellos).To(Equal(1))
		}, SpecTimeout(10*time.Second))
	})

	It("splits snapshots and deltas into frames under the client's limit, however large the values", func(ctx SpecContext) {
		big := strings.Repeat("x", 200<<10) // 40 of them are past wire.DefaultMaxFrame
		kv := make([]string, 0, 80)
		for i := range 40 {
			kv = append(kv, key(100+i), fmt.Sprint(i)+big)
		}
		up.set(kv...)
		c, _ := dial(ctx, base, dialOpts{})
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		up.set(kv...) // one batch of 8 MB, as a delta
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		Expect(c.Err()).NotTo(HaveOccurred())
		Expect(c.ended()).To(BeFalse())
	}, SpecTimeout(20*time.Second))

	It("streams zstd to a client that accepts it", func(ctx SpecContext) {
		c, resp := dial(ctx, base, dialOpts{zstd: true})
		Expect(resp.Header.Get("Content-Encoding")).To(Equal("zstd"))
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		up.set(key(8), "h")
		up.del(key(3))
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
	}, SpecTimeout(10*time.Second))

	When("MaxClients streams are open", func() {
		BeforeEach(func() { cfg.MaxClients, cfg.RetryAfter = 2, 7*time.Second })

		It("refuses one more with 503, Retry-After and an error frame, and serves again once one leaves", func(ctx SpecContext) {
			a, respA := dial(ctx, base, dialOpts{})
			b, _ := dial(ctx, base, dialOpts{})
			Eventually(a.Map).WithContext(ctx).Should(Equal(up.Map()))
			Eventually(b.Map).WithContext(ctx).Should(Equal(up.Map()))
			_, resp := dial(ctx, base, dialOpts{})
			Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
			Expect(resp.Header.Get("Retry-After")).To(Equal("7"))
			f := errorFrame(resp)
			Expect(f.Code).To(Equal(wire.CodeTooManyClients))
			Expect(f.RetryAfter).To(Equal(7))
			Expect(f.Message).To(ContainSubstring("at most 2 clients"))
			Expect(rs.Stats().Refused).To(BeEquivalentTo(1))

			respA.Body.Close()
			Eventually(func() int { return rs.Stats().Clients }).WithContext(ctx).Should(Equal(1))
			c, _ := dial(ctx, base, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		}, SpecTimeout(10*time.Second))
	})

	DescribeTable("refuses a malformed handshake naming the field, and keeps serving",
		func(ctx SpecContext, path, query string, wantStatus int, wantField string) {
			resp, err := http.Get(base + path + "?" + query)
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.StatusCode).To(Equal(wantStatus))
			f := errorFrame(resp)
			Expect(f.Field).To(Equal(wantField))
			Expect(f.Message).NotTo(BeEmpty())
			Expect(rs.Stats().BadRequests).To(BeEquivalentTo(1))

			c, _ := dial(ctx, base, dialOpts{})
			Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		},
		Entry("another protocol version", "/etcdsync/relay/v2/stream", "prefix="+prefix, http.StatusBadRequest, "version"),
		Entry("not a relay path", "/v2/keys/calico", "", http.StatusNotFound, "path"),
		Entry("no prefix", wire.StreamPath, "", http.StatusBadRequest, "prefix"),
		Entry("another prefix", wire.StreamPath, "prefix=/other", http.StatusBadRequest, "prefix"),
		Entry("a revision that is not a number", wire.StreamPath, "prefix="+prefix+"&clusterID=ab&revision=x1", http.StatusBadRequest, "revision"),
		Entry("a revision without a cluster ID", wire.StreamPath, "prefix="+prefix+"&revision=5", http.StatusBadRequest, "clusterID"),
		Entry("a cluster ID that is not hex", wire.StreamPath, "prefix="+prefix+"&clusterID=zz&revision=5", http.StatusBadRequest, "clusterID"),
		Entry("a feature list with garbage", wire.StreamPath, "prefix="+prefix+"&features=ping,%00", http.StatusBadRequest, "features"),
		Entry("a parameter given twice", wire.StreamPath, "prefix="+prefix+"&prefix="+prefix, http.StatusBadRequest, "prefix"),
		Entry("an oversized query", wire.StreamPath, "prefix="+prefix+"&pad="+strings.Repeat("x", 5000), http.StatusRequestURITooLong, "query"),
	)

	It("refuses a request with a body", func(ctx SpecContext) {
		resp, err := http.Post(base+wire.StreamPath+"?prefix="+prefix, "text/plain", strings.NewReader("hi"))
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusMethodNotAllowed))
		Expect(errorFrame(resp).Field).To(Equal("method"))
	})

	It("keeps serving after garbage bytes on its port", func(ctx SpecContext) {
		c, _ := dial(ctx, base, dialOpts{})
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		for _, garbage := range []string{"\x00\xff\x16\x03\x01 binary\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", strings.Repeat("A", 64<<10) + "\r\n\r\n"} {
			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			Expect(err).NotTo(HaveOccurred())
			_, _ = conn.Write([]byte(garbage))
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			reply, _ := io.ReadAll(conn) // net/http answers 400 or 431 and closes
			conn.Close()
			Expect(string(reply)).To(MatchRegexp(`^HTTP/1.1 [45]\d\d `), "an HTTP error, and the connection closed")
		}
		up.set(key(1), "after garbage")
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		d, _ := dial(ctx, base, dialOpts{})
		Eventually(d.Map).WithContext(ctx).Should(Equal(up.Map()))
	}, SpecTimeout(20*time.Second))

	It("ends its streams with a shutting-down error frame when closed, and refuses new ones", func(ctx SpecContext) {
		c, _ := dial(ctx, base, dialOpts{})
		Eventually(c.Map).WithContext(ctx).Should(Equal(up.Map()))
		rs.Close()
		Eventually(c.ended).WithContext(ctx).Should(BeTrue())
		Expect(c.Err()).To(MatchError(ContainSubstring(wire.CodeShuttingDown)))
		_, resp := dial(ctx, base, dialOpts{})
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
		Expect(errorFrame(resp).Code).To(Equal(wire.CodeShuttingDown))
	}, SpecTimeout(10*time.Second))
})

var _ = Describe("relay.New", func() {
	It("names the bad field", func() {
		_, err := relay.New(relay.Config{Prefix: "calico"})
		Expect(err).To(MatchError(ContainSubstring("Prefix")))
		_, err = relay.New(relay.Config{Prefix: "/p", LogEntries: -1})
		Expect(err).To(MatchError(ContainSubstring("LogEntries")))
		_, err = relay.New(relay.Config{Prefix: "/p", PingInterval: -time.Second})
		Expect(err).To(MatchError(ContainSubstring("PingInterval")))
	})
})
