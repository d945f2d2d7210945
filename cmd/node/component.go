package main

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// component is one part of a running node: the listeners, the embedded
// etcd, the relay server, the HTTP server, the syncer. A components list
// starts them in order and stops them in reverse.
type component interface {
	// name names it in logs, after "the": "stopping the HTTP server".
	name() string
	// start returns once the component runs, or with why it could not
	// start; it cleans up after itself then. It gives up when ctx is done.
	start(ctx context.Context) error
	// stop returns once the component has stopped, or when ctx is done
	// (its deadline is --shutdown-timeout).
	stop(ctx context.Context) error
}

// errStoppedStarting is what components.start returns when ctx was done
// before every component had started: a signal, not a failure.
var errStoppedStarting = errors.New("stopped while starting")

// components runs the list of a node's parts. A part that fails while it
// runs calls fail; the first failure ends wait.
type components struct {
	list     []component
	started  int // list[:started] are running
	failures chan error
	logger   *slog.Logger
	timeout  time.Duration // each stop's
}

func newComponents(logger *slog.Logger, stopTimeout time.Duration) *components {
	return &components{failures: make(chan error, 1), logger: logger, timeout: stopTimeout}
}

// add appends c to the list: it starts after, and stops before, those
// added before it.
func (cs *components) add(c component) { cs.list = append(cs.list, c) }

// fail reports the failure of a running component. Only the first is
// kept: the node stops on it, and the others are likely its consequences.
// Safe for concurrent use; it never blocks.
func (cs *components) fail(err error) {
	select {
	case cs.failures <- err:
	default:
	}
}

// start starts the components in order. If one cannot start, it stops
// those already started, in reverse, and returns its error, or
// errStoppedStarting if ctx was done meanwhile.
func (cs *components) start(ctx context.Context) error {
	for _, c := range cs.list[cs.started:] {
		began := time.Now()
		if err := c.start(ctx); err != nil {
			if ctx.Err() != nil { // a signal while it was starting: not a failure
				cs.logger.Info("stopped while the "+c.name()+" was starting", "cause", context.Cause(ctx))
				err = errStoppedStarting
			}
			cs.stop(ctx)
			return err
		}
		cs.started++
		cs.logger.Debug("started", "component", c.name(), "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// wait returns nil once ctx is done, or the first failure of a component.
func (cs *components) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		cs.logger.Info("shutting down", "cause", context.Cause(ctx))
		return nil
	case err := <-cs.failures:
		return err
	}
}

// stop stops the running components in reverse order, each within the
// stop timeout, even when ctx is done already: ctx is the node's, and its
// end is why the components stop.
func (cs *components) stop(ctx context.Context) {
	for ; cs.started > 0; cs.started-- {
		cs.stopNow(ctx, cs.list[cs.started-1])
	}
}

// stopNow stops c within the stop timeout, and logs how that went. Called
// on a running component ahead of the others (node migrate --once stops
// following v2 before its final comparison), it leaves c to be stopped
// again by stop, which its stop must allow.
func (cs *components) stopNow(ctx context.Context, c component) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cs.timeout)
	defer cancel()
	if err := c.stop(stopCtx); err != nil {
		cs.logger.Warn("stopping the "+c.name(), "err", err)
		return
	}
	cs.logger.Debug("stopped", "component", c.name())
}
