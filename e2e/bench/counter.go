package bench

import (
	"sync"
	"sync/atomic"

	"github.com/etcdsync/etcdsync/messages"
)

// Counter is a host for benchmarks: a messages.Callbacks that only counts
// what it is given, and closes Done once it has been told InSync after at
// least Want updates. Its methods are safe for concurrent use.
type Counter struct {
	want    int64
	updates atomic.Int64
	calls   atomic.Int64
	inSync  atomic.Bool
	done    chan struct{}
	once    sync.Once
}

var _ messages.Callbacks = (*Counter)(nil)

// NewCounter returns a Counter waiting for want updates and InSync.
func NewCounter(want int) *Counter {
	return &Counter{want: int64(want), done: make(chan struct{})}
}

// OnStatusUpdated implements messages.Callbacks.
func (c *Counter) OnStatusUpdated(s messages.SyncStatus) {
	c.inSync.Store(s == messages.InSync)
	c.check()
}

// OnUpdates implements messages.Callbacks.
func (c *Counter) OnUpdates(updates []messages.Update) {
	c.calls.Add(1)
	c.updates.Add(int64(len(updates)))
	c.check()
}

func (c *Counter) check() {
	if c.inSync.Load() && c.updates.Load() >= c.want {
		c.once.Do(func() { close(c.done) })
	}
}

// Done is closed once InSync has been reported with at least the wanted
// number of updates delivered.
func (c *Counter) Done() <-chan struct{} { return c.done }

// Updates returns how many updates have been delivered.
func (c *Counter) Updates() int64 { return c.updates.Load() }

// Calls returns how many times OnUpdates has been called.
func (c *Counter) Calls() int64 { return c.calls.Load() }
