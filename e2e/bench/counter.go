package bench

import (
	"sync"
	"sync/atomic"
	"time"

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

// Holder is a host for memory benchmarks: a Counter that also keeps every
// key and value it is given, as a real host keeps its view, so that the
// heap the syncer needs beyond the host's own copy can be told apart. Delay,
// if not zero, is slept per update in each OnUpdates: a slow host, behind
// the snapshot.
type Holder struct {
	*Counter
	Delay time.Duration

	mu   sync.Mutex
	view map[string]string
}

var _ messages.Callbacks = (*Holder)(nil)

// NewHolder returns a Holder waiting for want updates and InSync.
func NewHolder(want int, delay time.Duration) *Holder {
	return &Holder{Counter: NewCounter(want), Delay: delay, view: make(map[string]string)}
}

// OnUpdates implements messages.Callbacks.
func (h *Holder) OnUpdates(updates []messages.Update) {
	h.mu.Lock()
	for _, u := range updates {
		if u.Type == messages.UpdateTypeDeleted {
			delete(h.view, u.Key)
		} else {
			h.view[u.Key] = u.Value
		}
	}
	h.mu.Unlock()
	if h.Delay > 0 {
		time.Sleep(time.Duration(len(updates)) * h.Delay)
	}
	h.Counter.OnUpdates(updates)
}

// Len returns how many keys the Holder holds.
func (h *Holder) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.view)
}
