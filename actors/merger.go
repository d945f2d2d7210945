package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

// MergerConfig configures a merger actor.
type MergerConfig struct {
	Core     *MergeCore // owned by the merger; outlives its restarts
	Snapshot *actor.PID // receives SnapshotRequest
	Consumer *actor.PID // receives Deliver
	// Applied, when not nil, is kept equal to Core.Applied() for the
	// cluster-ID poller, which compares etcd's index with it.
	Applied *atomic.Uint64
}

// NewMergerProps returns the props of a merger actor: the thin shell that feeds
// the watcher's and the snapshot reader's messages to the MergeCore and
// sends what it returns: updates and status to the consumer, requests to
// the snapshot reader. It keeps nothing itself: the core lives in the
// props, so a restarted merger resumes it.
func NewMergerProps(env *Env, cfg MergerConfig) *actor.Props {
	return env.Props(func() actor.Actor {
		return &merger{env: env, cfg: cfg}
	})
}

// merger is the merger actor; see NewMergerProps.
type merger struct {
	env *Env
	cfg MergerConfig
}

// Receive implements actor.Actor.
func (m *merger) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		m.emit(c, m.cfg.Core.Start())
	case messages.MergeInput:
		m.emit(c, m.cfg.Core.Step(msg))
	}
}

// emit sends what the core returned before anything else: the core has
// already moved on, so a failure (an Observer's panic) between the two would
// lose the updates, which a restart must not.
func (m *merger) emit(c actor.Context, out Output) {
	core := m.cfg.Core
	if m.cfg.Applied != nil {
		m.cfg.Applied.Store(core.Applied())
	}
	if len(out.Updates) > 0 || out.Status != 0 || out.Partial || out.Closed {
		d := messages.Deliver{Updates: out.Updates, Status: out.Status, Partial: out.Partial}
		if out.Status == messages.InSync {
			// Everything merged so far is in this Deliver or an earlier one.
			d.Index = core.Applied()
		}
		c.Send(m.cfg.Consumer, d)
	}
	if out.Snapshot != nil {
		c.Request(m.cfg.Snapshot, *out.Snapshot)
		m.env.Logger.Info("requesting snapshot", "minIndex", out.Snapshot.MinIndex, "cause", out.Snapshot.Cause)
		m.env.Observer.Resync(out.Snapshot.Cause)
	}
	if out.Merged != nil {
		m.env.Logger.Info("snapshot merged", "index", out.Merged.Index, "keys", out.Merged.Keys, "status", core.Status().String())
	}
	m.env.Observer.Merged(core.Keys(), core.Applied(), core.Suppressed())
}

var _ actor.Actor = (*merger)(nil)
