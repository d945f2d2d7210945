package seedbaseline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// Syncer is the seed's syncer architecture, restated for side-by-side
// benchmarks: four goroutines joined by channels, as libcalico-go's etcd v2
// syncer (2016-2017) had them.
//
//   - The watcher reads etcd's current index, asks the merger for a
//     snapshot at that index, and watches the prefix from it, one long-poll
//     request per event; a 400 or 401 error makes it start over at the
//     current index. It sends into a channel of 20 000.
//   - The snapshot reader, on request, GETs the prefix recursively through
//     client/v2 (the whole answer in memory), re-reads while it is below the
//     required index, and sends the leaves one by one into an unbuffered
//     channel.
//   - The merger owns the Tracker, merges both streams, and calls the host:
//     one OnUpdates call of one update per changed key, and one OnUpdates
//     call (possibly empty) for the keys a finished snapshot swept.
//   - The cluster-ID poller reads the prefix's parent every PollInterval
//     (+0-10 %) and remembers the first cluster ID it saw.
//
// Where it differs from the seed, so that it can run in a benchmark: keys
// and values are delivered as raw strings (the seed parsed them into Calico
// model objects; etcdsync without a Decoder does not parse either); a
// missing Ready key is read as etcd's index from its "key not found" error
// (the seed waited for the key to exist); a changed cluster ID stops the
// syncer with ErrClusterIDChanged (the seed exited the process); and Stop
// ends every goroutine (the seed's never ended).
//
// Start and Stop must each be called once, Start first.
type Syncer struct {
	keys      client.KeysAPI
	prefix    string
	callbacks messages.Callbacks

	// PollInterval is the cluster-ID poll interval; the seed's 10 s when
	// zero. Set it before Start.
	PollInterval time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	errOnce sync.Once
	err     error
}

// ErrClusterIDChanged stops a Syncer whose etcd answered with another
// cluster ID than the first it saw.
var ErrClusterIDChanged = errors.New("seedbaseline: etcd cluster ID changed")

// NewSyncer returns a Syncer of prefix (e.g. "/calico/v1") that reads
// through keys and delivers to callbacks.
func NewSyncer(keys client.KeysAPI, prefix string, callbacks messages.Callbacks) *Syncer {
	return &Syncer{keys: keys, prefix: path.Clean(prefix), callbacks: callbacks}
}

// Channel capacities, as the seed had them: the watcher runs free, the
// snapshot reader is held back by the merger.
const (
	watcherBuffer  = 20_000
	snapshotBuffer = 0
)

// Start starts the four goroutines.
func (s *Syncer) Start() {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	watcherC := make(chan any, watcherBuffer)
	snapshotC := make(chan any, snapshotBuffer)
	requestC := make(chan snapshotRequest)
	interval := s.PollInterval
	if interval == 0 {
		interval = 10 * time.Second
	}
	for _, run := range []func(){
		func() { s.watch(watcherC) },
		func() { s.pollClusterID(interval) },
		func() { s.readSnapshots(snapshotC, requestC) },
		func() { s.merge(snapshotC, watcherC, requestC) },
	} {
		s.wg.Go(run)
	}
}

// Stop ends every goroutine and waits for them. No callback runs after it
// returns.
func (s *Syncer) Stop() {
	s.cancel()
	s.wg.Wait()
}

// Err returns why the Syncer stopped itself, or nil.
func (s *Syncer) Err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return s.err
}

func (s *Syncer) fail(err error) {
	s.errOnce.Do(func() { s.err = err })
	s.cancel()
}

// Messages between the goroutines.
type (
	kv struct {
		key, value    string
		modifiedIndex uint64
	}
	snapshotRequest  struct{ minIndex uint64 }
	snapshotStarted  struct{ index uint64 }
	snapshotFinished struct{ index uint64 }
	snapshotKV       struct {
		kv
		index uint64 // stored as the key's mark: the snapshot's index
	}
	watcherKV       struct{ kv } // stored at its own modifiedIndex
	watcherDeletion struct {
		key           string
		modifiedIndex uint64
	}
	watcherNeedsSnapshot struct{ minIndex uint64 }
)

// send delivers m on c unless the syncer is stopping.
func send[T any](ctx context.Context, c chan<- T, m T) bool {
	select {
	case c <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Watch actions and what they mean to the merger.
var upserts, deletions = map[string]bool{"set": true, "compareAndSwap": true, "update": true, "create": true},
	map[string]bool{"delete": true, "compareAndDelete": true, "expire": true}

func (s *Syncer) watch(out chan<- any) {
	ctx := s.ctx
	var lastErr time.Time
	for ctx.Err() == nil {
		index, err := s.currentIndex(ctx)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		if !send(ctx, out, any(watcherNeedsSnapshot{index})) {
			return
		}
		w := s.keys.Watcher(s.prefix, &client.WatcherOptions{AfterIndex: index, Recursive: true})
		for ctx.Err() == nil {
			resp, err := w.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if time.Since(lastErr) < time.Second { // throttle a failing etcd
					sleep(ctx, time.Second)
				}
				lastErr = time.Now()
				if lostPosition(err) {
					break // start over at the current index
				}
				continue
			}
			n := resp.Node
			var m any
			switch {
			case upserts[resp.Action] && n.Dir:
				continue // a directory was created: nothing to tell
			case upserts[resp.Action]:
				m = watcherKV{kv{n.Key, n.Value, n.ModifiedIndex}}
			case deletions[resp.Action]:
				m = watcherDeletion{n.Key, n.ModifiedIndex}
			default:
				panic(fmt.Sprintf("seedbaseline: unknown watch action %q", resp.Action))
			}
			if !send(ctx, out, m) {
				return
			}
		}
	}
}

// currentIndex reads etcd's index with a GET of the prefix's Ready key.
func (s *Syncer) currentIndex(ctx context.Context) (uint64, error) {
	resp, err := s.keys.Get(ctx, s.prefix+"/Ready", nil)
	var e client.Error
	switch {
	case err == nil:
		return resp.Index, nil
	case errors.As(err, &e) && e.Code == client.ErrorCodeKeyNotFound:
		return e.Index, nil
	}
	return 0, err
}

// lostPosition reports whether a watch error means events were missed:
// etcd cleared the event index (401) or the watcher (400). Everything else
// is retried.
func lostPosition(err error) bool {
	errs := []error{err}
	var ce *client.ClusterError
	if errors.As(err, &ce) {
		errs = ce.Errors
	}
	for _, err := range errs {
		var e client.Error
		if errors.As(err, &e) && (e.Code == client.ErrorCodeEventIndexCleared || e.Code == client.ErrorCodeWatcherCleared) {
			return true
		}
	}
	return false // timeouts and other transport errors: retried
}

func (s *Syncer) readSnapshots(out chan<- any, requests <-chan snapshotRequest) {
	ctx := s.ctx
	var highest uint64
	for {
		var req snapshotRequest
		select {
		case req = <-requests:
		case <-ctx.Done():
			return
		}
		// A stale follower can answer below the required index: re-read.
		for highest < req.minIndex {
			resp, err := s.keys.Get(ctx, s.prefix, &client.GetOptions{Recursive: true})
			if err != nil {
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
			if resp.Index < req.minIndex {
				if !sleep(ctx, 100*time.Millisecond) {
					return
				}
				continue
			}
			if !send(ctx, out, any(snapshotStarted{resp.Index})) || !sendLeaves(ctx, out, resp.Node, resp.Index) {
				return
			}
			highest = resp.Index
		}
		// Every request gets its finish, even one already satisfied.
		if !send(ctx, out, any(snapshotFinished{highest})) {
			return
		}
	}
}

func sendLeaves(ctx context.Context, out chan<- any, n *client.Node, index uint64) bool {
	if n == nil {
		return true
	}
	if !n.Dir {
		return send(ctx, out, any(snapshotKV{kv{n.Key, n.Value, n.ModifiedIndex}, index}))
	}
	for _, c := range n.Nodes {
		if !sendLeaves(ctx, out, c, index) {
			return false
		}
	}
	return true
}

func (s *Syncer) pollClusterID(interval time.Duration) {
	ctx := s.ctx
	parent := path.Dir(s.prefix) + "/"
	seen := ""
	for {
		resp, err := s.keys.Get(ctx, parent, nil)
		if err == nil && resp.ClusterID != "" {
			switch {
			case seen == "": // the seed also logged etcd's default ID as an error
				seen = resp.ClusterID
			case seen != resp.ClusterID:
				s.fail(fmt.Errorf("%w: %s, then %s", ErrClusterIDChanged, seen, resp.ClusterID))
				return
			}
		}
		if !sleep(ctx, time.Duration(float64(interval)*(1+0.1*rand.Float64()))) {
			return
		}
	}
}

func (s *Syncer) merge(snapshots <-chan any, watcher <-chan any, requests chan<- snapshotRequest) {
	ctx := s.ctx
	var minRequired, highestCompleted uint64
	inProgress := false
	marks := NewTracker()

	s.callbacks.OnStatusUpdated(messages.WaitForDatastore)
	for {
		var in any
		select {
		case in = <-snapshots:
		case in = <-watcher:
		case <-ctx.Done():
			return
		}
		switch in := in.(type) {
		case snapshotKV:
			s.update(marks, in.kv, in.index)
		case watcherKV:
			s.update(marks, in.kv, in.modifiedIndex)
		case watcherDeletion:
			s.deleted(marks.StoreDeletion(in.key, in.modifiedIndex), in.modifiedIndex)
		case watcherNeedsSnapshot:
			minRequired = in.minIndex
		case snapshotStarted:
		case snapshotFinished:
			inProgress = false
			marks.StopTrackingDeletions()
			s.deleted(marks.DeleteOldKeys(in.index), in.index)
			highestCompleted = max(highestCompleted, in.index)
			if in.index >= minRequired {
				s.callbacks.OnStatusUpdated(messages.InSync)
			} // else: stale before it finished; another one starts below
		default:
			panic(fmt.Sprintf("seedbaseline: unexpected %T in the merger", in))
		}
		if highestCompleted < minRequired && !inProgress {
			if !send(ctx, requests, snapshotRequest{minRequired}) {
				return
			}
			inProgress = true
			marks.StartTrackingDeletions()
			s.callbacks.OnStatusUpdated(messages.Resync)
		}
	}
}

// update stores kv's mark at storeIdx and tells the host, in a call of its
// own, if kv is newer than what it had.
func (s *Syncer) update(marks *Tracker, kv kv, storeIdx uint64) {
	old := marks.StoreUpdate(kv.key, storeIdx)
	if old >= kv.modifiedIndex {
		return
	}
	t := messages.UpdateTypeUpdated
	if old == 0 {
		t = messages.UpdateTypeNew
	}
	s.callbacks.OnUpdates([]messages.Update{{Key: kv.key, Value: kv.value, Revision: kv.modifiedIndex, Type: t}})
}

// deleted tells the host about deleted keys in one call, even when there
// are none, as the seed did.
func (s *Syncer) deleted(keys []string, rev uint64) {
	updates := make([]messages.Update, 0, len(keys))
	for _, k := range keys {
		updates = append(updates, messages.Update{Key: k, Revision: rev, Type: messages.UpdateTypeDeleted})
	}
	s.callbacks.OnUpdates(updates)
}
