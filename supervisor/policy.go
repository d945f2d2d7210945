package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

// restartStorm: a child (other than the watcher, which backs off) failing
// this often within stormWindow is a bug that restarting will not fix.
const (
	restartStorm = 10
	stormWindow  = time.Minute
)

// action is what the root does about a child's failure.
type action uint8

const (
	actIgnore       action = iota + 1 // the child is being stopped anyway
	actReset                          // stop the pipeline; respawn it against the new cluster
	actFail                           // stop the syncer, handing decision.err to the host
	actRestartLater                   // restart the watcher after decision.delay
	actRestartNow                     // restart the child at once
)

// decision is the restart policy's answer to one failure.
type decision struct {
	action    action
	directive actor.Directive // published on the event stream for observers
	delay     time.Duration   // with actRestartLater
	err       error           // with actFail: the host's error
	log       string          // what to log, at warn (error when actFail)
}

// policy is the root's restart policy, apart from its effects: reset policy,
// poison batches, the watcher's backoff and the counting of restart storms.
// decide is deterministic given the restartBackoff's clock and randomness. Not
// safe for concurrent use; the root calls it from its own goroutine.
type policy struct {
	onReset  ResetPolicy
	backoff  *restartBackoff
	failures map[string]*failureCount // storm counting, per child ID
}

type failureCount struct {
	n     int
	since time.Time
}

// decide says what to do about err, the failure of child (an actor ID),
// at now. watcher and consumer are the IDs of those children; stopping
// says the syncer is being stopped, resetting that a reset is under way.
func (p *policy) decide(child string, err error, now time.Time, watcher, consumer string, stopping, resetting bool) decision {
	switch {
	case stopping, resetting && child != consumer:
		return decision{action: actIgnore, directive: actor.StopDirective}
	case errors.Is(err, messages.ErrClusterIDChanged), errors.Is(err, messages.ErrIndexRegressed),
		errors.Is(err, messages.ErrUpstreamReset):
		if p.onReset == StopOnReset {
			return decision{action: actFail, directive: actor.StopDirective, err: err,
				log: "etcd was rebuilt or restored; stopping, as configured"}
		}
		return decision{action: actReset, directive: actor.RestartDirective,
			log: "etcd was rebuilt or restored; restarting the actors against it, keeping the host's keys"}
	case errors.Is(err, messages.ErrPoisonBatch):
		return decision{action: actFail, directive: actor.StopDirective, err: err,
			log: "stopping: the host callback keeps failing on one batch"}
	case watcher != "" && child == watcher:
		return decision{action: actRestartLater, directive: actor.RestartDirective, delay: p.backoff.Next(),
			log: "watcher failed; restarting it"}
	}
	if p.storm(child, now) {
		return decision{action: actFail, directive: actor.StopDirective,
			err: fmt.Errorf("etcdsync: %s failed %d times within %v: %w", child, restartStorm, stormWindow, err),
			log: "child keeps failing; stopping the syncer"}
	}
	return decision{action: actRestartNow, directive: actor.RestartDirective, log: "child failed; restarting it"}
}

// storm counts a failure of child and reports whether it is one too many.
func (p *policy) storm(child string, now time.Time) bool {
	f := p.failures[child]
	if f == nil || now.Sub(f.since) > stormWindow {
		f = &failureCount{since: now}
		p.failures[child] = f
	}
	f.n++
	return f.n >= restartStorm
}

// forget drops the storm count of a child whose name is never used again.
func (p *policy) forget(child string) { delete(p.failures, child) }
