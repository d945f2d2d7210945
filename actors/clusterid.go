package actors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/client/v2"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/messages"
)

// PollerConfig configures a ClusterIDPoller.
type PollerConfig struct {
	// Interval between polls; each wait is jittered by ±10 %.
	Interval time.Duration
	// Applied returns the highest etcd index merged so far.
	Applied func() uint64
}

type pollerShared struct {
	gens  atomic.Uint64
	check ClusterIDCheck // only touched by the actor's goroutine
}

// NewClusterIDPollerProps returns the props of a ClusterIDPoller. It polls
// etcd with a quorum read, and hears the cluster IDs the other actors see
// (messages.ClusterIDSeen). It fails with messages.ErrClusterIDChanged when
// the ID changes, and with messages.ErrIndexRegressed when a quorum read
// answers below the index already merged: a restored etcd may never break
// the watch, which would otherwise wait silently for an index the restored
// store will reach only with different writes.
func NewClusterIDPollerProps(env *Env, cfg PollerConfig) *actor.Props {
	shared := &pollerShared{}
	return actor.PropsFromProducer(func() actor.Actor {
		return &ClusterIDPoller{env: env, cfg: cfg, shared: shared}
	})
}

// ClusterIDPoller is the cluster-ID poller actor; see
// NewClusterIDPollerProps.
type ClusterIDPoller struct {
	env    *Env
	cfg    PollerConfig
	shared *pollerShared
	gen    uint64
	ctx    context.Context // cancelled when this incarnation ends
	cancel context.CancelFunc
	timer  clock.Timer
}

type (
	pollNow struct {
		gen uint64
	}
	pollResult struct {
		gen     uint64
		applied uint64 // read before the request was sent
		resp    *client.Response
		err     error
	}
)

// Receive implements actor.Actor.
func (p *ClusterIDPoller) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		p.gen = p.shared.gens.Add(1)
		p.ctx, p.cancel = context.WithCancel(context.Background())
		c.Send(c.Self(), pollNow{p.gen}) // learn the ID at once
	case *actor.Stopping, *actor.Restarting:
		p.cancel()
		if p.timer != nil {
			p.timer.Stop()
		}
	case pollNow:
		if m.gen == p.gen {
			p.poll(c)
		}
	case pollResult:
		if m.gen == p.gen {
			p.handleResult(c, m)
		}
	case messages.ClusterIDSeen:
		p.judge(p.shared.check.ObserveID(m.ID))
	}
}

func (p *ClusterIDPoller) poll(c actor.Context) {
	ctx, send, gen := p.ctx, sender(c), p.gen
	p.env.Goroutines.Go(func() {
		applied := p.cfg.Applied()
		resp, err := p.env.Keys.Get(ctx, "/", &client.GetOptions{Quorum: true})
		if ctx.Err() == nil {
			send(pollResult{gen: gen, applied: applied, resp: resp, err: err})
		}
	})
}

func (p *ClusterIDPoller) handleResult(c actor.Context, r pollResult) {
	if r.err != nil {
		p.env.Logger.Warn("polling etcd's cluster ID failed", "err", r.err)
	} else {
		p.env.Observer.EtcdIndex(r.resp.Index)
		p.judge(p.shared.check.ObservePoll(r.resp.ClusterID, r.resp.Index, r.applied))
	}
	// ±10 %, so that many hosts restarted together do not poll in step.
	jitter := 0.9 + 0.2*float64(p.env.Rand(1_000_000))/1_000_000
	send, gen := sender(c), p.gen
	p.timer = p.env.Clock.AfterFunc(time.Duration(float64(p.cfg.Interval)*jitter), func() { send(pollNow{gen}) })
}

func (p *ClusterIDPoller) judge(v ClusterIDVerdict) {
	if v.First {
		p.env.Logger.Info("etcd cluster ID known", "clusterID", p.shared.check.ID())
	}
	if v.Default {
		p.env.Logger.Error("etcd uses the default cluster ID; a rebuilt cluster with the same default ID "+
			"cannot be detected. Start etcd with a unique --initial-cluster-token.", "clusterID", DefaultClusterID)
	}
	if v.Err != nil {
		panic(v.Err)
	}
}

var _ actor.Actor = (*ClusterIDPoller)(nil)
