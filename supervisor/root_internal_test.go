package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/messages"
)

// These tests drive the root's supervision on a fake clock, as client-go's
// reflector_test.go drives its backoff: a failure goes in through
// HandleFailure, the clock is stepped, and what the root did comes out of a
// recording actor.Supervisor and of the messages it sends itself. Nothing
// waits on real time but the hop of a timer's message to the probe.

// recordingSupervisor is the actor.Supervisor the root is handed: it
// records what the root asks of it.
type recordingSupervisor struct{ restarted, stopped []string }

func (s *recordingSupervisor) Children() []*actor.PID              { return nil }
func (s *recordingSupervisor) EscalateFailure(reason, message any) {}
func (s *recordingSupervisor) ResumeChildren(pids ...*actor.PID)   {}
func (s *recordingSupervisor) RestartChildren(pids ...*actor.PID) {
	for _, p := range pids {
		s.restarted = append(s.restarted, p.Id)
	}
}
func (s *recordingSupervisor) StopChildren(pids ...*actor.PID) {
	for _, p := range pids {
		s.stopped = append(s.stopped, p.Id)
	}
}

// countingObserver counts what the root reports.
type countingObserver struct {
	actors.NopObserver
	watcherRestarts, resets atomic.Int32
}

func (o *countingObserver) WatcherRestarted() { o.watcherRestarts.Add(1) }
func (o *countingObserver) ClusterReset()     { o.resets.Add(1) }

// messageContext is the actor.Context Receive is given: only Message is
// used on the paths these tests take.
type messageContext struct {
	actor.Context
	msg any
}

func (c messageContext) Message() any { return c.msg }

type rootHarness struct {
	t      *testing.T
	root   *root
	sup    *recordingSupervisor
	clock  *clocktesting.FakeClock
	obs    *countingObserver
	system *actor.ActorSystem
	self   chan any // what the root sent itself
}

// newRootHarness returns a root whose backoff always draws the top of its
// range (ceiling - 1 ns), so that each delay is known.
func newRootHarness(t *testing.T, onReset ResetPolicy) *rootHarness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &rootHarness{
		t:      t,
		sup:    &recordingSupervisor{},
		clock:  clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		obs:    &countingObserver{},
		system: NewSystem(logger),
		self:   make(chan any, 16),
	}
	t.Cleanup(h.system.Shutdown)
	probe := h.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case restartWatcher, failWith:
			h.self <- c.Message()
		}
	}))
	top := func(n int64) int64 { return n - 1 }
	cfg := Config{Clock: h.clock, Logger: logger, OnClusterReset: onReset}
	h.root = &root{
		cfg:    cfg,
		env:    &actors.Env{Observer: h.obs},
		syncer: &Syncer{system: h.system},
		policy: policy{onReset: onReset, backoff: defaultBackoff.newBackoff(h.clock, top), failures: map[string]*failureCount{}},
		self:   probe,
	}
	for _, name := range []string{"consumer", "clusterid", "snapshot", "merger", "watcher"} {
		pid := actor.NewPID("nonhost", "etcdsync/"+name)
		switch name {
		case "consumer":
			h.root.consumer = pid
		case "clusterid":
			h.root.poller = pid
		case "snapshot":
			h.root.snapshot = pid
		case "merger":
			h.root.merger = pid
		case "watcher":
			h.root.watcher = pid
		}
	}
	return h
}

func (h *rootHarness) fail(child *actor.PID, err error) {
	h.root.HandleFailure(h.system, h.sup, child, nil, err, nil)
}

// next returns the next message the root sent itself.
func (h *rootHarness) next() any {
	h.t.Helper()
	select {
	case m := <-h.self:
		return m
	case <-time.After(5 * time.Second):
		h.t.Fatal("the root sent itself nothing")
		return nil
	}
}

// deliver hands the root a message it sent itself, as its mailbox would.
func (h *rootHarness) deliver(m any) { h.root.Receive(messageContext{msg: m}) }

func TestRootBacksOffWatcherRestarts(t *testing.T) {
	h := newRootHarness(t, ResyncOnReset)
	watchErr := errors.New("etcd unreachable")
	want := []time.Duration{800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, ceiling := range want {
		h.fail(h.root.watcher, watchErr)
		if len(h.sup.restarted) != i {
			t.Fatalf("failure %d: the watcher was restarted before its backoff", i+1)
		}
		h.clock.Step(ceiling - 2*time.Nanosecond)
		if !h.clock.HasWaiters() {
			t.Fatalf("failure %d: the restart fired before %v", i+1, ceiling-time.Nanosecond)
		}
		h.clock.Step(time.Nanosecond)
		h.deliver(h.next())
		if got := len(h.sup.restarted); got != i+1 || h.sup.restarted[i] != "etcdsync/watcher" {
			t.Fatalf("failure %d: restarted %v, want the watcher restarted after %v", i+1, h.sup.restarted, ceiling)
		}
	}
	if got := h.obs.watcherRestarts.Load(); got != int32(len(want)) {
		t.Errorf("WatcherRestarted reported %d times, want %d", got, len(want))
	}

	// Two minutes up without a failure: the backoff starts over.
	h.clock.Step(2 * time.Minute)
	h.fail(h.root.watcher, watchErr)
	h.clock.Step(800*time.Millisecond - 2*time.Nanosecond)
	if !h.clock.HasWaiters() {
		t.Fatal("after two quiet minutes the restart fired before 800 ms")
	}
	h.clock.Step(time.Nanosecond)
	h.deliver(h.next())
	if len(h.sup.restarted) != len(want)+1 {
		t.Fatalf("restarted %v: the backoff did not start over at 800 ms", h.sup.restarted)
	}
}

func TestRootStopsOnARestartStorm(t *testing.T) {
	h := newRootHarness(t, ResyncOnReset)
	crash := errors.New("merger bug")
	// Failures more than a minute apart never add up to a storm.
	for i := 0; i < 2*restartStorm; i++ {
		h.fail(h.root.merger, crash)
		h.clock.Step(stormWindow + time.Second)
	}
	if len(h.sup.restarted) != 2*restartStorm {
		t.Fatalf("restarted %d times, want every one of %d spaced failures restarted at once", len(h.sup.restarted), 2*restartStorm)
	}
	h.sup.restarted = nil
	for i := 1; i < restartStorm; i++ {
		h.fail(h.root.merger, crash)
		h.clock.Step(time.Second)
	}
	if len(h.sup.restarted) != restartStorm-1 {
		t.Fatalf("restarted %d times, want %d before the storm", len(h.sup.restarted), restartStorm-1)
	}
	h.fail(h.root.merger, crash)
	if len(h.sup.restarted) != restartStorm-1 {
		t.Fatal("the failure that makes the storm restarted the merger")
	}
	m, ok := h.next().(failWith)
	if !ok || !errors.Is(m.err, crash) || !strings.Contains(m.err.Error(), fmt.Sprintf("etcdsync/merger failed %d times", restartStorm)) {
		t.Fatalf("the root sent itself %#v, want failWith naming the merger's storm", m)
	}
}

func TestRootResetVoidsAPendingWatcherRestart(t *testing.T) {
	h := newRootHarness(t, ResyncOnReset)
	h.fail(h.root.watcher, errors.New("etcd unreachable")) // restart due in 800 ms
	h.fail(h.root.poller, fmt.Errorf("poll: %w", messages.ErrClusterIDChanged))
	if got := strings.Join(h.sup.stopped, " "); got != "etcdsync/watcher etcdsync/merger etcdsync/snapshot etcdsync/clusterid" {
		t.Fatalf("a cluster reset stopped %q, want the whole pipeline", got)
	}
	if h.obs.resets.Load() != 1 {
		t.Errorf("ClusterReset reported %d times, want 1", h.obs.resets.Load())
	}
	// A pipeline child failing while the reset is under way is stopped, not restarted.
	h.fail(h.root.merger, errors.New("late failure"))
	if len(h.sup.restarted) != 0 {
		t.Fatalf("restarted %v during a reset", h.sup.restarted)
	}
	// The reset ends (Receive clears resetting once the old pipeline has
	// terminated, and spawns a new one) before the old timer fires: that
	// timer belongs to a watcher that is gone, and must not restart the new one.
	h.root.resetting = nil
	h.clock.Step(time.Second)
	h.deliver(h.next())
	if len(h.sup.restarted) != 0 {
		t.Fatalf("restarted %v: a restart scheduled before the reset must be void", h.sup.restarted)
	}
}

func TestRootStopsOnResetUnderStopOnReset(t *testing.T) {
	h := newRootHarness(t, StopOnReset)
	h.fail(h.root.snapshot, fmt.Errorf("snapshot: %w", messages.ErrIndexRegressed))
	m, ok := h.next().(failWith)
	if !ok || !errors.Is(m.err, messages.ErrIndexRegressed) {
		t.Fatalf("the root sent itself %#v, want failWith wrapping ErrIndexRegressed", m)
	}
	if len(h.sup.stopped)+len(h.sup.restarted) != 0 {
		t.Errorf("StopOnReset touched the children (stopped %v, restarted %v); stopping the root stops them", h.sup.stopped, h.sup.restarted)
	}
}

func TestRootStopsOnAPoisonBatch(t *testing.T) {
	h := newRootHarness(t, ResyncOnReset)
	h.fail(h.root.consumer, fmt.Errorf("batch of 3: %w", messages.ErrPoisonBatch))
	m, ok := h.next().(failWith)
	if !ok || !errors.Is(m.err, messages.ErrPoisonBatch) {
		t.Fatalf("the root sent itself %#v, want failWith wrapping ErrPoisonBatch", m)
	}
	if len(h.sup.restarted) != 0 {
		t.Errorf("restarted %v on a poison batch", h.sup.restarted)
	}
}

func TestRootRestartsNothingWhileStopping(t *testing.T) {
	h := newRootHarness(t, ResyncOnReset)
	h.fail(h.root.watcher, errors.New("etcd unreachable"))
	h.deliver(&actor.Stopping{})
	if h.clock.HasWaiters() {
		t.Error("Stopping left the watcher's restart timer running")
	}
	h.fail(h.root.merger, errors.New("failure while stopping"))
	h.fail(h.root.poller, messages.ErrClusterIDChanged)
	if len(h.sup.restarted)+len(h.sup.stopped) != 0 || h.obs.resets.Load() != 0 {
		t.Errorf("while stopping: restarted %v, stopped %v, resets %d; want nothing", h.sup.restarted, h.sup.stopped, h.obs.resets.Load())
	}
}
