package actors

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// SnapshotConfig configures a snapshot reader actor.
type SnapshotConfig struct {
	// Cluster judges the cluster ID of every snapshot before anything of it
	// is sent.
	Cluster *SharedClusterIDCheck
	// BatchSize is the most keys one SnapshotBatch carries.
	BatchSize int
	// StaleRetry is how long to wait before re-reading a snapshot that came
	// back below the requested index (a lagging follower).
	StaleRetry time.Duration
	// StaleTimeout is how long reads may stay below the requested index,
	// with the cluster ID unchanged, before the reader concludes that etcd
	// went back in time and fails with messages.ErrIndexRegressed.
	StaleTimeout time.Duration
}

// snapshotShared is what outlives one incarnation of the reader: the
// request being served, so that a restarted reader serves it again.
type snapshotShared struct {
	requester   *actor.PID
	request     *messages.SnapshotRequest
	requestedAt time.Time // when the request came, for the read's duration
	keys        int       // keys sent of the read being served
}

// NewSnapshotReaderProps returns the props of a snapshot reader actor. On each
// messages.SnapshotRequest it reads a recursive snapshot of the prefix from
// any member, re-reading with quorum reads while the answer is below the
// requested index (a member behind, or cut off from its quorum), and
// sends the requester SnapshotBatch messages and SnapshotFinished. A prefix
// that does not exist yet is an empty snapshot. Transport errors are retried
// with backoff; a datastore that stays behind the request is
// messages.ErrIndexRegressed.
func NewSnapshotReaderProps(env *Env, cfg SnapshotConfig) *actor.Props {
	return shellProps(env, &snapshotShared{}, 1, func(shared *snapshotShared, tasks []*task) lifecycle {
		return &snapshotReader{env: env, cfg: cfg, shared: shared, task: tasks[0]}
	})
}

// snapshotReader is the snapshot reader actor; see NewSnapshotReaderProps.
type snapshotReader struct {
	env    *Env
	cfg    SnapshotConfig
	shared *snapshotShared
	task   *task // the read
}

// What the read posts to its actor, besides the SnapshotBatch and
// SnapshotFinished it sends on.
type (
	snapshotTrouble struct{ err error }
	snapshotFailed  struct{ err error }
)

func (s *snapshotReader) started(c actor.Context) {
	if s.shared.request != nil {
		s.start(c) // a restart interrupted a read: serve it again
	}
}

func (s *snapshotReader) received(c actor.Context, msg any) {
	if m, ok := msg.(messages.SnapshotRequest); ok {
		s.shared.requester, s.shared.request = c.Sender(), &m
		s.shared.requestedAt, s.shared.keys = s.env.Clock.Now(), 0
		s.start(c)
	}
}

func (s *snapshotReader) posted(c actor.Context, _ *task, msg any) {
	switch msg := msg.(type) {
	case messages.SnapshotBatch:
		s.shared.keys += len(msg.KVs)
		c.Send(s.shared.requester, msg)
	case messages.SnapshotFinished:
		s.shared.request = nil
		s.env.Observer.SnapshotRead(s.env.Clock.Since(s.shared.requestedAt), s.shared.keys)
		c.Send(s.shared.requester, msg)
	case snapshotTrouble:
		s.env.Logger.Warn("snapshot read failed; retrying", "err", msg.err)
	case snapshotFailed:
		panic(msg.err)
	}
}

func (s *snapshotReader) start(c actor.Context) {
	minIdx := s.shared.request.MinIndex
	s.task.start(c, s.env, s.env.Goroutines, func(ctx context.Context, send func(any)) { s.read(ctx, send, minIdx) })
}

// errStale stops a read whose answer is below the requested index before
// anything of it is sent.
var errStale = errors.New("snapshot below the requested index")

// read is the goroutine of one request: read until a snapshot at or above
// minIdx arrives, streaming it to the merger as it is decoded.
func (s *snapshotReader) read(ctx context.Context, send func(any), minIdx uint64) {
	retry := s.env.NewBackoff()
	size := max(1, s.cfg.BatchSize)
	stale := StaleCheck{Timeout: s.cfg.StaleTimeout}
	quorum := false // the first read may come from any member
	for {
		var idx uint64
		var id string
		batch := make([]messages.KV, 0, size)
		head := func(h source.Head) error {
			idx, id = h.Index, h.ClusterID
			if err := s.cfg.Cluster.Check(id, s.env.Logger); err != nil {
				return err
			}
			if idx < minIdx {
				return errStale
			}
			return nil
		}
		leaf := func(kv messages.KV) {
			batch = append(batch, kv)
			if len(batch) == size {
				send(messages.SnapshotBatch{Index: idx, KVs: batch})
				batch = make([]messages.KV, 0, size)
			}
		}
		err := s.env.Source.Snapshot(ctx, quorum, head, leaf)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, messages.ErrClusterIDChanged):
			send(snapshotFailed{err})
			return
		case err == nil:
			if len(batch) > 0 {
				send(messages.SnapshotBatch{Index: idx, KVs: batch})
			}
			send(messages.SnapshotFinished{Index: idx})
			return
		case errors.Is(err, errStale):
			// A follower behind the leader catches up within moments; one
			// cut off from its quorum never does, and a datastore restored
			// from a backup neither. Re-read with a quorum read: the cut-off
			// member cannot answer it, so the client moves to another, and
			// only a datastore that went back in time stays behind.
			quorum = true
			retry.Reset()
			if err := stale.Observe(s.env.Clock.Now(), id, idx, minIdx); err != nil {
				send(snapshotFailed{err})
				return
			}
			if !s.env.sleep(ctx, s.cfg.StaleRetry) {
				return
			}
		default:
			// Whatever was sent of a broken read is harmless: the merge
			// stores it at its index, and the next read supersedes it.
			send(snapshotTrouble{err})
			if !s.env.sleep(ctx, retry.Next()) {
				return
			}
		}
	}
}

var _ lifecycle = (*snapshotReader)(nil)
