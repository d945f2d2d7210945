package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/internal/source"
)

// PollerConfig configures a cluster-ID poller actor.
type PollerConfig struct {
	// Interval between polls; each wait is jittered by ±10 %.
	Interval time.Duration
	// Applied returns the highest etcd index merged so far.
	Applied func() uint64
	// Cluster is the pipeline's cluster-ID guard.
	Cluster *SharedClusterIDCheck
}

// NewClusterIDPollerProps returns the props of a cluster-ID poller actor. It polls
// etcd with a quorum read, so that a rebuilt or restored etcd is noticed
// even while nothing else talks to it. It fails with
// messages.ErrClusterIDChanged when the ID differs from the one the pipeline
// knows, and with messages.ErrIndexRegressed when a quorum read answers below
// the index already merged: a restored etcd may never break the watch, which
// would otherwise wait silently for an index the restored store will reach
// only with different writes.
func NewClusterIDPollerProps(env *Env, cfg PollerConfig) *actor.Props {
	return shellProps(env, &struct{}{}, 1, func(_ *struct{}, tasks []*task) lifecycle {
		return &clusterIDPoller{env: env, cfg: cfg, task: tasks[0]}
	})
}

// clusterIDPoller is the cluster-ID poller actor; see
// NewClusterIDPollerProps.
type clusterIDPoller struct {
	env   *Env
	cfg   PollerConfig
	task  *task // a poll, or the timer until the next
	timer clock.Timer
}

// What a poll, or the timer, posts to the actor.
type (
	pollNow    struct{}
	pollResult struct {
		applied uint64 // read before the request was sent
		head    source.Head
		err     error
	}
)

func (p *clusterIDPoller) started(c actor.Context) {
	p.poll(c) // learn the ID at once
}

func (p *clusterIDPoller) stopping() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

func (p *clusterIDPoller) received(actor.Context, any) {}

func (p *clusterIDPoller) posted(c actor.Context, _ *task, msg any) {
	switch msg := msg.(type) {
	case pollNow:
		p.poll(c)
	case pollResult:
		p.handleResult(c, msg)
	}
}

func (p *clusterIDPoller) poll(c actor.Context) {
	p.task.start(c, p.env, p.env.Goroutines, func(ctx context.Context, send func(any)) {
		applied := p.cfg.Applied()
		head, err := p.env.Source.Head(ctx)
		if ctx.Err() == nil {
			send(pollResult{applied: applied, head: head, err: err})
		}
	})
}

func (p *clusterIDPoller) handleResult(c actor.Context, r pollResult) {
	if r.err != nil {
		p.env.Logger.Warn("polling etcd's cluster ID failed", "err", r.err)
	} else {
		p.env.Observer.EtcdIndex(r.head.Index)
		if err := p.cfg.Cluster.CheckQuorumRead(r.head.ClusterID, r.head.Index, r.applied, p.env.Logger); err != nil {
			panic(err)
		}
	}
	// ±10 %, so that many hosts restarted together do not poll in step.
	jitter := 0.9 + 0.2*float64(p.env.Rand(1_000_000))/1_000_000
	post := p.task.poster(c)
	p.timer = p.env.Clock.AfterFunc(time.Duration(float64(p.cfg.Interval)*jitter), func() { post(pollNow{}) })
}

var _ stopper = (*clusterIDPoller)(nil)
