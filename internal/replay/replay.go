// Package replay holds what lets a spec run a syncer deterministically, so
// that a random schedule replays exactly from its seed: a Runner for the
// actors' mailboxes, goroutines and waits, and a Rand for every jitter.
// Hosts never set these, so they are not part of supervisor.Config's
// public fields: only this module's packages can import this one.
package replay

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Runner runs everything an actor does: its mailbox (as an
// actor.Dispatcher), the goroutines it starts for blocking calls, and the
// waits in them. e2e/stepper's is deterministic.
type Runner interface {
	actor.Dispatcher
	// Go runs f in a goroutine of its own.
	Go(f func())
	// Sleep waits for d, or until ctx is done; it reports whether the
	// wait ran its course.
	Sleep(ctx context.Context, d time.Duration) bool
}

// Hooks are one syncer's replay hooks; a zero field keeps the default
// (protoactor's dispatcher and plain goroutines; math/rand/v2).
type Hooks struct {
	Runner Runner
	// Rand returns a uniform value in [0, n).
	Rand func(n int64) int64
}

// set is given by package supervisor, which this package cannot import.
var set func(cfg any, h Hooks) any

// Register is how package supervisor gives With its way into a Config;
// nothing else calls it.
func Register(f func(cfg any, h Hooks) any) { set = f }

// With returns cfg (a supervisor.Config) with the hooks h.
func With[C any](cfg C, h Hooks) C { return set(cfg, h).(C) }
