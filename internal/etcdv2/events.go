package etcdv2

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// errUnreadable marks a watch event the syncer cannot make sense of: it
// cannot tell what changed, so only a resync can.
var errUnreadable = errors.New("etcdv2: unreadable watch event")

// ClassifyWatchError says what a watch error means, on its own: etcd's 401
// (the event index fell out of the 1000-event window) and 400 (etcd dropped
// the watcher) lose the position, and so does an event that cannot be read;
// cancellation is a stop; anything else — a dead member, a leader election, a
// timeout — is worth retrying from the same position. client/v2 wraps
// per-endpoint errors in a ClusterError, so its members are looked at too.
func ClassifyWatchError(err error) source.Verdict {
	if errors.Is(err, context.Canceled) {
		return source.Stopped
	}
	if errors.Is(err, errUnreadable) {
		return source.LostSync
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
			return source.LostSync
		}
	}
	return source.Retry
}

// EventFromResponse turns a watch response on prefix into the merger's
// input: a WatcherUpdate, a WatcherDeletion, or nil for an event the merge
// ignores (a directory created, a hidden key). An action it does not know is
// an error.
//
// A set of a directory over a file (PUT ?dir=true on a key that held a
// value, which v2 allows) is the file's deletion: the event says "set" with
// a directory node and the file as its PrevNode.
func EventFromResponse(prefix string, resp *client.Response) (messages.MergeInput, error) {
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
