package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/internal/redact"
	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// Syncer is a running syncer: a tree of actors keeping a host's view of an
// etcd prefix, read through etcd's v2 or v3 API (Config.API) or from relays,
// eventually consistent with etcd.
//
// Contract: the host's callbacks are called one at a time, never
// concurrently, in order. Apply every update in order to an empty map;
// whenever the last status delivered is messages.InSync and etcd has been
// quiet long enough for the watch to drain, the map equals etcd's keys and
// values under the prefix. Within one etcd cluster a key's revisions only
// rise; a deletion is only sent for a key the host has; nothing is delivered
// after Stop returns. Eventually one of three things holds: the map is
// in sync with a later state of etcd, the syncer was stopped, or it stopped
// itself with an error (Err), which happens only for a poison batch, a
// restart storm, or a cluster reset under StopOnReset.
//
// Its methods are safe for concurrent use.
type Syncer struct {
	system    *actor.ActorSystem
	pid       *actor.PID
	callbacks messages.Callbacks
	env       *actors.Env
	conns     *connTracker // the syncer's own transport's; nil with a host's KeysAPI or Transport
	source    source.Source
	status    atomic.Uint32
	cluster   atomic.Pointer[actors.SharedClusterIDCheck] // the current pipeline's; nil before the first

	errOnce sync.Once
	err     error
	done    chan struct{}
	stopped sync.Once
}

// NewSystem returns an actor system that logs through logger, for hosts
// that have none of their own.
func NewSystem(logger *slog.Logger) *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(system *actor.ActorSystem) *slog.Logger {
		return logger.With("lib", "protoactor", "system", system.ID)
	}))
}

// Start validates cfg and starts a syncer in system that delivers to
// callbacks (which may be nil when cfg.HostPID is set). A bad cfg is a
// *ConfigError naming the field. The caller must eventually call Stop.
func Start(system *actor.ActorSystem, cfg Config, callbacks messages.Callbacks) (*Syncer, error) {
	if system == nil {
		return nil, &ConfigError{Field: "system", Err: fmt.Errorf("nil actor system")}
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if callbacks == nil && cfg.HostPID == nil {
		return nil, &ConfigError{Field: "callbacks", Err: errNoCallbacks}
	}
	goroutines := &sync.WaitGroup{}
	src, conns, err := cfg.source(goroutines)
	if err != nil {
		return nil, err
	}
	var relays *http.Client
	if len(cfg.Relays) > 0 {
		relays, conns = cfg.relayClient()
	}
	s := &Syncer{system: system, callbacks: callbacks, conns: conns, source: src, done: make(chan struct{})}
	if u, ok := callbacks.(messages.ClusterIDUser); ok {
		u.SetClusterIDSource(s.ClusterID) // before the first delivery can race it
	}
	s.env = &actors.Env{
		Source:     src,
		Prefix:     cfg.Prefix,
		Clock:      cfg.Clock,
		Logger:     cfg.Logger,
		Goroutines: goroutines,
		HostCalls:  &sync.WaitGroup{},
		Stopped:    &atomic.Bool{},
		NewBackoff: func() actors.Delayer {
			return cfg.Backoff.newBackoff(cfg.Clock, cfg.replay.Rand)
		},
		Rand:     cfg.replay.Rand,
		Observer: cfg.Observer,
		Runner:   cfg.replay.Runner,
	}
	r := &root{
		cfg:    cfg,
		env:    s.env,
		syncer: s,
		merge:  cfg.newMergeCore(),
		status: &s.status,
		policy: policy{
			onReset:  cfg.OnClusterReset,
			backoff:  cfg.Backoff.newBackoff(cfg.Clock, cfg.replay.Rand),
			failures: map[string]*failureCount{},
		},
		relays: relays,
	}
	props := s.env.Props(func() actor.Actor { return r })
	s.pid = system.Root.SpawnPrefix(props, "etcdsync")
	from := []any{"api", cfg.API.String(), "watch", cfg.WatchMode.String()}
	switch {
	case len(cfg.Relays) > 0:
		from = []any{"relays", redact.URLs(cfg.Relays)}
	case cfg.API == APIv3:
		from = from[:2]
	}
	cfg.Logger.Info("syncer started", append([]any{"prefix", cfg.Prefix, "onClusterReset", cfg.OnClusterReset.String()},
		from...)...)
	return s, nil
}

// Status returns the last status delivered to the host (WaitForDatastore
// before any). It changes as the host is told (just before
// OnStatusUpdated is called, or a Deliver carrying it is sent to a host
// actor), so a host reads the new status from inside that callback, and
// anyone reads it once the host has seen it.
func (s *Syncer) Status() messages.SyncStatus {
	if st := messages.SyncStatus(s.status.Load()); st != 0 {
		return st
	}
	return messages.WaitForDatastore
}

// ClusterID returns the ID of the etcd cluster the syncer is reading, as
// its current pipeline learnt it from etcd's responses: "" until the first
// response, and "" again after a cluster reset until the new cluster
// answers. Data of a cluster reaches the host only once its ID is learnt,
// so from within OnUpdates it names the cluster of the batch, except for a
// batch of the old cluster still in flight when a reset started; the
// WaitForDatastore status that precedes a new cluster's data separates the
// two. A relay server pairs it with revisions so that clients can resume.
// Safe for concurrent use, at any rate.
func (s *Syncer) ClusterID() string {
	if g := s.cluster.Load(); g != nil {
		return g.ID()
	}
	return ""
}

// Done is closed once the syncer has stopped, by Stop or by itself.
func (s *Syncer) Done() <-chan struct{} { return s.done }

// Err returns why the syncer stopped itself, once Done is closed: nil after
// Stop, else an error matching messages.ErrPoisonBatch,
// messages.ErrClusterIDChanged, messages.ErrIndexRegressed or (reading from
// relays) messages.ErrUpstreamReset (errors.Is), or
// a restart-storm error.
func (s *Syncer) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Stop stops every actor and goroutine the syncer started and waits for
// them, or for ctx. No callback runs after it returns nil. It is safe to call
// more than once, and after the syncer stopped itself.
//
// Called from inside a callback (a host that stops when it sees a status),
// it returns once everything else has stopped, and the syncer calls the host
// nothing more, not even the rest of the batch being delivered, once that
// callback returns. (It cannot tell a callback of this syncer from one of
// another: called from any, it does not wait for callbacks.)
func (s *Syncer) Stop(ctx context.Context) error {
	s.env.Stopped.Store(true)
	s.system.Root.Stop(s.pid)
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("etcdsync: stopping the syncer's actors: %w", ctx.Err())
	}
	if err := wait(ctx, s.env.Goroutines); err != nil {
		return fmt.Errorf("etcdsync: waiting for the syncer's etcd calls to end: %w", err)
	}
	if !actors.InHostCall() {
		if err := wait(ctx, s.env.HostCalls); err != nil {
			return fmt.Errorf("etcdsync: waiting for the host's callback to return: %w", err)
		}
	}
	if s.conns != nil {
		s.conns.CloseAll()
	}
	if c, ok := s.source.(io.Closer); ok {
		c.Close() // a v3 client: nothing of it is in use any more
	}
	return nil
}

// wait waits for wg, or for ctx.
func wait(ctx context.Context, wg *sync.WaitGroup) error {
	idle := make(chan struct{})
	go func() { wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Syncer) setErr(err error) {
	s.errOnce.Do(func() { s.err = err })
}

// finish runs when the root actor has stopped, all children first.
func (s *Syncer) finish() {
	s.stopped.Do(func() { close(s.done) })
}
