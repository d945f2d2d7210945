package actors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/client/v2"
	"k8s.io/utils/clock"
)

// PollerConfig configures a ClusterIDPoller.
type PollerConfig struct {
	// Interval between polls; each wait is jittered by ±10 %.
	Interval time.Duration
	// Applied returns the highest etcd index merged so far.
	Applied func() uint64
	// Cluster is the pipeline's cluster-ID guard.
	Cluster *ClusterIDGuard
}

type pollerShared struct {
	gens atomic.Uint64
}

// NewClusterIDPollerProps returns the props of a ClusterIDPoller. It polls
// etcd with a quorum read, so that a rebuilt or restored etcd is noticed
// even while nothing else talks to it. It fails with
// messages.ErrClusterIDChanged when the ID differs from the one the pipeline
// knows, and with messages.ErrIndexRegressed when a quorum read answers below
// the index already merged: a restored etcd may never break the watch, which
// would otherwise wait silently for an index the restored store will reach
// only with different writes.
func NewClusterIDPollerProps(env *Env, cfg PollerConfig) *actor.Props {
	shared := &pollerShared{}
	return env.Props(func() actor.Actor {
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
	}
}

func (p *ClusterIDPoller) poll(c actor.Context) {
	ctx, send, gen := p.ctx, sender(c), p.gen
	p.env.goroutine(p.env.Goroutines, func() {
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
		if err := p.cfg.Cluster.JudgePoll(r.resp.ClusterID, r.resp.Index, r.applied, p.env.Logger); err != nil {
			panic(err)
		}
	}
	// ±10 %, so that many hosts restarted together do not poll in step.
	jitter := 0.9 + 0.2*float64(p.env.Rand(1_000_000))/1_000_000
	send, gen := sender(c), p.gen
	p.timer = p.env.Clock.AfterFunc(time.Duration(float64(p.cfg.Interval)*jitter), func() { send(pollNow{gen}) })
}

var _ actor.Actor = (*ClusterIDPoller)(nil)
