package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
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
		cfg = supervisor.LoopbackConfig()
		cfg.KeysAPI = sim
		cfg.Logger = logger
	})

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
		It("sends it every batch and status as messages.Deliver", func(ctx SpecContext) {
			sim.Load(map[string]string{prefix + "/a": "1"})
			got := make(chan messages.Deliver, 100)
			host := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
				if d, ok := c.Message().(messages.Deliver); ok {
					got <- d
				}
			}))
			DeferCleanup(func() { system.Root.Stop(host) })
			cfg.HostPID = host
			s, err := supervisor.Start(system, cfg, nil)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func(ctx context.Context) { Expect(s.Stop(ctx)).To(Succeed()) })

			var view = map[string]string{}
			var last messages.SyncStatus
			Eventually(func() messages.SyncStatus {
				for {
					select {
					case d := <-got:
						for _, u := range d.Updates {
							view[u.Key] = u.Value
						}
						if d.Status != 0 {
							last = d.Status
						}
					default:
						return last
					}
				}
			}).WithContext(ctx).Should(Equal(messages.InSync))
			Expect(view).To(Equal(map[string]string{prefix + "/a": "1"}))
			Expect(s.Status()).To(Equal(messages.InSync))
		}, SpecTimeout(10*time.Second))
	})
})

// slowHost takes 10 ms over every batch.
type slowHost struct{ *recorder.Recorder }

func (h *slowHost) OnUpdates(updates []messages.Update) {
	time.Sleep(10 * time.Millisecond) // the slow host under test, not synchronisation
	h.Recorder.OnUpdates(updates)
}
