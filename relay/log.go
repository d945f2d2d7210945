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
	enc       encoded
}

// shared is the retained log: an immutable sequence of entries numbered
// from 0, of which the last maxEntries, at most maxBytes, are kept. Streams
// read it at their own pace by sequence number; nothing in it is per
// stream. Not safe for concurrent use: the Server guards it.
type shared struct {
	maxEntries, maxBytes int

	entries []*entry
	first   uint64 // seq of entries[0]; the head when empty
	bytes   int    // sum of the entries' raw sizes

	// base is the position before entries[0]: the trimmed entry's.
	baseRev       uint64
	baseCluster   string
	baseResumable bool
	epoch         uint64 // seq of the first entry of the current epoch
}

// head is the seq the next entry will get.
func (l *shared) head() uint64 { return l.first + uint64(len(l.entries)) }

// push appends e and drops the oldest entries past the bounds, keeping at
// least e.
func (l *shared) push(e *entry) {
	l.entries = append(l.entries, e)
	l.bytes += len(e.enc.raw)
	for len(l.entries) > 1 && (len(l.entries) > l.maxEntries || l.bytes > l.maxBytes) {
		old := l.entries[0]
		l.baseRev, l.baseCluster, l.baseResumable = old.rev, old.cluster, old.resumable
		l.bytes -= len(old.enc.raw)
		l.entries[0] = nil // the array is reused by append; let the entry go
		l.entries = l.entries[1:]
		l.first++
	}
}

// from returns a copy of up to n entries from seq on; seq must be at
// least first. A copy, because push clears the slots it trims, and the
// caller reads the entries after letting go of the lock.
func (l *shared) from(seq uint64, n int) []*entry {
	i := int(seq - l.first)
	return slices.Clone(l.entries[i:min(len(l.entries), i+n)])
}

// resumeAt returns the seq to stream from for a client that holds etcd's
// state at rev of cluster (the last resume position its streams gave it),
// and whether the current epoch of the log still holds a resumable
// position at that revision. Revisions within an epoch never go down along
// the log, but several entries may share one; from the first resumable one
// on, the view is etcd's state at rev, so the client is sent what follows
// it: perhaps entries it has applied already (it may have read past its
// last resume position), which a map applies again idempotently, in
// order, never a gap.
func (l *shared) resumeAt(cluster string, rev uint64) (uint64, bool) {
	if cluster == "" || rev == 0 {
		return 0, false
	}
	if l.first > l.epoch && l.baseResumable && l.baseCluster == cluster && l.baseRev == rev {
		return l.first, true
	}
	for i, e := range l.entries {
		seq := l.first + uint64(i)
		switch {
		case seq < l.epoch:
		case e.rev == rev && e.cluster == cluster && e.resumable:
			return seq + 1, true
		case e.rev > rev:
			return 0, false
		}
	}
	return 0, false
}
