package actors

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// task is the blocking work an actor runs outside its Receive (an etcd
// call, a watch, a host call): one goroutine at a time per actor, started
// through the Env, cancelled when the actor stops, restarts or starts the
// next, and whose messages come back to the actor's mailbox tagged, so that
// those of a task since replaced are dropped here, in one place (as
// protoactor's ReenterAfter brings a continuation back to its actor).
//
// A task lives in the actor and is touched only by Receive; its generation
// counter is shared through the props, so that a restarted actor's first
// task never takes an earlier incarnation's messages for its own.
type task struct {
	gens   *atomic.Uint64
	gen    uint64
	cancel context.CancelFunc
}

// taskMessage is a message a task posted to its actor.
type taskMessage struct {
	gen uint64
	msg any
}

// newTask returns a task whose generations are counted by gens.
func newTask(gens *atomic.Uint64) task { return task{gens: gens} }

// start stops the task running, if any, and runs work in a goroutine that
// wg counts, with a context cancelled by stop, and post, which sends a
// message to the actor from any goroutine.
func (t *task) start(c actor.Context, env *Env, wg *sync.WaitGroup, work func(ctx context.Context, post func(msg any))) {
	t.stop()
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	post := t.poster(c)
	env.goroutine(wg, func() { work(ctx, post) })
}

// poster begins a new generation and returns a function that posts messages
// of it to the actor, for a task's goroutine or a timer.
func (t *task) poster(c actor.Context) func(msg any) {
	t.gen = t.gens.Add(1)
	root, self, gen := c.ActorSystem().Root, c.Self(), t.gen
	return func(msg any) { root.Send(self, taskMessage{gen, msg}) }
}

// stop cancels the running task; messages it still posts are dropped.
func (t *task) stop() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
	t.gen = 0
}

// message returns what m carries if it is a message of the current
// generation.
func (t *task) message(m taskMessage) (any, bool) {
	if m.gen == 0 || m.gen != t.gen {
		return nil, false
	}
	return m.msg, true
}
