package supervisor

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/messages"
)

// root is the syncer's root actor. It spawns the children and is their
// supervisor (it implements actor.SupervisorStrategy): it restarts the
// watcher after a backoff, restarts the others at once, turns a cluster
// reset into the configured policy, and stops the syncer on a poison batch.
type root struct {
	cfg    Config
	env    *actors.Env
	syncer *Syncer

	merge   *actors.MergeCore // outlives the merger's restarts and resets
	applied atomic.Uint64     // the merger's highest applied index, for the poller
	status  *atomic.Uint32    // last status the host was told

	consumer, poller, snapshot, merger, watcher *actor.PID
	relay                                       *actor.PID   // instead of poller, snapshot and watcher, with Config.Relays
	relays                                      *http.Client // for Config.Relays
	// pipeline, once spawned, is every child but the consumer, which keeps
	// delivering across a cluster reset.
	resetting map[string]bool // pipeline children not yet terminated, during a reset
	pipelines int             // pipelines spawned; from the second on, their names say which

	policy       policy
	restartTimer clock.Timer
	restartGen   uint64 // restarts scheduled; a timer of an older one is void
	stopping     bool   // the root got *actor.Stopping: nothing is spawned or restarted any more
	self         *actor.PID
	sup          actor.Supervisor // the root's own context, for RestartChildren
}

type (
	restartWatcher struct{ gen uint64 }
	failWith       struct{ err error }
)

// Receive implements actor.Actor.
func (r *root) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		r.self = c.Self()
		r.consumer = r.spawn(c, "consumer", actors.NewConsumerProps(r.env, actors.ConsumerConfig{
			Callbacks:     r.syncer.callbacks,
			HostPID:       r.cfg.HostPID,
			AckTimeout:    r.cfg.HostAckTimeout,
			Decoder:       r.cfg.Decoder,
			CoalesceAfter: r.cfg.CoalesceAfter,
			MaxAttempts:   r.cfg.MaxDeliveryAttempts,
			Status:        r.status,
		}))
		r.spawnPipeline(c)
	case *actor.Stopping:
		r.stopping = true
		if r.restartTimer != nil {
			r.restartTimer.Stop()
		}
	case *actor.Stopped:
		r.syncer.finish()
	case *actor.Terminated:
		// While the root stops, its children terminate for good: a reset
		// under way must not spawn a pipeline nothing would stop.
		if !r.stopping && r.resetting != nil && r.resetting[m.Who.Id] {
			delete(r.resetting, m.Who.Id)
			r.policy.forget(m.Who.Id) // its name is never used again
			if len(r.resetting) == 0 {
				r.resetting = nil
				r.merge.ResetCluster()
				r.applied.Store(0)
				r.cfg.Logger.Info("actors stopped; resyncing from the new cluster")
				r.spawnPipeline(c)
			}
		}
	case restartWatcher:
		if m.gen == r.restartGen && r.resetting == nil && !r.stopping {
			r.sup.RestartChildren(r.watcher)
		}
	case failWith:
		r.syncer.setErr(m.err)
		c.Stop(c.Self())
	}
}

func (r *root) spawn(c actor.Context, name string, props *actor.Props) *actor.PID {
	pid, err := c.SpawnNamed(props, name)
	if err != nil {
		// Names are never reused below this root, so this is a bug, and
		// the root's supervisor will say so.
		panic(fmt.Errorf("spawning %s: %w", name, err))
	}
	return pid
}

// pipelineName names a child of the pipeline being spawned. Each pipeline
// has names of its own ("watcher", then "watcher-2" after a reset, ...):
// a goroutine of a stopped pipeline may still post to its actor's PID, and
// protoactor resolves a PID by name, so a reused name would hand that
// message to the new actor (whose task generations count from the start
// again) and race with protoactor registering its mailbox.
func (r *root) pipelineName(base string) string {
	if r.pipelines == 1 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, r.pipelines)
}

// spawnPipeline spawns every child but the consumer, each depending only on
// those spawned before it.
func (r *root) spawnPipeline(c actor.Context) {
	r.pipelines++
	cluster := &actors.SharedClusterIDCheck{} // one cluster per pipeline: a reset starts another
	r.syncer.cluster.Store(cluster)
	if len(r.cfg.Relays) > 0 {
		r.spawnRelayPipeline(c, cluster)
		return
	}
	r.poller = r.spawn(c, r.pipelineName("clusterid"), actors.NewClusterIDPollerProps(r.env, actors.PollerConfig{
		Interval: r.cfg.ClusterIDPollInterval,
		Applied:  r.applied.Load,
		Cluster:  cluster,
	}))
	r.snapshot = r.spawn(c, r.pipelineName("snapshot"), actors.NewSnapshotReaderProps(r.env, actors.SnapshotConfig{
		Cluster:      cluster,
		BatchSize:    r.cfg.SnapshotBatchSize,
		StaleRetry:   r.cfg.StaleReadRetry,
		StaleTimeout: r.cfg.StaleSnapshotTimeout,
	}))
	r.merger = r.spawn(c, r.pipelineName("merger"), actors.NewMergerProps(r.env, actors.MergerConfig{
		Core:     r.merge,
		Snapshot: r.snapshot,
		Consumer: r.consumer,
		Applied:  &r.applied,
	}))
	r.watcher = r.spawn(c, r.pipelineName("watcher"), actors.NewWatcherProps(r.env, actors.WatcherConfig{
		Merger:       r.merger,
		Cluster:      cluster,
		ErrorLimit:   r.cfg.WatchErrorLimit,
		StallTimeout: r.cfg.WatchStallTimeout,
	}))
}

// spawnRelayPipeline spawns the merger and, in the place of the watcher, the
// snapshot reader and the poller, a relay client that feeds it. Each needs
// the other's PID, so the client is told the merger's once both exist.
func (r *root) spawnRelayPipeline(c actor.Context, cluster *actors.SharedClusterIDCheck) {
	var observer actors.RelayObserver
	if o, ok := r.cfg.Observer.(actors.RelayObserver); ok {
		observer = o
	}
	r.relay = r.spawn(c, r.pipelineName("relay"), actors.NewRelayClientProps(r.env, actors.RelayClientConfig{
		Relays:       r.cfg.Relays,
		Client:       r.relays,
		Cluster:      cluster,
		ReadTimeout:  r.cfg.RelayReadTimeout,
		StaleTimeout: r.cfg.StaleSnapshotTimeout,
		StaleRetry:   r.cfg.StaleReadRetry,
		BatchSize:    r.cfg.SnapshotBatchSize,
		Observer:     observer,
	}))
	r.merger = r.spawn(c, r.pipelineName("merger"), actors.NewMergerProps(r.env, actors.MergerConfig{
		Core:     r.merge,
		Snapshot: r.relay,
		Consumer: r.consumer,
		Applied:  &r.applied,
	}))
	c.Send(r.relay, actors.RelayBind{Merger: r.merger})
}

// pipeline returns the pipeline's children, those a reset stops.
func (r *root) pipeline() []*actor.PID {
	if len(r.cfg.Relays) > 0 {
		return []*actor.PID{r.relay, r.merger}
	}
	return []*actor.PID{r.watcher, r.merger, r.snapshot, r.poller}
}

// HandleFailure implements actor.SupervisorStrategy: the policy decides,
// and this carries the decision out. It runs on the root's goroutine, like
// Receive.
func (r *root) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	_ *actor.RestartStatistics, reason any, _ any) {
	r.sup = sup
	err, ok := reason.(error)
	if !ok {
		err = fmt.Errorf("%v", reason)
	}
	watcher := ""
	if r.watcher != nil {
		watcher = r.watcher.Id
	}
	d := r.policy.decide(child.Id, err, r.cfg.Clock.Now(), watcher, r.consumer.Id, r.stopping, r.resetting != nil)
	system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: d.directive})
	log := r.cfg.Logger.With("child", child.Id, "err", err)
	switch d.action {
	case actIgnore:
	case actReset:
		r.env.Observer.ClusterReset()
		log.Warn(d.log)
		r.startReset(sup)
	case actFail:
		if errors.Is(err, messages.ErrClusterIDChanged) || errors.Is(err, messages.ErrIndexRegressed) ||
			errors.Is(err, messages.ErrUpstreamReset) {
			r.env.Observer.ClusterReset()
			log.Warn(d.log) // the host reports the error it gets from Err
		} else {
			log.Error(d.log)
		}
		r.fail(d.err)
	case actRestartLater:
		log.Warn(d.log, "after", d.delay)
		r.env.Observer.WatcherRestarted()
		r.restartGen++
		send, gen := r.sendSelf(system), r.restartGen
		r.restartTimer = r.cfg.Clock.AfterFunc(d.delay, func() { send(restartWatcher{gen}) })
	case actRestartNow:
		log.Warn(d.log)
		sup.RestartChildren(child)
	}
}

// startReset stops every pipeline child; once all have terminated, Receive
// resets the merge and spawns them again.
func (r *root) startReset(sup actor.Supervisor) {
	r.restartGen++ // void any pending watcher restart
	r.resetting = map[string]bool{}
	pids := r.pipeline()
	for _, pid := range pids {
		r.resetting[pid.Id] = true
	}
	sup.StopChildren(pids...)
}

// fail stops the syncer with err as the host's error.
func (r *root) fail(err error) {
	r.sendSelf(r.syncer.system)(failWith{err})
}

func (r *root) sendSelf(system *actor.ActorSystem) func(any) {
	rootCtx, self := system.Root, r.self
	return func(msg any) { rootCtx.Send(self, msg) }
}

var (
	_ actor.Actor              = (*root)(nil)
	_ actor.SupervisorStrategy = (*root)(nil)
)
