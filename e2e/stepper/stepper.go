// Package stepper runs a syncer one thing at a time, in an order drawn from
// a seed, so that a random fault schedule replays exactly: the same seed,
// the same interleaving, the same outcome, on an idle machine or a busy
// one.
//
// A Stepper is the syncer's replay.Runner and clock: every mailbox runs on
// the goroutine that drives the Stepper, the goroutines the actors start
// run only when the Stepper starts them, one at a time, and every wait
// they make (a Sleep, a call into the simulated etcd that Park holds) is
// a point at which the Stepper decides what runs next. Time is the
// Stepper's: it moves only when nothing else can.
//
// # Usage
//
//	st := stepper.New(seed, start)
//	sim := etcdsim.NewWithConfig(etcdsim.Config{Park: st.Park}) // its watches wait through the stepper
//	cfg.KeysAPI, cfg.Clock = st.KeysAPI(sim), st.Clock()
//	cfg = replay.With(cfg, replay.Hooks{Runner: st})
//	s, _ := supervisor.Start(system, cfg, host)
//	ok := st.RunUntil(func() bool { return host.InSync() }, time.Minute) // steps, then moves time
//
// # The caller's duties
//
//  1. Drive it from one goroutine, and touch the simulation (writes,
//     faults) only between calls to Step, Settle or RunUntil, never from
//     another goroutine meanwhile.
//  2. Give the syncer only the simulation wrapped by KeysAPI, and the
//     simulation Park: a call that blocks somewhere the Stepper cannot see
//     stops everything (Settle waits for it forever).
//  3. Stop the syncer with Stop, which steps until it has stopped.
//
// Only the syncer's own goroutines are run this way; protoactor starts none
// for mailboxes with this dispatcher. HTTP cannot be: its client and
// server have goroutines of their own.
package stepper

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v2"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/internal/etcdv2"
	"github.com/etcdsync/etcdsync/internal/replay"
)

// Stepper is a deterministic replay.Runner and clock. Its methods for the
// syncer (Schedule, Go, Sleep, Park, the clock's) are safe for concurrent
// use; the driver's (Settle, Step, Advance, RunUntil, Stop) are called from
// one goroutine.
type Stepper struct {
	rng *rand.Rand

	mu      sync.Mutex
	changed *sync.Cond // signalled when running drops or the queue grows
	queue   []func()   // mailboxes to run, in the order they were scheduled
	starts  []func()   // goroutines to start, in order
	running int        // goroutines started and neither parked nor done
	parked  []*parked  // in the order they parked
	seq     uint64
	now     time.Time
	timers  []*timer
	steps   uint64
}

type parked struct {
	seq      uint64
	ctx      context.Context
	ready    func() bool // nil: only the deadline or ctx
	deadline time.Time   // a Sleep's; zero for a Park
	release  chan struct{}
	what     string
}

// isReady is called with s.mu held, while nothing else runs.
func (p *parked) isReady(now time.Time) bool {
	switch {
	case p.ctx.Err() != nil:
		return true
	case !p.deadline.IsZero():
		return !now.Before(p.deadline)
	}
	return p.ready == nil || p.ready()
}

// New returns a Stepper whose choices come from seed and whose clock reads
// start.
func New(seed uint64, start time.Time) *Stepper {
	s := &Stepper{rng: rand.New(rand.NewPCG(seed, 0x57e9)), now: start}
	s.changed = sync.NewCond(&s.mu)
	return s
}

var _ replay.Runner = (*Stepper)(nil)

// Schedule implements actor.Dispatcher: the mailbox runs when Settle gets
// to it, on the driver's goroutine.
func (s *Stepper) Schedule(fn func()) {
	s.mu.Lock()
	s.queue = append(s.queue, fn)
	s.mu.Unlock()
	s.changed.Broadcast()
}

// Throughput implements actor.Dispatcher.
func (s *Stepper) Throughput() int { return 300 }

// Go implements replay.Runner: f starts when Settle gets to it.
func (s *Stepper) Go(f func()) {
	s.mu.Lock()
	s.starts = append(s.starts, f)
	s.mu.Unlock()
	s.changed.Broadcast()
}

// Sleep implements replay.Runner: a wait on the Stepper's clock.
func (s *Stepper) Sleep(ctx context.Context, d time.Duration) bool {
	s.mu.Lock()
	deadline := s.now.Add(d)
	s.mu.Unlock()
	s.park(&parked{ctx: ctx, deadline: deadline, what: "sleep"})
	return ctx.Err() == nil
}

// Park blocks the calling goroutine, one the Stepper started, until the
// driver lets it go on, which it does only once ready() holds or ctx is
// done. ready is called on the driver's goroutine while nothing else runs;
// nil means at once. what names the wait in Parked.
func (s *Stepper) Park(ctx context.Context, ready func() bool, what string) {
	s.park(&parked{ctx: ctx, ready: ready, what: what})
}

func (s *Stepper) park(p *parked) {
	p.release = make(chan struct{})
	s.mu.Lock()
	s.seq++
	p.seq = s.seq
	s.parked = append(s.parked, p)
	s.running--
	s.mu.Unlock()
	s.changed.Broadcast()
	<-p.release
}

// Settle runs everything that can run without a choice: every mailbox
// scheduled, and every goroutine started, one at a time, each until it
// parks or ends. It returns when nothing runs and nothing waits to start.
func (s *Stepper) Settle() {
	for {
		s.mu.Lock()
		for s.running > 0 {
			s.changed.Wait()
		}
		if len(s.queue) > 0 {
			fn := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			fn()
			continue
		}
		if len(s.starts) > 0 {
			f := s.starts[0]
			s.starts = s.starts[1:]
			s.running++
			s.mu.Unlock()
			go func() {
				defer s.done()
				f()
			}()
			continue
		}
		s.mu.Unlock()
		return
	}
}

func (s *Stepper) done() {
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	s.changed.Broadcast()
}

// Step settles, then lets one parked goroutine that is ready go on, drawn
// from the seed, and settles again. It reports whether one was ready.
func (s *Stepper) Step() bool {
	s.Settle()
	s.mu.Lock()
	var ready []*parked
	for _, p := range s.parked {
		if p.isReady(s.now) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		s.mu.Unlock()
		return false
	}
	p := ready[s.rng.IntN(len(ready))]
	s.parked = slices.DeleteFunc(s.parked, func(q *parked) bool { return q == p })
	s.running++
	s.steps++
	s.mu.Unlock()
	close(p.release)
	s.Settle()
	return true
}

// Advance moves the clock to the next deadline, of a timer or a Sleep, and
// fires the timers due, on the driver's goroutine; it reports whether there
// was one.
func (s *Stepper) Advance() bool {
	s.mu.Lock()
	var next time.Time
	for _, t := range s.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	for _, p := range s.parked {
		if d := p.deadline; !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if next.IsZero() {
		s.mu.Unlock()
		return false
	}
	if next.After(s.now) {
		s.now = next
	}
	var due []*timer
	s.timers = slices.DeleteFunc(s.timers, func(t *timer) bool {
		if !t.at.After(s.now) {
			due = append(due, t)
			return true
		}
		return false
	})
	s.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
	return true
}

// RunUntil steps while anything is ready and, when nothing is, checks
// done() and else moves time, until done() holds or the clock has moved on
// by budget. It reports whether done() held. done is checked only when the
// syncer is quiet, waiting for etcd or for time: a state it passes through
// on its way does not count.
func (s *Stepper) RunUntil(done func() bool, budget time.Duration) bool {
	end := s.Clock().Now().Add(budget)
	for {
		if s.Step() {
			continue
		}
		if done() {
			return true
		}
		if s.Clock().Now().After(end) || !s.Advance() {
			return false
		}
	}
}

// Stop runs stop (a Syncer's Stop) on a goroutine of its own and steps
// until it returns. Nothing moves until stop has asked the actors to stop,
// so that the steps before the stop do not depend on when its goroutine
// runs.
func (s *Stepper) Stop(stop func(context.Context) error) error {
	s.mu.Lock()
	before := len(s.queue)
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- stop(context.Background()) }()
	for posted := false; ; {
		select {
		case err := <-errc:
			return err
		default:
		}
		s.mu.Lock()
		posted = posted || len(s.queue) > before
		idle := len(s.queue) == 0 && len(s.starts) == 0 && s.running == 0 && !s.anyReady()
		s.mu.Unlock()
		if !posted || idle {
			// Stop has not posted yet, or waits for goroutines of its own.
			select {
			case err := <-errc:
				return err
			case <-time.After(time.Millisecond):
			}
			if posted {
				s.Advance()
			}
			continue
		}
		s.Step()
	}
}

func (s *Stepper) anyReady() bool {
	for _, p := range s.parked {
		if p.isReady(s.now) {
			return true
		}
	}
	return false
}

// Steps returns how many parked goroutines were let go on so far.
func (s *Stepper) Steps() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steps
}

// KeysAPI wraps the simulation the syncer calls: every Get, and every
// watch request, parks first, so that the Stepper decides the order in
// which calls reach the simulation.
func (s *Stepper) KeysAPI(keys etcdv2.KeysAPI) etcdv2.KeysAPI { return steppedKeys{s, keys} }

type steppedKeys struct {
	s    *Stepper
	keys etcdv2.KeysAPI
}

func (k steppedKeys) Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error) {
	k.s.Park(ctx, nil, "get "+key)
	return k.keys.Get(ctx, key, opts)
}

func (k steppedKeys) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	return steppedWatcher{k.s, k.keys.Watcher(key, opts)}
}

type steppedWatcher struct {
	s *Stepper
	w client.Watcher
}

func (w steppedWatcher) Next(ctx context.Context) (*client.Response, error) {
	w.s.Park(ctx, nil, "watch")
	return w.w.Next(ctx)
}

// Clock returns the Stepper's clock, for Config.Clock and the simulation.
func (s *Stepper) Clock() *Clock { return &Clock{s} }

// Clock is a Stepper's clock: time moves only by Advance.
type Clock struct{ s *Stepper }

var _ clock.WithDelayedExecution = (*Clock)(nil)

// Now implements clock.PassiveClock.
func (c *Clock) Now() time.Time {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.now
}

// Since implements clock.PassiveClock.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

type timer struct {
	s  *Stepper
	at time.Time
	f  func()
	c  chan time.Time
}

// AfterFunc implements clock.WithDelayedExecution: f runs on the driver's
// goroutine when Advance reaches its time.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &timer{s: s, at: s.now.Add(d), f: f}
	s.timers = append(s.timers, t)
	return t
}

// NewTimer implements clock.Clock; its channel receives when Advance
// reaches its time. (The actors wait through Sleep, which the Stepper
// sees; a goroutine blocked on this channel it would not.)
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	ch := make(chan time.Time, 1)
	t := c.AfterFunc(d, nil).(*timer)
	c.s.mu.Lock()
	t.c = ch
	t.f = func() { ch <- c.Now() }
	c.s.mu.Unlock()
	return t
}

// After implements clock.Clock.
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Tick implements clock.Clock; the syncer does not tick.
func (c *Clock) Tick(time.Duration) <-chan time.Time { panic("stepper: Tick is not supported") }

// Sleep implements clock.Clock; it would block where the Stepper cannot
// see, so the syncer sleeps through Stepper.Sleep instead.
func (c *Clock) Sleep(time.Duration) {
	panic("stepper: Clock.Sleep is not supported; use Stepper.Sleep")
}

func (t *timer) C() <-chan time.Time { return t.c }

func (t *timer) Stop() bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	n := len(t.s.timers)
	t.s.timers = slices.DeleteFunc(t.s.timers, func(x *timer) bool { return x == t })
	return len(t.s.timers) < n
}

func (t *timer) Reset(d time.Duration) bool {
	active := t.Stop()
	t.s.mu.Lock()
	t.at = t.s.now.Add(d)
	t.s.timers = append(t.s.timers, t)
	t.s.mu.Unlock()
	return active
}
