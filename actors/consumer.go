package actors

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

// ConsumerConfig configures a Consumer. Exactly one of Callbacks and HostPID
// is set.
type ConsumerConfig struct {
	Callbacks messages.Callbacks
	// HostPID receives every messages.Deliver instead of Callbacks being
	// called.
	HostPID *actor.PID
	// MaxAttempts is how many times one batch may make the callbacks panic
	// before the consumer gives up with messages.ErrPoisonBatch.
	MaxAttempts int
	// Status, when not nil, holds the last status the host was told of.
	Status *atomic.Uint32
}

// CallbackPanic is the failure of a consumer whose host callback panicked.
type CallbackPanic struct {
	Value any    // what the callback panicked with
	Stack []byte // where
}

func (p *CallbackPanic) Error() string {
	return fmt.Sprintf("etcdsync: host callback panicked: %v", p.Value)
}

// consumerShared outlives one incarnation: the batch being delivered and
// how many times delivering it has failed.
type consumerShared struct {
	inflight *messages.Deliver
	attempts int
}

// NewConsumerProps returns the props of a Consumer, the adapter between the
// merger and the host. It delivers each messages.Deliver to the host's
// callbacks in order. If a callback panics, the consumer fails with a
// *CallbackPanic; once its supervisor restarts it, it delivers the same
// batch again, whole, before anything else, and after MaxAttempts failures
// it fails with messages.ErrPoisonBatch instead.
func NewConsumerProps(env *Env, cfg ConsumerConfig) *actor.Props {
	shared := &consumerShared{}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Consumer{env: env, cfg: cfg, shared: shared}
	})
}

// Consumer is the consumer actor; see NewConsumerProps.
type Consumer struct {
	env    *Env
	cfg    ConsumerConfig
	shared *consumerShared
}

// Receive implements actor.Actor.
func (k *Consumer) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		if d := k.shared.inflight; d != nil {
			if k.shared.attempts >= max(1, k.cfg.MaxAttempts) {
				panic(fmt.Errorf("%w: %d attempts at a batch of %d updates (status %v)",
					messages.ErrPoisonBatch, k.shared.attempts, len(d.Updates), d.Status))
			}
			k.env.Logger.Warn("delivering a batch again after the host callback panicked",
				"updates", len(d.Updates), "attempt", k.shared.attempts+1)
			k.deliver(c, *d)
		}
	case messages.Deliver:
		k.deliver(c, m)
	}
}

func (k *Consumer) deliver(c actor.Context, d messages.Deliver) {
	if k.cfg.HostPID != nil {
		c.Send(k.cfg.HostPID, d)
	} else {
		k.shared.inflight = &d
		k.shared.attempts++
		k.call(d)
		k.shared.inflight, k.shared.attempts = nil, 0
	}
	k.env.Observer.Delivered(d.Updates)
	if d.Status != 0 && k.cfg.Status != nil {
		k.cfg.Status.Store(uint32(d.Status))
	}
}

// call runs the host's callbacks, turning a panic into a *CallbackPanic.
func (k *Consumer) call(d messages.Deliver) {
	defer func() {
		if r := recover(); r != nil {
			p := &CallbackPanic{Value: r, Stack: debug.Stack()}
			k.env.Logger.Error("host callback panicked", "panic", fmt.Sprint(r), "stack", string(p.Stack))
			panic(p)
		}
	}()
	if len(d.Updates) > 0 {
		k.cfg.Callbacks.OnUpdates(d.Updates)
	}
	if d.Status != 0 {
		k.cfg.Callbacks.OnStatusUpdated(d.Status)
	}
}

var _ actor.Actor = (*Consumer)(nil)
