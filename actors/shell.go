package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// lifecycle is an actor that runs on the shell: the shell owns its tasks
// and the Started / Stopping / Restarting handling every actor with
// blocking work shares, and hands it only what is its own.
type lifecycle interface {
	// started runs on Started, with the tasks stopped and of no
	// generation yet.
	started(c actor.Context)
	// received runs for every message from outside: not a lifecycle
	// message, not one a task posted.
	received(c actor.Context, msg any)
	// posted runs for a message that the current generation of task t
	// posted; those of an earlier generation never get here.
	posted(c actor.Context, t *task, msg any)
}

// stopper is a lifecycle with more to stop than its tasks, which the shell
// stops first.
type stopper interface{ stopping() }

// shell is the actor.Actor an actor on the shell runs as.
type shell struct {
	life  lifecycle
	tasks []*task
}

// shellProps returns the props of an actor on the shell. Each incarnation
// is made by newActor from state, which outlives restarts (the one typed
// value an actor keeps across them), and its tasks; the tasks' generations
// are counted per props, so that a restarted actor never takes an earlier
// incarnation's messages for its own.
func shellProps[S any](env *Env, state *S, tasks int, newActor func(state *S, tasks []*task) lifecycle) *actor.Props {
	gens := &atomic.Uint64{}
	return env.Props(func() actor.Actor {
		sh := &shell{tasks: make([]*task, tasks)}
		for i := range sh.tasks {
			t := newTask(gens)
			sh.tasks[i] = &t
		}
		sh.life = newActor(state, sh.tasks)
		return sh
	})
}

// Receive implements actor.Actor.
func (sh *shell) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		sh.life.started(c)
	case *actor.Stopping, *actor.Restarting:
		for _, t := range sh.tasks {
			t.stop()
		}
		if s, ok := sh.life.(stopper); ok {
			s.stopping()
		}
	case *actor.Stopped:
	case taskMessage:
		for _, t := range sh.tasks {
			if msg, ok := t.message(m); ok {
				sh.life.posted(c, t, msg)
				return
			}
		}
	default:
		sh.life.received(c, m)
	}
}

var _ actor.Actor = (*shell)(nil)
