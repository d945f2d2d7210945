package actors

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// WatchVerdict is what the watcher does after a watch error.
type WatchVerdict uint8

const (
	// WatchRetry: keep the watch's position and ask again after a delay.
	WatchRetry WatchVerdict = iota + 1
	// WatchLostSync: the position is lost; the watcher fails, is restarted,
	// and a resync follows.
	WatchLostSync
	// WatchStopped: the watch was cancelled because the actor is stopping.
	WatchStopped
)

func (v WatchVerdict) String() string {
	switch v {
	case WatchRetry:
		return "retry"
	case WatchLostSync:
		return "lost-sync"
	case WatchStopped:
		return "stopped"
	}
	return fmt.Sprintf("WatchVerdict(%d)", uint8(v))
}

// ClassifyWatchError says what a watch error means, on its own: etcd's 401
// (the event index fell out of the 1000-event window) and 400 (etcd dropped
// the watcher) lose the position; cancellation is a stop; anything else —
// a dead member, a leader election, a timeout — is worth retrying from the
// same position. client/v2 wraps per-endpoint errors in a ClusterError, so
// its members are looked at too.
func ClassifyWatchError(err error) WatchVerdict {
	if errors.Is(err, context.Canceled) {
		return WatchStopped
	}
	errs := []error{err}
	var ce *client.ClusterError
	if errors.As(err, &ce) {
		errs = append(errs, ce.Errors...)
	}
	for _, e := range errs {
		var etcdErr client.Error
		if errors.As(e, &etcdErr) &&
			(etcdErr.Code == client.ErrorCodeEventIndexCleared || etcdErr.Code == client.ErrorCodeWatcherCleared) {
			return WatchLostSync
		}
	}
	return WatchRetry
}

// WatchErrors counts consecutive retryable watch errors and gives up after
// Limit of them: a watch that cannot reach etcd that long has probably
// fallen out of the event window anyway. Not safe for concurrent use.
type WatchErrors struct {
	Limit       int
	consecutive int
}

// Observe classifies err, counting it against the limit.
func (w *WatchErrors) Observe(err error) WatchVerdict {
	v := ClassifyWatchError(err)
	if v != WatchRetry {
		return v
	}
	w.consecutive++
	if w.consecutive >= w.Limit {
		return WatchLostSync
	}
	return WatchRetry
}

// Succeeded resets the count after an event was received.
func (w *WatchErrors) Succeeded() { w.consecutive = 0 }

// Consecutive returns the retryable errors counted since the last success.
func (w *WatchErrors) Consecutive() int { return w.consecutive }

// EventFromResponse turns a watch response on prefix into the merger's
// input: a WatcherUpdate, a WatcherDeletion, or nil for an event the merge
// ignores (a directory created, a hidden key). An action it does not know is
// an error.
//
// A set of a directory over a file (PUT ?dir=true on a key that held a
// value, which v2 allows) is the file's deletion: the event says "set" with
// a directory node and the file as its PrevNode.
func EventFromResponse(prefix string, resp *client.Response) (any, error) {
	if resp == nil || resp.Node == nil {
		return nil, errors.New("watch response without a node")
	}
	n := resp.Node
	if Hidden(prefix, n.Key) {
		return nil, nil
	}
	switch resp.Action {
	case "set", "compareAndSwap", "update", "create":
		if !n.Dir {
			return messages.WatcherUpdate{KV: messages.KV{Key: n.Key, Value: n.Value, ModifiedIndex: n.ModifiedIndex}}, nil
		}
		if p := resp.PrevNode; p != nil && !p.Dir {
			return messages.WatcherDeletion{Key: n.Key, ModifiedIndex: n.ModifiedIndex}, nil
		}
		return nil, nil
	case "delete", "compareAndDelete", "expire":
		return messages.WatcherDeletion{Key: n.Key, ModifiedIndex: n.ModifiedIndex}, nil
	}
	return nil, fmt.Errorf("watch event with unknown action %q on %s@%d", resp.Action, n.Key, n.ModifiedIndex)
}

// Hidden reports whether etcd hides key from a recursive GET or watch of
// prefix: some path element below prefix starts with "_" (v2store's
// isHidden). etcd applies the rule to GETs and to live watch notifications
// but not to the event history a watch behind the head is served from, so
// the syncer applies it itself, everywhere: a hidden key let in from the
// history would never see its deletion, which is notified live, hidden.
func Hidden(prefix, key string) bool {
	if len(key) <= len(prefix) {
		return false
	}
	rest := key[len(prefix):]
	// Cleaning only drops elements, so a key with no element that starts
	// with "_" cannot gain one: that, the common case, needs no Clean (it
	// was a seventh of a snapshot's CPU).
	if rest[0] != '_' && !strings.Contains(rest, "/_") {
		return false
	}
	return strings.Contains(path.Clean("/"+rest), "/_")
}

// CheckReconnect judges etcd as a watch finds it after its connection broke:
// the watch started on cluster startID and has seen index seen; etcd now
// answers with cluster id at index now. Another cluster, or the same one
// below what the watch has seen (restored from a backup), means the watch's
// position is meaningless; the error wraps messages.ErrClusterIDChanged or
// messages.ErrIndexRegressed.
func CheckReconnect(startID string, seen uint64, id string, now uint64) error {
	switch {
	case startID != "" && id != "" && id != startID:
		return fmt.Errorf("%w: was %s, now %s after a reconnect", messages.ErrClusterIDChanged, startID, id)
	case now < seen:
		return fmt.Errorf("%w: etcd is at index %d after a reconnect; the watch had seen %d",
			messages.ErrIndexRegressed, now, seen)
	}
	return nil
}
