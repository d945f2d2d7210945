package actors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// WatcherConfig configures a watcher actor.
type WatcherConfig struct {
	Merger *actor.PID // receives WatcherNeedsSnapshot, WatcherUpdate, WatcherDeletion
	// Cluster judges the cluster ID of every response before the merger
	// hears of it.
	Cluster *SharedClusterIDCheck
	// ErrorLimit is how many retryable errors in a row make the watcher
	// give up and fail.
	ErrorLimit int
	// StallTimeout is how long the watch may stay silent before the
	// watcher asks etcd whether it is behind; 0 never asks.
	StallTimeout time.Duration
}

// watcherShared is what outlives one incarnation of the watcher.
type watcherShared struct {
	starts atomic.Uint64
}

// NewWatcherProps returns the props of a watcher actor: the free-running recursive
// watch of the prefix. On every (re)start it reads etcd's current index,
// tells the merger it needs a snapshot at that index, and watches from it
// without waiting for the snapshot. It fails (panics with an error wrapping
// messages.ErrLostSync) when the watch loses its position; its supervisor
// restarts it.
func NewWatcherProps(env *Env, cfg WatcherConfig) *actor.Props {
	return shellProps(env, &watcherShared{}, 1, func(shared *watcherShared, tasks []*task) lifecycle {
		return &watcher{env: env, cfg: cfg, shared: shared, task: tasks[0]}
	})
}

// watcher is the watcher actor; see NewWatcherProps.
type watcher struct {
	env    *Env
	cfg    WatcherConfig
	shared *watcherShared
	task   *task  // the watch
	cause  string // why this incarnation watches: "start" or "watcher-restart"
}

// What the watch posts to its actor.
type (
	watchStarted struct {
		index     uint64
		clusterID string
	}
	watchEvent   struct{ changes source.Changes }
	watchTrouble struct{ err error } // a retryable error; the watch retries
	watchFailed  struct{ err error }
)

func (w *watcher) started(c actor.Context) {
	w.cause = "start"
	if w.shared.starts.Add(1) > 1 {
		w.cause = "watcher-restart"
	}
	w.task.start(c, w.env, w.env.Goroutines, w.run)
}

func (w *watcher) received(actor.Context, any) {}

func (w *watcher) posted(c actor.Context, _ *task, msg any) {
	switch m := msg.(type) {
	case watchStarted:
		w.checkClusterID(c, m.clusterID)
		w.env.Logger.Info("watching", "prefix", w.env.Prefix, "afterIndex", m.index, "cause", w.cause)
		c.Send(w.cfg.Merger, messages.WatcherNeedsSnapshot{MinIndex: m.index, Cause: w.cause})
	case watchEvent:
		w.handleEvent(c, m.changes)
	case watchTrouble:
		w.env.Logger.Warn("watch error; retrying from the same index", "err", m.err)
	case watchFailed:
		w.fail(c, m.err)
	}
}

func (w *watcher) handleEvent(c actor.Context, ch source.Changes) {
	w.checkClusterID(c, ch.ClusterID)
	if ch.Progress {
		w.env.Observer.EtcdIndex(ch.Index) // etcd's revision when it answered
	} else {
		w.env.Observer.WatchEvent(ch.Index)
	}
	for _, ev := range ch.Events {
		c.Send(w.cfg.Merger, ev)
	}
}

// fail tells the merger that events are being missed, then fails the
// watcher so that its supervisor restarts it.
func (w *watcher) fail(c actor.Context, err error) {
	err = fmt.Errorf("%w: %w", messages.ErrLostSync, err)
	c.Send(w.cfg.Merger, messages.WatcherLostSync{Err: err})
	panic(err)
}

// checkClusterID fails the watcher if id is not the pipeline's cluster.
func (w *watcher) checkClusterID(c actor.Context, id string) {
	if err := w.cfg.Cluster.Check(id, w.env.Logger); err != nil {
		w.fail(c, err)
	}
}

// run is the watch: read the index, announce it, then watch from it until
// cancelled or lost.
func (w *watcher) run(ctx context.Context, send func(any)) {
	start, err := w.env.Source.Head(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		send(watchFailed{fmt.Errorf("reading etcd's current index: %w", err)})
		return
	}
	w.env.Observer.EtcdIndex(start.Index)
	send(watchStarted{start.Index, start.ClusterID})

	watch := w.env.Source.Watch(start.Index)
	defer watch.Close()
	errs := WatchErrors{Limit: max(1, w.cfg.ErrorLimit), Classify: w.env.Source.Classify}
	retry := w.env.NewBackoff()
	seen := start.Index // the highest index this watch has been told of
	for {
		ch, err := w.nextWithin(ctx, watch)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStalled) {
			if err := w.checkStall(ctx, watch, start.ClusterID, seen); err != nil {
				send(watchFailed{err})
				return
			}
			continue
		}
		if err == nil {
			errs.Succeeded()
			retry.Reset()
			seen = max(seen, ch.Index)
			send(watchEvent{ch})
			continue
		}
		switch errs.Observe(err) {
		case source.Stopped:
			return
		case source.LostSync:
			send(watchFailed{err})
			return
		}
		send(watchTrouble{err})
		if !w.env.sleep(ctx, retry.Next()) {
			return
		}
		// The connection broke: etcd may have been rebuilt, or restarted
		// from a backup, and a watch waiting beyond the new head would
		// wait in silence. A quorum read tells.
		if now, err := w.env.Source.Head(ctx); err == nil {
			if err := CheckReconnect(start.ClusterID, seen, now.ClusterID, now.Index); err != nil {
				send(watchFailed{err})
				return
			}
		}
	}
}

// errStalled: the watch stayed silent for StallTimeout.
var errStalled = errors.New("the watch stayed silent")

// nextWithin is watch.Next, given up after StallTimeout of silence with
// errStalled. The watch itself goes on.
func (w *watcher) nextWithin(ctx context.Context, watch source.Watch) (source.Changes, error) {
	if w.cfg.StallTimeout <= 0 {
		return watch.Next(ctx)
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	t := w.env.Clock.AfterFunc(w.cfg.StallTimeout, func() {
		stalled.Store(true)
		cancel()
	})
	defer t.Stop()
	ch, err := watch.Next(nctx)
	if err != nil && stalled.Load() && ctx.Err() == nil {
		return source.Changes{}, errStalled
	}
	return ch, err
}

// checkStall asks etcd, after a silence, whether the watch is behind. etcd
// can leave a watch silent for good: v2 drops a stream whose 100-event
// buffer overflowed without closing it, and a member cut off from its
// quorum, or frozen, stops sending anything while the others go on. A
// quorum read of the index, which such a member cannot answer (so the
// client moves on to another), tells: if etcd has moved on past what the
// watch has seen, the watch asks again from its position, and etcd's
// history answers at once with what it missed, or says it no longer holds
// it. The read also judges the cluster, as after a broken connection.
func (w *watcher) checkStall(ctx context.Context, watch source.Watch, startID string, seen uint64) error {
	now, err := w.env.Source.Head(ctx)
	if err != nil {
		w.env.Logger.Warn("the watch is silent and etcd's index cannot be read; watching on", "err", err)
		return nil
	}
	if err := CheckReconnect(startID, seen, now.ClusterID, now.Index); err != nil {
		return err
	}
	if now.Index > seen {
		w.env.Logger.Debug("the watch is silent while etcd moved on; asking again from its position",
			"seen", seen, "etcdIndex", now.Index)
		watch.Resume()
	}
	return nil
}

var _ lifecycle = (*watcher)(nil)
