package actors

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

// ConsumerConfig configures a consumer actor. Exactly one of Callbacks and HostPID
// is set.
type ConsumerConfig struct {
	Callbacks messages.Callbacks
	// HostPID receives every messages.Deliver instead of Callbacks being
	// called, and answers each with messages.Delivered once it has applied
	// it; the next waits for that.
	HostPID *actor.PID
	// AckTimeout is how long a HostPID may take to answer a Deliver before
	// the batch counts as failed and is delivered again.
	AckTimeout time.Duration
	// MaxAttempts is how many times one batch may make the callbacks panic
	// before the consumer gives up with messages.ErrPoisonBatch.
	MaxAttempts int
	// Status, when not nil, holds the last status the host was told of.
	Status *atomic.Uint32
	// Decoder, when not nil, decodes keys and values before delivery.
	Decoder messages.Decoder
	// CoalesceAfter is the Outbox's FoldAt.
	CoalesceAfter int
}

// CallbackPanic is the failure of a consumer whose host callback panicked.
type CallbackPanic struct {
	Value any    // what the callback panicked with
	Stack []byte // where
}

func (p *CallbackPanic) Error() string {
	return fmt.Sprintf("etcdsync: host callback panicked: %v", p.Value)
}

// consumerShared outlives one incarnation: what waits for the host and the
// batch the host has (the Outbox holds both), how many times delivering that
// batch has failed, and the batch decoded, once decoding it has succeeded
// (a host call sets it; the actor reads it only after that call has ended).
type consumerShared struct {
	outbox   Outbox
	attempts int
	decoded  *messages.Deliver
}

// NewConsumerProps returns the props of a consumer actor, the adapter between the
// merger and the host. It queues what the merger sends in an Outbox and
// calls the host's callbacks with one batch at a time, from a goroutine of
// its own, so that it keeps receiving (and coalescing) while the host is
// busy. If a callback panics, the consumer fails with a *CallbackPanic;
// once its supervisor restarts it, it delivers the same batch again, whole,
// before anything else, and after MaxAttempts failures it fails with
// messages.ErrPoisonBatch instead. A HostPID host is handled alike: its
// batch is a messages.Deliver it must answer with messages.Delivered, one
// at a time; a decoder that panics, or a host actor that does not answer
// within AckTimeout, fails the batch as a panicking callback does.
func NewConsumerProps(env *Env, cfg ConsumerConfig) *actor.Props {
	shared := &consumerShared{outbox: Outbox{FoldAt: cfg.CoalesceAfter}}
	return shellProps(env, shared, 1, func(shared *consumerShared, tasks []*task) lifecycle {
		return &consumer{env: env, cfg: cfg, shared: shared, task: tasks[0]}
	})
}

// consumer is the consumer actor; see NewConsumerProps.
type consumer struct {
	env     *Env
	cfg     ConsumerConfig
	shared  *consumerShared
	task    *task // the host call
	closing bool  // Stopping or Restarting came: start no batch
}

// What a host call posts to its actor: nil when it returned, or how it
// panicked.
type callbackDone struct{ p *CallbackPanic }

func (k *consumer) started(c actor.Context) {
	sh := k.shared
	if b, busy := sh.outbox.InFlight(); busy {
		if sh.attempts >= max(1, k.cfg.MaxAttempts) {
			panic(fmt.Errorf("%w: %d attempts at a batch of %d updates (status %v)",
				messages.ErrPoisonBatch, sh.attempts, len(b.Updates), b.Status))
		}
		k.env.Logger.Warn("delivering a batch again after the host callback panicked",
			"updates", len(b.Updates), "attempt", sh.attempts+1)
		k.start(c)
		return
	}
	k.next(c)
}

// stopping keeps the next batch from starting; the host call under way
// cannot be cancelled (its end is no longer heard: a restart delivers its
// batch again).
func (k *consumer) stopping() { k.closing = true }

func (k *consumer) received(c actor.Context, msg any) {
	if m, ok := msg.(messages.Deliver); ok {
		k.shared.outbox.Push(m)
		k.next(c)
	}
}

func (k *consumer) posted(c actor.Context, _ *task, msg any) {
	sh := k.shared
	if done := msg.(callbackDone); done.p != nil {
		panic(done.p)
	}
	k.delivered()
	sh.attempts, sh.decoded = 0, nil
	sh.outbox.Done()
	k.next(c)
}

// next starts delivering the next batch, if the host is free.
func (k *consumer) next(c actor.Context) {
	if k.closing || k.env.Stopped.Load() {
		return
	}
	if _, ok := k.shared.outbox.Take(); ok { // not while the host has one
		k.start(c)
	}
}

// start calls the host with the batch in flight, from a goroutine.
func (k *consumer) start(c actor.Context) {
	k.shared.attempts++
	b, _ := k.shared.outbox.InFlight()
	root := c.ActorSystem().Root
	k.task.start(c, k.env, k.env.HostCalls, func(_ context.Context, send func(any)) {
		send(callbackDone{k.call(root, b)})
	})
}

// delivered reports the batch the host is done with.
func (k *consumer) delivered() {
	b, _ := k.shared.outbox.InFlight()
	if k.shared.decoded != nil {
		b = *k.shared.decoded
	}
	k.env.Observer.Delivered(b.Updates)
}

// telling records the status the host is being told, as it is told: a host
// that reads Syncer.Status from its callback, or once the callback has
// returned, reads the status it was given.
func (k *consumer) telling(st messages.SyncStatus) {
	if st != 0 && k.cfg.Status != nil {
		k.cfg.Status.Store(uint32(st))
	}
}

// call decodes the batch and runs the host's callbacks, or sends it to the
// host actor and waits for its answer, turning a panic in any of them (or a
// host actor that does not answer) into a *CallbackPanic.
func (k *consumer) call(root *actor.RootContext, raw messages.Deliver) (p *CallbackPanic) {
	defer func() {
		if r := recover(); r != nil {
			p = &CallbackPanic{Value: r, Stack: debug.Stack()}
			k.env.Logger.Error("host callback panicked", "panic", fmt.Sprint(r), "stack", string(p.Stack))
		}
	}()
	hostCall(func() {
		b := k.decode(raw)
		if k.cfg.HostPID != nil {
			if !k.env.Stopped.Load() {
				k.telling(b.Status)
			}
			k.deliverToActor(root, b)
			return
		}
		if len(b.Updates) > 0 && !k.env.Stopped.Load() {
			k.cfg.Callbacks.OnUpdates(b.Updates)
		}
		if b.Status != 0 && !k.env.Stopped.Load() {
			k.telling(b.Status)
			if at, ok := k.cfg.Callbacks.(messages.StatusAtCallback); ok {
				at.OnStatusAt(b.Status, b.Index)
			} else {
				k.cfg.Callbacks.OnStatusUpdated(b.Status)
			}
		}
	})
	return nil
}

// deliverToActor sends the batch to the host actor and waits for its
// messages.Delivered: that is the host's flow control, as a callback's
// return is.
func (k *consumer) deliverToActor(root *actor.RootContext, b messages.Deliver) {
	if k.env.Stopped.Load() {
		return
	}
	answer, err := root.RequestFuture(k.cfg.HostPID, b, k.cfg.AckTimeout).Result()
	if err != nil {
		panic(fmt.Errorf("the host actor %s did not answer a Deliver of %d updates with messages.Delivered within %v: %w",
			k.cfg.HostPID, len(b.Updates), k.cfg.AckTimeout, err))
	}
	if _, ok := answer.(messages.Delivered); !ok {
		panic(fmt.Errorf("the host actor %s answered a Deliver with %T, not messages.Delivered", k.cfg.HostPID, answer))
	}
}

// hostCall runs f, which calls into the host's code, in a frame of its own
// that InHostCall can find.
//
//go:noinline
func hostCall(f func()) { f() }

var hostCallName = runtime.FuncForPC(reflect.ValueOf(hostCall).Pointer()).Name()

// InHostCall reports whether the calling goroutine is inside a call of the
// host's code made by a syncer's consumer, so that Stop, called from a
// callback, can tell not to wait for that callback to return. It cannot tell
// one syncer's calls from another's.
func InHostCall() bool {
	pcs := make([]uintptr, 64)
	for skip := 2; ; skip += len(pcs) {
		n := runtime.Callers(skip, pcs)
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Function == hostCallName {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
	}
}

// decode returns b with DecodedKey and DecodedValue filled in, without the
// updates whose keys the decoder does not accept, which it reports to the
// host's ParseFailed. It builds a new slice, so that a batch whose
// ParseFailed panicked is decoded again from its raw updates; once decoding
// has succeeded, a delivery again reuses it and ParseFailed hears each key
// once.
func (k *consumer) decode(b messages.Deliver) messages.Deliver {
	if k.cfg.Decoder == nil {
		return b
	}
	if k.shared.decoded != nil {
		return *k.shared.decoded
	}
	failed, _ := k.cfg.Callbacks.(messages.ParseFailedCallback) // nil for a host actor
	kept := make([]messages.Update, 0, len(b.Updates))
	for _, u := range b.Updates {
		key, ok := k.cfg.Decoder.DecodeKey(u.Key)
		if !ok {
			k.env.Observer.KeyParseFailed()
			k.env.Logger.Debug("key not in the model; sent to ParseFailed", "key", u.Key)
			if failed != nil {
				failed.ParseFailed(u.Key, u.Value)
			}
			continue
		}
		u.DecodedKey = key
		if u.Type != messages.UpdateTypeDeleted {
			v, err := k.cfg.Decoder.DecodeValue(key, u.Value)
			if err != nil {
				k.env.Observer.ValueDecodeFailed()
				k.env.Logger.Warn("value does not decode; delivering its key with a nil value", "key", u.Key, "err", err)
				v = nil // whatever a decoder returns beside its error (strconv gives 0)
			}
			u.DecodedValue = v
		}
		kept = append(kept, u)
	}
	b.Updates = kept
	k.shared.decoded = &b
	return b
}

var _ stopper = (*consumer)(nil)
