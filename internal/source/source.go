// Package source is the seam between the actors and an etcd transport: what
// the watcher, the snapshot reader and the cluster-ID poller need from etcd,
// whichever API serves it. internal/etcdv2 and internal/etcdv3 implement it;
// the supervisor builds one and hands it to the actors.
//
// A Source reads one prefix, fixed when it is built, and speaks in the
// merger's terms (messages.KV, messages.WatcherUpdate, messages.WatcherDeletion):
// API details (v2 actions, hidden keys, v3 event types, compaction) stay in the
// Source. It holds no actors and no goroutines of its own beyond what a watch
// needs to read its stream.
package source

import (
	"context"
	"fmt"

	"github.com/etcdsync/etcdsync/messages"
)

// Head is where etcd is: its current index (a v2 index, a v3 revision) and
// the ID of the cluster that said so.
type Head struct {
	Index     uint64
	ClusterID string
}

// Source is one etcd transport. Its methods may be called from several
// goroutines at once.
type Source interface {
	// Head reads etcd's current index and cluster ID with a quorum read,
	// which is never stale and which a member cut off from its quorum cannot
	// answer.
	Head(ctx context.Context) (Head, error)
	// Snapshot reads every key under the prefix at one index: from any
	// member, or, if quorum, with a quorum read. It calls head once, before
	// any leaf, with the index the snapshot is at; if head returns an error
	// the read stops and Snapshot returns it. Then it calls leaf for every
	// key, in etcd's order. A prefix that does not exist is an empty
	// snapshot. An error after some leaves means the snapshot is incomplete.
	Snapshot(ctx context.Context, quorum bool, head func(Head) error, leaf func(messages.KV)) error
	// Watch opens a watch of the prefix for every change after index.
	Watch(after uint64) Watch
	// Classify says what an error of Watch.Next means for the watch.
	Classify(err error) Verdict
}

// Watch is one free-running watch. One goroutine uses it.
type Watch interface {
	// Next waits for the next changes after the watch's position, or for
	// ctx. Cancelling ctx ends the wait, not the watch.
	Next(ctx context.Context) (Changes, error)
	// Resume asks etcd again from the watch's position, dropping whatever
	// connection carries the watch now: after a silence, the watch may be
	// stuck on a member that no longer hears from its cluster, or on a
	// stream etcd forgot.
	Resume()
	// Close releases the watch's connection.
	Close()
}

// Changes is what one watch response says.
type Changes struct {
	// ClusterID is the cluster that sent the response.
	ClusterID string
	// Index is the watch's position after the response: every change at
	// or below it has been returned.
	Index uint64
	// Events are WatcherUpdate and WatcherDeletion values, in etcd's
	// order; none for an event the merge ignores, or for Progress.
	Events []messages.MergeInput
	// Progress: the response only moved the position (a v3 progress
	// notification); no event happened.
	Progress bool
}

// Verdict is what the watcher does after a watch error.
type Verdict uint8

const (
	// Retry: keep the watch's position and ask again after a delay.
	Retry Verdict = iota + 1
	// LostSync: the position is lost (it left etcd's history, or an event
	// could not be read); the watcher fails, is restarted, and a resync
	// follows.
	LostSync
	// Stopped: the watch was cancelled because the actor is stopping.
	Stopped
)

func (v Verdict) String() string {
	switch v {
	case Retry:
		return "retry"
	case LostSync:
		return "lost-sync"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}
