package supervisor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/messages"
)

func TestPolicyDecides(t *testing.T) {
	boom := errors.New("boom")
	reset := fmt.Errorf("pipeline: %w", messages.ErrClusterIDChanged)
	for _, tc := range []struct {
		name                string
		onReset             ResetPolicy
		child               string
		err                 error
		stopping, resetting bool
		want                action
		directive           actor.Directive
	}{
		{"a cluster reset resyncs by default", ResyncOnReset, "merger", reset, false, false, actReset, actor.RestartDirective},
		{"an index regression too", ResyncOnReset, "clusterid", messages.ErrIndexRegressed, false, false, actReset, actor.RestartDirective},
		{"an upstream reset too", ResyncOnReset, "relay", messages.ErrUpstreamReset, false, false, actReset, actor.RestartDirective},
		{"a reset stops the syncer under StopOnReset", StopOnReset, "watcher", reset, false, false, actFail, actor.StopDirective},
		{"a poison batch stops it", ResyncOnReset, "consumer", messages.ErrPoisonBatch, false, false, actFail, actor.StopDirective},
		{"a failed watcher restarts after a backoff", ResyncOnReset, "watcher", boom, false, false, actRestartLater, actor.RestartDirective},
		{"another child restarts at once", ResyncOnReset, "snapshot", boom, false, false, actRestartNow, actor.RestartDirective},
		{"nothing restarts while the syncer stops", ResyncOnReset, "watcher", reset, true, false, actIgnore, actor.StopDirective},
		{"nothing of the pipeline restarts during a reset", ResyncOnReset, "merger", boom, false, true, actIgnore, actor.StopDirective},
		{"but the consumer does", ResyncOnReset, "consumer", boom, false, true, actRestartNow, actor.RestartDirective},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy{onReset: tc.onReset, backoff: defaultBackoff.newBackoff(nil, nil), failures: map[string]*failureCount{}}
			p.backoff.Clock, p.backoff.Rand = fixedClock{}, func(n int64) int64 { return n - 1 }
			d := p.decide(tc.child, tc.err, time.Time{}, "watcher", "consumer", tc.stopping, tc.resetting)
			if d.action != tc.want || d.directive != tc.directive {
				t.Errorf("decide = action %d, %v; want %d, %v", d.action, d.directive, tc.want, tc.directive)
			}
			if d.action == actFail && !errors.Is(d.err, tc.err) {
				t.Errorf("the host's error %v does not wrap %v", d.err, tc.err)
			}
			if d.action == actRestartLater && d.delay != defaultBackoff.Initial-1 {
				t.Errorf("first watcher delay %v, want the top of [0, %v)", d.delay, defaultBackoff.Initial)
			}
		})
	}
}

func TestPolicyCountsRestartStormsPerChildWithinAWindow(t *testing.T) {
	p := policy{failures: map[string]*failureCount{}}
	start := time.Unix(1000, 0)
	boom := errors.New("boom")
	for i := range restartStorm - 1 {
		if d := p.decide("merger", boom, start.Add(time.Duration(i)*time.Second), "watcher", "consumer", false, false); d.action != actRestartNow {
			t.Fatalf("failure %d: %v, want a restart", i+1, d.action)
		}
	}
	if d := p.decide("snapshot", boom, start, "watcher", "consumer", false, false); d.action != actRestartNow {
		t.Errorf("another child's failure counts apart: %v", d.action)
	}
	d := p.decide("merger", boom, start.Add(30*time.Second), "watcher", "consumer", false, false)
	if d.action != actFail || !errors.Is(d.err, boom) {
		t.Errorf("the %dth failure within %v: %v (%v), want the syncer stopped", restartStorm, stormWindow, d.action, d.err)
	}
	p.forget("merger")
	if d := p.decide("merger", boom, start.Add(31*time.Second), "watcher", "consumer", false, false); d.action != actRestartNow {
		t.Errorf("after forget: %v, want a restart", d.action)
	}
	later := start.Add(31*time.Second + stormWindow + time.Second)
	for range restartStorm - 1 {
		p.decide("snapshot", boom, later, "watcher", "consumer", false, false)
	}
	if d := p.decide("snapshot", boom, later, "watcher", "consumer", false, false); d.action != actFail {
		t.Errorf("a window that started over still counts to %d: %v", restartStorm, d.action)
	}
}

// fixedClock is a clock.PassiveClock that stands still.
type fixedClock struct{}

func (fixedClock) Now() time.Time                  { return time.Unix(0, 0) }
func (fixedClock) Since(t time.Time) time.Duration { return time.Unix(0, 0).Sub(t) }
