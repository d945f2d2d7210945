package relay

import (
	"slices"
	"sync"

	"github.com/etcdsync/etcdsync/relay/wire"
)

// encoded is bytes written to many streams: the frames as encoded once, and
// their zstd form, compressed once, by the first stream that wants it.
// Immutable once built.
type encoded struct {
	raw   []byte
	once  sync.Once
	zstdB []byte
}

// bytes returns the encoding a stream with or without zstd writes.
func (e *encoded) bytes(zstd bool) []byte {
	if !zstd {
		return e.raw
	}
	e.once.Do(func() { e.zstdB = wire.Compress(nil, e.raw) })
	return e.zstdB
}

// entry is one frame of the log.
type entry struct {
	rev     uint64 // the server's revision after it
	cluster string // the cluster of its epoch, "" if unknown
	// resumable: the view after this entry is etcd's state at rev, so a
	// client holding etcd's state at rev, from this log or another
	// relay's, may resume here. True only after the last frame of a batch
	// delivered while in sync: the batches of a resync bring keys in key
	// order, not revision order, and a batch's frames split it.
	resumable bool
	// digest: the view's after it (wire.Digest), for a resumable entry
	// the digest its resume position carries.
	digest wire.Digest
	enc    encoded
}

// retainedLog is the retained log: an immutable sequence of entries numbered
// from 0, of which the last maxEntries, at most maxBytes, are kept. Streams
// read it at their own pace by sequence number; nothing in it is per
// stream. Not safe for concurrent use: the Server guards it.
type retainedLog struct {
	maxEntries, maxBytes int

	entries []*entry
	first   uint64 // seq of entries[0]; the head when empty
	bytes   int    // sum of the entries' raw sizes

	// base is the position before entries[0]: the trimmed entry's.
	baseRev       uint64
	baseCluster   string
	baseResumable bool
	baseDigest    wire.Digest
	epoch         uint64 // seq of the first entry of the current epoch
}

// head is the seq the next entry will get.
func (l *retainedLog) head() uint64 { return l.first + uint64(len(l.entries)) }

// push appends e and drops the oldest entries past the bounds, keeping at
// least e.
func (l *retainedLog) push(e *entry) {
	l.entries = append(l.entries, e)
	l.bytes += len(e.enc.raw)
	for len(l.entries) > 1 && (len(l.entries) > l.maxEntries || l.bytes > l.maxBytes) {
		old := l.entries[0]
		l.baseRev, l.baseCluster, l.baseResumable, l.baseDigest = old.rev, old.cluster, old.resumable, old.digest
		l.bytes -= len(old.enc.raw)
		l.entries[0] = nil // the array is reused by append; let the entry go
		l.entries = l.entries[1:]
		l.first++
	}
}

// from returns a copy of up to n entries from seq on; seq must be at
// least first. A copy, because push clears the slots it trims, and the
// caller reads the entries after letting go of the lock.
func (l *retainedLog) from(seq uint64, n int) []*entry {
	i := int(seq - l.first)
	return slices.Clone(l.entries[i:min(len(l.entries), i+n)])
}

// position is a client's resume position, as its handshake gave it.
type position struct {
	cluster string
	rev     uint64
	// digest is the client's view's; hasDigest is false for a client that
	// sent none (one older than digests), which is never resumed.
	digest    wire.Digest
	hasDigest bool
}

// resumeAt returns the seq to stream from for a client at p (the last
// resume position its streams gave it, and the digest of its view there),
// and whether the current epoch of the log holds a resumable position at
// that revision with that digest: only then is the log's view at that
// point the client's, so that what follows it brings the client to the
// relay's view. Without the digest a revision is ambiguous: an etcd
// rebuilt with the same configuration has the same cluster ID and
// another history under the same revisions (issue 22), and a batch that
// ends inside a directory deletion is a resume position at the deletion's
// revision with the directory half deleted, which a relay that got the
// deletion in one batch has no entry for. The digest tells such views
// apart, and a client sent nothing that could leave it with a wrong map is
// sent a snapshot.
//
// Revisions within an epoch never go down along the log, but several
// entries may share one; the first resumable one with the client's digest
// is the client's view, and the client is sent what follows it: perhaps
// entries it has applied already (it may have read past its last resume
// position), which a map applies again idempotently, in order, never a
// gap.
func (l *retainedLog) resumeAt(p position) (uint64, bool) {
	if p.cluster == "" || p.rev == 0 || !p.hasDigest {
		return 0, false
	}
	at := func(rev uint64, cluster string, resumable bool, digest wire.Digest) bool {
		return resumable && rev == p.rev && cluster == p.cluster && digest == p.digest
	}
	if l.first > l.epoch && at(l.baseRev, l.baseCluster, l.baseResumable, l.baseDigest) {
		return l.first, true
	}
	for i, e := range l.entries {
		seq := l.first + uint64(i)
		switch {
		case seq < l.epoch:
		case at(e.rev, e.cluster, e.resumable, e.digest):
			return seq + 1, true
		case e.rev > p.rev:
			return 0, false
		}
	}
	return 0, false
}
