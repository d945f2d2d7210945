package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

// MergerConfig configures a Merger.
type MergerConfig struct {
	Merge    *Merge     // owned by the merger; outlives its restarts
	Snapshot *actor.PID // receives SnapshotRequest
	Consumer *actor.PID // receives Deliver
	// Applied, when not nil, is kept equal to Merge.Applied() for the
	// cluster-ID poller, which compares etcd's index with it.
	Applied *atomic.Uint64
}

// NewMergerProps returns the props of a Merger: the thin shell that feeds
// watcher and snapshot messages to the Merge state machine and sends what it
// returns: updates and status to the consumer, requests to the snapshot
// reader. The Merge lives in the props, so a restarted merger resumes it.
func NewMergerProps(env *Env, cfg MergerConfig) *actor.Props {
	return env.Props(func() actor.Actor {
		return &Merger{env: env, cfg: cfg}
	})
}

// Merger is the merger actor; see NewMergerProps.
type Merger struct {
	env          *Env
	cfg          MergerConfig
	snapshotFrom time.Time // when the snapshot being read was requested
	snapshotKeys int
	cause        string // of the latest WatcherNeedsSnapshot, for metrics
}

// Receive implements actor.Actor.
func (m *Merger) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		m.emit(c, m.cfg.Merge.Start())
	case messages.WatcherNeedsSnapshot, messages.WatcherLostSync, messages.WatcherUpdate, messages.WatcherDeletion,
		messages.SnapshotStarted, messages.SnapshotBatch, messages.SnapshotFinished:
		switch msg := msg.(type) {
		case messages.SnapshotBatch:
			m.snapshotKeys += len(msg.KVs)
		case messages.WatcherNeedsSnapshot:
			m.cause = msg.Cause
		}
		out, err := m.cfg.Merge.Step(msg)
		if err != nil {
			m.env.Logger.Error("merger dropped an input it cannot merge", "err", err)
			return
		}
		if f, ok := msg.(messages.SnapshotFinished); ok {
			m.env.Observer.SnapshotRead(m.env.Clock.Since(m.snapshotFrom), m.snapshotKeys)
			m.env.Logger.Info("snapshot merged", "index", f.Index, "keys", m.snapshotKeys, "status", m.cfg.Merge.Status().String())
		}
		m.emit(c, out)
	}
}

func (m *Merger) emit(c actor.Context, out Output) {
	merge := m.cfg.Merge
	if m.cfg.Applied != nil {
		m.cfg.Applied.Store(merge.Applied())
	}
	m.env.Observer.Merged(merge.Keys(), merge.Applied(), merge.Suppressed())
	if len(out.Updates) > 0 || out.Status != 0 {
		c.Send(m.cfg.Consumer, messages.Deliver{Updates: out.Updates, Status: out.Status})
	}
	if out.Snapshot != nil {
		m.snapshotFrom, m.snapshotKeys = m.env.Clock.Now(), 0
		m.env.Observer.Resync(m.cause)
		m.env.Logger.Info("requesting snapshot", "minIndex", out.Snapshot.MinIndex, "cause", m.cause)
		c.Request(m.cfg.Snapshot, *out.Snapshot)
	}
}

var _ actor.Actor = (*Merger)(nil)
