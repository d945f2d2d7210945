package supervisor

import (
	"time"

	"k8s.io/utils/clock"
)

// restartBackoff yields the delays before restarting a failed actor: exponential,
// with full jitter, forgetting past failures once the actor has stayed up
// for ResetAfter. It never sleeps; it reads its clock and its randomness
// from fields, so tests can pin both. Not safe for concurrent use.
//
// protoactor-go's own exponential strategy is linear with nanosecond jitter
// and stamps time.Now; this replaces it.
type restartBackoff struct {
	Initial    time.Duration // first ceiling; doubles per failure
	Max        time.Duration // the ceiling's cap
	ResetAfter time.Duration // a failure this long after the last starts over
	Clock      clock.PassiveClock
	// Rand returns a uniform value in [0, n); n > 0.
	Rand func(n int64) int64

	failures int       // consecutive failures counted so far
	last     time.Time // when the last failure was counted
}

// defaultBackoff is the restart backoff (ARCHITECTURE.md, Supervision): 0.8 s doubling to 30 s,
// reset after two minutes without a failure.
var defaultBackoff = BackoffConfig{Initial: 800 * time.Millisecond, Max: 30 * time.Second, ResetAfter: 2 * time.Minute}

// newBackoff returns a restartBackoff with these bounds, reading c and
// drawing from rand.
func (b BackoffConfig) newBackoff(c clock.PassiveClock, rand func(int64) int64) *restartBackoff {
	return &restartBackoff{Initial: b.Initial, Max: b.Max, ResetAfter: b.ResetAfter, Clock: c, Rand: rand}
}

// Next counts a failure and returns how long to wait before the restart: a
// uniform draw from [0, ceiling), where the ceiling is Initial doubled once
// per earlier consecutive failure, capped at Max.
func (b *restartBackoff) Next() time.Duration {
	now := b.Clock.Now()
	if b.failures > 0 && now.Sub(b.last) >= b.ResetAfter {
		b.failures = 0
	}
	b.last = now
	ceiling := b.Ceiling()
	b.failures++
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(b.Rand(int64(ceiling)))
}

// Ceiling returns the upper bound of the next delay, without counting a
// failure.
func (b *restartBackoff) Ceiling() time.Duration {
	ceiling := b.Initial
	for i := 0; i < b.failures && ceiling < b.Max; i++ {
		ceiling *= 2
	}
	return min(ceiling, b.Max)
}

// Reset forgets every failure.
func (b *restartBackoff) Reset() {
	b.failures = 0
}
