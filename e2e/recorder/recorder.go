// Package recorder is a host for specs: a messages.Callbacks that replays
// every update into a map, the way a real host would, and checks the
// syncer's contract as it goes (a key's revisions only rise within a cluster
// generation, "new" only for a key the host lacks, "updated" and "deleted"
// only for one it has, no calls after the syncer stopped).
//
// A WaitForDatastore status after the first marks a new cluster generation
// (the syncer was rebuilt against a reset or restored etcd): revisions start
// over there.
//
// It is safe for concurrent use: the syncer calls it from its consumer
// actor while the spec reads it.
package recorder

import (
	"fmt"
	"maps"
	"sync"

	"github.com/etcdsync/etcdsync/messages"
)

// Recorder records what a syncer delivers.
type Recorder struct {
	mu        sync.Mutex
	view      map[string]string
	revs      map[string]uint64
	statuses  []messages.SyncStatus
	calls     int
	updates   int
	violation error
	closed    bool
	journal   []string // every status and update, in order

	// Panic, when set, is called before each OnUpdates is applied; if it
	// returns true the call panics instead (a faulty host).
	Panic func(updates []messages.Update) bool
}

// New returns an empty Recorder.
func New() *Recorder {
	return &Recorder{view: map[string]string{}, revs: map[string]uint64{}}
}

// OnStatusUpdated implements messages.Callbacks.
func (r *Recorder) OnStatusUpdated(s messages.SyncStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkOpen()
	if s == messages.WaitForDatastore && len(r.statuses) > 0 {
		clear(r.revs) // a new cluster generation: revisions start over
	}
	r.statuses = append(r.statuses, s)
	r.journal = append(r.journal, s.String())
}

// OnUpdates implements messages.Callbacks.
func (r *Recorder) OnUpdates(updates []messages.Update) {
	if r.Panic != nil && r.Panic(updates) {
		panic("recorder: a faulty host panics")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkOpen()
	r.calls++
	r.updates += len(updates)
	for _, u := range updates {
		_, had := r.view[u.Key]
		switch {
		case u.Type == messages.UpdateTypeNew && had:
			r.violate("%v for a key the host has", u)
		case u.Type != messages.UpdateTypeNew && !had:
			r.violate("%v for a key the host lacks", u)
		case u.Revision < r.revs[u.Key]:
			r.violate("%v: revision below %d", u, r.revs[u.Key])
		}
		r.revs[u.Key] = u.Revision
		r.journal = append(r.journal, u.String())
		if u.Type == messages.UpdateTypeDeleted {
			delete(r.view, u.Key)
		} else {
			r.view[u.Key] = u.Value
		}
	}
}

func (r *Recorder) checkOpen() {
	if r.closed {
		r.violate("callback after the syncer stopped")
	}
}

func (r *Recorder) violate(format string, args ...any) {
	if r.violation == nil {
		r.violation = fmt.Errorf(format, args...)
	}
}

// Close records that the syncer has stopped: any later call is a violation.
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

// Violation returns the first breach of the contract seen, or nil.
func (r *Recorder) Violation() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.violation
}

// Map returns a copy of the host's view.
func (r *Recorder) Map() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.view)
}

// InSyncMap returns a copy of the host's view if the last status delivered
// is InSync, else nil.
func (r *Recorder) InSyncMap() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) == 0 || r.statuses[len(r.statuses)-1] != messages.InSync {
		return nil
	}
	return maps.Clone(r.view)
}

// Status returns the last status delivered, or 0.
func (r *Recorder) Status() messages.SyncStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) == 0 {
		return 0
	}
	return r.statuses[len(r.statuses)-1]
}

// Statuses returns every status delivered, in order.
func (r *Recorder) Statuses() []messages.SyncStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]messages.SyncStatus(nil), r.statuses...)
}

// Journal returns every status and update delivered, in order, as text.
func (r *Recorder) Journal() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.journal...)
}

// Calls returns how many OnUpdates calls were applied, and the updates they
// carried.
func (r *Recorder) Calls() (calls, updates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.updates
}

var _ messages.Callbacks = (*Recorder)(nil)
