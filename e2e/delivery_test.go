package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// goodOnly accepts keys below /calico/v1/good, typed as goodKey, and values
// that are not "bad".
type goodOnly struct{}

type goodKey struct{ Name string }

func (goodOnly) DecodeKey(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, prefix+"/good/")
	return goodKey{name}, ok
}

func (goodOnly) DecodeValue(_ any, value string) (any, error) {
	if value == "bad" {
		return nil, errors.New("bad value")
	}
	return strings.ToUpper(value), nil
}

// statusProbe reads Syncer.Status from inside each OnStatusUpdated; the
// first waits for ready, by when syncer is set.
type statusProbe struct {
	*recorder.Recorder
	ready      chan struct{}
	syncer     atomic.Pointer[supervisor.Syncer]
	mu         sync.Mutex
	probed     int
	mismatches []string
}

func (p *statusProbe) OnStatusUpdated(st messages.SyncStatus) {
	<-p.ready
	if s := p.syncer.Load(); s != nil {
		p.mu.Lock()
		p.probed++
		if got := s.Status(); got != st {
			p.mismatches = append(p.mismatches, fmt.Sprintf("told %s, Status said %s", st, got))
		}
		p.mu.Unlock()
	}
	p.Recorder.OnStatusUpdated(st)
}

// typedHost records decoded updates and parse failures.
type typedHost struct {
	*recorder.Recorder
	mu      sync.Mutex
	decoded map[goodKey]any
	failed  []string
}

func (h *typedHost) OnUpdates(updates []messages.Update) {
	h.mu.Lock()
	for _, u := range updates {
		k := u.DecodedKey.(goodKey)
		if u.Type == messages.UpdateTypeDeleted {
			delete(h.decoded, k)
		} else {
			h.decoded[k] = u.DecodedValue
		}
	}
	h.mu.Unlock()
	h.Recorder.OnUpdates(updates)
}

func (h *typedHost) ParseFailed(key, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = append(h.failed, key+"="+value)
}

func (h *typedHost) snapshot() (map[goodKey]any, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[goodKey]any{}
	for k, v := range h.decoded {
		out[k] = v
	}
	return out, append([]string(nil), h.failed...)
}

var _ = Describe("Delivery", func() {
	var (
		sim *etcdsim.Server
		cfg supervisor.Config
	)
	BeforeEach(func() {
		sim = etcdsim.New()
		cfg = loopback.Config()
		cfg.KeysAPI = sim
		cfg.Logger = logger
	})

	It("has Syncer.Status give, from inside OnStatusUpdated, the status being delivered", func(ctx SpecContext) {
		sim.Load(map[string]string{prefix + "/a": "1"})
		host := &statusProbe{Recorder: recorder.New(), ready: make(chan struct{})}
		s, err := supervisor.Start(system, cfg, host)
		Expect(err).NotTo(HaveOccurred())
		host.syncer.Store(s)
		close(host.ready)
		DeferCleanup(s.Stop)
		Eventually(host.InSyncMap).WithContext(ctx).Should(HaveLen(1))
		Expect(s.Status()).To(Equal(messages.InSync), "once the host has seen it, so does everyone")
		host.mu.Lock()
		defer host.mu.Unlock()
		Expect(host.mismatches).To(BeEmpty())
		Expect(host.probed).To(Equal(3), "wait-for-datastore, resync, in-sync")
	}, SpecTimeout(10*time.Second))

	When("a decoder is configured", func() {
		It("types keys and values, reports unparseable keys, and keeps keys whose values do not decode", func(ctx SpecContext) {
			sim.Load(map[string]string{prefix + "/good/a": "x", prefix + "/good/b": "bad", prefix + "/other": "y"})
			cfg.Decoder = goodOnly{}
			host := &typedHost{Recorder: recorder.New(), decoded: map[goodKey]any{}}
			s, err := supervisor.Start(system, cfg, host)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(s.Stop)

			Eventually(host.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{prefix + "/good/a": "x", prefix + "/good/b": "bad"}))
			decoded, failed := host.snapshot()
			Expect(decoded).To(Equal(map[goodKey]any{{"a"}: "X", {"b"}: nil}))
			Expect(failed).To(Equal([]string{prefix + "/other=y"}))

			_, err = sim.Delete(ctx, prefix+"/other", nil)
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() []string { _, f := host.snapshot(); return f }).WithContext(ctx).
				Should(Equal([]string{prefix + "/other=y", prefix + "/other="}), "a deletion's ParseFailed has no value")
		}, SpecTimeout(10*time.Second))
	})

	When("the host is slow", func() {
		It("coalesces per key while it works, and still converges", func(ctx SpecContext) {
			rec := recorder.New()
			slow := &slowHost{Recorder: rec}
			cfg.CoalesceAfter = 16
			s, err := supervisor.Start(system, cfg, slow)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })
			Eventually(rec.InSyncMap).WithContext(ctx).ShouldNot(BeNil())

			// Fewer writes than etcd's event window, paced so the watch
			// keeps up: only the host falls behind.
			const writes, keys = 900, 20
			for i := range writes {
				_, err := sim.Set(ctx, fmt.Sprintf("%s/k%d", prefix, i%keys), fmt.Sprint(i), nil)
				Expect(err).NotTo(HaveOccurred())
				if i%100 == 99 {
					Eventually(sim.WatchesInFlight).WithContext(ctx).Should(Equal(1), "the watch caught up")
				}
			}
			Eventually(rec.InSyncMap).WithContext(ctx).Should(Equal(sim.Map(prefix)))
			calls, updates := rec.Calls()
			Expect(updates).To(BeNumerically("<", writes/2), "updates coalesced per key while the host slept")
			Expect(calls).To(BeNumerically("<", writes/keys))
			Expect(rec.Statuses()).To(HaveExactElements(messages.WaitForDatastore, messages.Resync, messages.InSync), "no resync")
			Expect(rec.Violation()).NotTo(HaveOccurred())
		}, SpecTimeout(20*time.Second))
	})

	When("the host is an actor", func() {
		// startHostActor spawns a hostActor and a syncer delivering to it.
		startHostActor := func(h *hostActor) *supervisor.Syncer {
			GinkgoHelper()
			pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return h }))
			DeferCleanup(func() { system.Root.Stop(pid) })
			cfg.HostPID = pid
			s, err := supervisor.Start(system, cfg, nil)
			Expect(err).NotTo(HaveOccurred())
			return s
		}

		It("sends it every batch and status as messages.Deliver, one at a time", func(ctx SpecContext) {
			sim.Load(map[string]string{prefix + "/a": "1"})
			h := &hostActor{rec: recorder.New()}
			s := startHostActor(h)
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })
			Eventually(h.rec.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{prefix + "/a": "1"}))
			Expect(s.Status()).To(Equal(messages.InSync))
			Expect(h.rec.Violation()).NotTo(HaveOccurred())
		}, SpecTimeout(10*time.Second))

		It("coalesces while a slow host actor works, instead of filling its mailbox", func(ctx SpecContext) {
			h := &hostActor{rec: recorder.New(), delay: 5 * time.Millisecond}
			s := startHostActor(h)
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })
			Eventually(h.rec.InSyncMap).WithContext(ctx).ShouldNot(BeNil())
			const writes, keys = 3000, 30
			for i := range writes {
				_, err := sim.Set(ctx, fmt.Sprintf("%s/k%d", prefix, i%keys), fmt.Sprint(i), nil)
				Expect(err).NotTo(HaveOccurred())
			}
			Eventually(h.rec.InSyncMap).WithContext(ctx).Should(Equal(sim.Map(prefix)))
			Expect(h.delivers()).To(BeNumerically("<", writes/10), "one Deliver at a time, the rest coalesced meanwhile")
			Expect(h.rec.Violation()).NotTo(HaveOccurred())
		}, SpecTimeout(20*time.Second))

		It("delivers a batch again, whole, when the decoder panics on it", func(ctx SpecContext) {
			sim.Load(map[string]string{prefix + "/good/a": "1", prefix + "/good/b": "2"})
			cfg.Decoder = &panicsOnce{Decoder: goodOnly{}, on: "2"}
			h := &hostActor{rec: recorder.New()}
			s := startHostActor(h)
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })
			Eventually(h.rec.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{prefix + "/good/a": "1", prefix + "/good/b": "2"}))
		}, SpecTimeout(10*time.Second))

		It("delivers a batch again when the host actor does not answer it", func(ctx SpecContext) {
			sim.Load(map[string]string{prefix + "/a": "1"})
			cfg.HostAckTimeout = 200 * time.Millisecond
			h := &hostActor{rec: recorder.New(), ignore: 1} // lost, as by a host that restarted
			s := startHostActor(h)
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })
			Eventually(h.rec.InSyncMap).WithContext(ctx).Should(Equal(map[string]string{prefix + "/a": "1"}))
		}, SpecTimeout(10*time.Second))

		It("has had every batch sent to it processed when Stop returns", func(ctx SpecContext) {
			h := &hostActor{rec: recorder.New(), delay: 300 * time.Millisecond}
			s := startHostActor(h)
			Eventually(h.delivers).WithContext(ctx).Should(BeNumerically(">=", 1), "a Deliver is with the host")
			Expect(s.Stop(ctx)).To(Succeed())
			sent := h.delivers()
			Expect(h.answered()).To(Equal(sent), "nothing sent before Stop waits in the host's mailbox")
			Consistently(h.delivers).WithTimeout(300 * time.Millisecond).Should(Equal(sent))
		}, SpecTimeout(10*time.Second))
	})
})

// hostActor is a host actor that applies each Deliver to a recorder, after
// a delay, and answers it, except for the first ignore of them.
type hostActor struct {
	rec    *recorder.Recorder
	delay  time.Duration // the slow host under test, not synchronisation
	ignore int

	mu           sync.Mutex
	got, answers int
}

func (h *hostActor) Receive(c actor.Context) {
	d, ok := c.Message().(messages.Deliver)
	if !ok {
		return
	}
	h.mu.Lock()
	h.got++
	lost := h.got <= h.ignore
	h.mu.Unlock()
	if lost {
		return
	}
	time.Sleep(h.delay)
	if len(d.Updates) > 0 {
		h.rec.OnUpdates(d.Updates)
	}
	if d.Status != 0 {
		h.rec.OnStatusUpdated(d.Status)
	}
	h.mu.Lock()
	h.answers++
	h.mu.Unlock()
	c.Respond(messages.Delivered{})
}

func (h *hostActor) delivers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got
}

func (h *hostActor) answered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answers
}

// panicsOnce is a Decoder that panics the first time it decodes the value
// on.
type panicsOnce struct {
	messages.Decoder
	on       string
	panicked bool
}

func (p *panicsOnce) DecodeValue(k any, value string) (any, error) {
	if value == p.on && !p.panicked {
		p.panicked = true
		panic("a decoder that panics")
	}
	return p.Decoder.DecodeValue(k, value)
}

// slowHost takes 10 ms over every batch.
type slowHost struct{ *recorder.Recorder }

func (h *slowHost) OnUpdates(updates []messages.Update) {
	time.Sleep(10 * time.Millisecond) // the slow host under test, not synchronisation
	h.Recorder.OnUpdates(updates)
}
