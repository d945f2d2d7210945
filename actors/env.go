package actors

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/internal/replay"
	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// Delayer yields retry delays (the supervisor's restart backoff is one).
type Delayer interface {
	Next() time.Duration
	Reset()
}

// Env is what every actor of one syncer shares: the etcd source, the
// prefix, the clock, the logger, and the WaitGroup that every goroutine an
// actor starts joins, so that Syncer.Stop can wait for all of them.
type Env struct {
	// Source is etcd, through one of its APIs; nil for a syncer that
	// reads from relays.
	Source source.Source
	Prefix string
	Clock  clock.WithDelayedExecution
	Logger *slog.Logger
	// Goroutines counts every goroutine the actors start but the host's
	// calls, which HostCalls counts: Stop called from inside a host call
	// must not wait for it.
	Goroutines *sync.WaitGroup
	HostCalls  *sync.WaitGroup
	// Stopped is set when the syncer is being stopped: no host call starts
	// after that, and one under way calls the host nothing more.
	Stopped *atomic.Bool
	// NewBackoff returns a fresh retry backoff for transport errors.
	NewBackoff func() Delayer
	// Rand returns a uniform value in [0, n); it jitters the poll interval.
	Rand func(n int64) int64
	// Observer hears about what the actors do, for metrics.
	Observer Observer
	// Runner, when not nil, runs the actors' mailboxes and the goroutines
	// they start, and times their waits; nil means protoactor's default
	// dispatcher, plain goroutines and waits on Clock. A deterministic one
	// (e2e/stepper) makes a schedule replay exactly.
	Runner replay.Runner
}

// Props returns the props of an actor made by producer, run by the Env's
// Runner if it has one.
func (env *Env) Props(producer actor.Producer) *actor.Props {
	if env.Runner != nil {
		return actor.PropsFromProducer(producer, actor.WithDispatcher(env.Runner))
	}
	return actor.PropsFromProducer(producer)
}

// goroutine runs f in a goroutine that wg counts.
func (env *Env) goroutine(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	run := func() {
		defer wg.Done()
		f()
	}
	if env.Runner != nil {
		env.Runner.Go(run)
	} else {
		go run()
	}
}

// NopObserver is an Observer that ignores everything.
type NopObserver struct{}

func (NopObserver) Resync(string)                   {}
func (NopObserver) WatcherRestarted()               {}
func (NopObserver) ClusterReset()                   {}
func (NopObserver) SnapshotRead(time.Duration, int) {}
func (NopObserver) WatchEvent(uint64)               {}
func (NopObserver) Delivered([]messages.Update)     {}
func (NopObserver) Merged(int, uint64, uint64)      {}
func (NopObserver) EtcdIndex(uint64)                {}
func (NopObserver) KeyParseFailed()                 {}
func (NopObserver) ValueDecodeFailed()              {}

var _ Observer = NopObserver{}

// Observer receives the events that metrics count. Its methods are called
// from actor goroutines, concurrently; they must be quick and must not
// block.
type Observer interface {
	// Resync reports a snapshot requested, and why.
	Resync(cause string)
	// WatcherRestarted reports a failed watcher restarted by its supervisor.
	WatcherRestarted()
	// ClusterReset reports an escalated cluster reset or index regression.
	ClusterReset()
	// SnapshotRead reports a snapshot read: how long from request to
	// finish, and how many keys it held.
	SnapshotRead(d time.Duration, keys int)
	// WatchEvent reports an event received on the watch.
	WatchEvent(index uint64)
	// Delivered reports updates delivered to the host.
	Delivered(updates []messages.Update)
	// Merged reports the merger's state after each input: keys the host
	// holds, the highest index applied, and values suppressed so far.
	Merged(keys int, applied uint64, suppressed uint64)
	// EtcdIndex reports etcd's current index as last seen.
	EtcdIndex(index uint64)
	// KeyParseFailed reports a key the decoder did not accept (it went to
	// ParseFailed instead of the stream).
	KeyParseFailed()
	// ValueDecodeFailed reports a value the decoder could not decode (its
	// key was delivered with a nil DecodedValue).
	ValueDecodeFailed()
}

// sleep waits for d on the env's clock, or until ctx is done; it reports
// whether the wait ran its course.
func (env *Env) sleep(ctx context.Context, d time.Duration) bool {
	if env.Runner != nil {
		return env.Runner.Sleep(ctx, d)
	}
	t := env.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}
