// The e2e specs run whole syncers: against e2e/etcdsim for fault schedules
// a real etcd cannot produce on demand, and against real etcd processes
// (e2e/etcdproc) for everything that claims to be etcd's behaviour.
package e2e_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/supervisor"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "e2e")
}

var (
	logger *slog.Logger
	system *actor.ActorSystem
)

var _ = BeforeSuite(func() {
	logger = slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
	system = supervisor.NewSystem(logger)
	DeferCleanup(system.Shutdown)
})

// startSyncer starts a syncer with cfg delivering to a new recorder, and
// arranges for it to be stopped, and the recorder's contract checked, when
// the spec ends.
func startSyncer(cfg supervisor.Config) (*supervisor.Syncer, *recorder.Recorder) {
	GinkgoHelper()
	rec := recorder.New()
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	s, err := supervisor.Start(system, cfg, rec)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx context.Context) {
		Expect(s.Stop(ctx)).To(Succeed())
		rec.Close()
		Expect(rec.Violation()).NotTo(HaveOccurred())
	})
	return s, rec
}

// supervisionEvents records the actor system's supervision events until the
// spec ends.
type supervisionEvents struct {
	mu     sync.Mutex
	events []*actor.SupervisorEvent
}

func watchSupervision() *supervisionEvents {
	e := &supervisionEvents{}
	sub := system.EventStream.Subscribe(func(evt any) {
		if se, ok := evt.(*actor.SupervisorEvent); ok {
			e.mu.Lock()
			e.events = append(e.events, se)
			e.mu.Unlock()
		}
	})
	DeferCleanup(func() { system.EventStream.Unsubscribe(sub) })
	return e
}

// Restarts returns how many restart directives named a child called name,
// in any pipeline ("watcher", or "watcher-2" after a reset).
func (e *supervisionEvents) Restarts(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Directive == actor.RestartDirective && childName(ev.Child.Id) == name {
			n++
		}
	}
	return n
}

// pipelineIDs returns the IDs of the live actors a syncer's root spawns
// again on a cluster reset.
func pipelineIDs() []string {
	var ids []string
	for _, bucket := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, id := range bucket.Keys() {
			switch childName(id) {
			case "watcher", "snapshot", "merger", "clusterid", "relay":
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// childName is the name the root gave a child, without its pipeline number.
func childName(id string) string {
	name := id[strings.LastIndex(id, "/")+1:]
	if base, n, ok := strings.Cut(name, "-"); ok && strings.Trim(n, "0123456789") == "" {
		return base
	}
	return name
}
