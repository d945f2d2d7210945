package relay

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// StreamPath is the HTTP path of the protocol version this server speaks,
// for hosts that mount the server or log where it is.
const StreamPath = wire.StreamPath

// Server is a relay: the messages.Callbacks of one upstream syncer, and the
// http.Handler that serves what it was told to any number of clients.
//
// Contract: a client that applies, in order, the frames of its stream to a
// map (a snapshot replacing the map when it ends) holds the map the syncer
// had delivered at the revision of the last frame applied, and knows the
// syncer's status at that point. So whenever the server's upstream is
// in-sync and quiet, every client that has read its stream to the end
// holds etcd's keys. Deltas reach every client in the order the syncer
// delivered them; a client never waits for another, and the syncer never
// waits for a client.
//
// The syncer calls OnUpdates and OnStatusUpdated one at a time, as
// messages.Callbacks promises; they never block on a client. ServeHTTP,
// Stats, SetClusterIDSource, Close and the listener of Listener are safe
// for concurrent use with them and with each other.
type Server struct {
	cfg       Config
	clusterID atomic.Pointer[func() string]
	done      chan struct{} // closed by Close: every stream ends
	closeOnce sync.Once

	mu      sync.Mutex // guards everything below it up to snapMu
	view    map[string]wire.KV
	digest  wire.Digest // the view's, kept as it changes
	status  messages.SyncStatus
	cluster string // the current epoch's cluster; "" until known
	rev     uint64 // highest revision delivered in the current epoch
	// consistent: the view is etcd's state at rev (see entry.resumable),
	// so a snapshot of it is a resume position.
	consistent bool
	// synced: the syncer reported in-sync in this epoch, and nothing
	// since: only then do its batches come in revision order.
	synced  bool
	log     retainedLog
	changed chan struct{} // closed, and replaced, whenever the log grows

	snapMu sync.Mutex // held while a snapshot is looked up or built, so a burst builds one
	snap   *snapshot  // the last built; guarded by snapMu

	// liveMu guards live and every snapshot's holders. Lock order:
	// snapMu, mu, liveMu.
	liveMu sync.Mutex
	live   []*snapshot // the snapshots streams are writing, oldest first

	clients atomic.Int64
	conns   atomic.Int64 // connections open through Listener
	// streams holds, for each open stream, the seq of the next log entry
	// it will send, for Stats' lag.
	streams sync.Map // *atomic.Uint64 -> struct{}
	stats   counters
	// When a refusal was last logged (UnixNano), per kind; see logNow.
	lastBadLog, lastRefusedLog, lastConnLog atomic.Int64
}

// New returns a server for cfg, in status WaitForDatastore with an empty
// view. Give it to supervisor.Start as the callbacks (Start hands it the
// syncer's ClusterID: see SetClusterIDSource), and serve it over HTTP. A
// host that wraps it in callbacks of its own must implement
// messages.StatusAtCallback and messages.ClusterIDUser too and pass them
// on: without the index, a relay that goes quiet after a resync gives its
// clients no position to be in sync at until the next write, and without
// the cluster ID none at all.
// A bad cfg is a *ConfigError naming the field.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:     cfg,
		done:    make(chan struct{}),
		view:    map[string]wire.KV{},
		status:  messages.WaitForDatastore,
		changed: make(chan struct{}),
		log:     retainedLog{maxEntries: cfg.LogEntries, maxBytes: cfg.LogBytes},
	}, nil
}

// SetClusterIDSource tells the server how to learn the etcd cluster ID of
// the data it is given: supervisor.Syncer.ClusterID, which supervisor.Start
// hands it (messages.ClusterIDUser) before it delivers anything. The server
// reads it at each callback. Until it is set, data is labelled with no
// cluster, and clients cannot resume into it.
func (s *Server) SetClusterIDSource(f func() string) { s.clusterID.Store(&f) }

func (s *Server) currentClusterID() string {
	if f := s.clusterID.Load(); f != nil {
		return (*f)()
	}
	return ""
}

// OnUpdates implements messages.Callbacks: it applies the batch to the view
// and appends it to the log, encoded once, in frames of at most
// wire.MaxFrameChanges changes and about wire.MaxFrameValueBytes.
func (s *Server) OnUpdates(updates []messages.Update) {
	cluster := s.currentClusterID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observeCluster(cluster)
	runs := wire.Chunks(len(updates), func(i int) int { return len(updates[i].Key) + len(updates[i].Value) })
	frames := len(runs)
	n := 0
	for _, run := range runs {
		chunk := updates[run[0]:run[1]]
		f := &wire.Frame{Type: wire.TypeDelta, Changes: make([]wire.Change, len(chunk))}
		for i, u := range chunk {
			f.Changes[i] = wire.ChangeOf(u)
			s.rev = max(s.rev, u.Revision)
			old, had := s.view[u.Key]
			if u.Type == messages.UpdateTypeDeleted {
				if had {
					s.digest = s.digest.Without(u.Key, old.Value)
				}
				delete(s.view, u.Key)
			} else {
				s.digest = s.digest.Put(u.Key, u.Value, old.Value, had)
				s.view[u.Key] = wire.KV{Key: u.Key, Value: u.Value, Revision: u.Revision}
			}
		}
		n++
		// In sync, the syncer delivers the watch in revision order
		// (coalesced per key while the host is busy): once a whole batch
		// is applied, the view is etcd's state at its highest revision.
		s.consistent = n == frames && s.synced && s.cluster != ""
		if s.consistent {
			f.ClusterID, f.Revision, f.Digest = s.cluster, s.rev, s.digest.String()
		}
		s.append(f, s.consistent)
	}
	s.broadcast()
}

// OnStatusUpdated implements messages.Callbacks, for a syncer that does not
// say at which index it is in sync: the status then gives no resume
// position.
func (s *Server) OnStatusUpdated(status messages.SyncStatus) { s.OnStatusAt(status, 0) }

// OnStatusAt implements messages.StatusAtCallback: the status goes into the
// log like any update, so that every client learns it in order. An InSync
// at a known index makes the view etcd's state at that index, so the
// status frame is a resume position, as is a snapshot taken then: a client
// of a quiet relay can resume without waiting for a write. A
// WaitForDatastore after any other status is a rebuilt syncer, against a
// reset etcd whose revisions start over: a new epoch, into which nothing
// before it can resume.
func (s *Server) OnStatusAt(status messages.SyncStatus, index uint64) {
	cluster := s.currentClusterID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == messages.WaitForDatastore && s.status != messages.WaitForDatastore {
		s.newEpoch("")
	} else {
		s.observeCluster(cluster)
	}
	s.status = status
	s.synced = status == messages.InSync
	f := &wire.Frame{Type: wire.TypeStatus, Status: status.String()}
	resumable := false
	if s.synced && index > 0 && s.cluster != "" {
		s.rev = max(s.rev, index)
		s.consistent, resumable = true, true
		f.ClusterID, f.Revision, f.Digest = s.cluster, s.rev, s.digest.String()
	} else if !s.synced {
		// Batches of a resync come in key order: the view is no state of
		// etcd until the next InSync.
		s.consistent = false
	}
	s.append(f, resumable)
	s.broadcast()
}

// observeCluster labels the current epoch with the cluster ID read at a
// callback, starting a new epoch if it names another cluster. Called with
// mu held.
func (s *Server) observeCluster(id string) {
	switch {
	case id == "" || id == s.cluster:
	case s.cluster == "":
		s.cluster = id
	default:
		s.cfg.Logger.Warn("upstream cluster ID changed; clients cannot resume across it", "was", s.cluster, "now", id)
		s.newEpoch(id)
	}
}

// newEpoch starts a revision space: nothing of the log so far can be
// resumed into. Called with mu held.
func (s *Server) newEpoch(cluster string) {
	s.cluster, s.rev, s.consistent, s.synced = cluster, 0, false, false
	s.log.epoch = s.log.head()
}

// append encodes f once into the log. Called with mu held.
func (s *Server) append(f *wire.Frame, resumable bool) {
	raw, err := wire.Append(nil, f)
	if err != nil {
		// Every member is a string, a number or a slice of them.
		panic(fmt.Errorf("relay: %w", err))
	}
	s.log.push(&entry{rev: s.rev, cluster: s.cluster, resumable: resumable, digest: s.digest, enc: encoded{raw: raw}})
	s.stats.logAppends.Add(1)
}

// broadcast wakes every stream waiting for the log to grow. Called with mu
// held.
func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// snapshot is the view at one position of the log, encoded once: a
// snapshot-begin frame, kvs frames and a snapshot-end frame.
type snapshot struct {
	next  uint64 // the seq of the first log entry after it
	built time.Time
	enc   encoded
	keys  int

	holders  map[*holder]struct{} // the streams writing it; guarded by liveMu
	shedding bool                 // its holders were shed; guarded by liveMu
}

// holder is a stream writing a snapshot. Shedding it ends the stream: a
// write it has begun is cut short at once.
type holder struct {
	shed      atomic.Bool
	interrupt func() // safe to call from any goroutine
}

// snapshotFor returns a snapshot that a stream needing one since asked may
// send, held for h until release: one the log still holds everything after,
// if it was built at most SnapshotShare before asked (or after), or at the
// log's head (the view has not changed), or a stream still writes it (its
// memory is spent already); else a new one. Streams asking during a build
// wait for it and share it. Counting from when each client asked, not from
// the build, lets one snapshot serve a whole burst even when writing it to
// the first clients takes longer than SnapshotShare.
func (s *Server) snapshotFor(asked time.Time, h *holder) *snapshot {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	first := s.log.first
	if sn := s.reusable(asked, first, s.log.head()); sn != nil {
		s.mu.Unlock()
		s.stats.snapshotsShared.Add(1)
		return sn
	}
	// Copied under the lock, encoded outside it: OnUpdates waits only for
	// the copy.
	view, next, status := maps.Clone(s.view), s.log.head(), s.status
	begin := &wire.Frame{Type: wire.TypeSnapshotBegin, Count: len(view)}
	if s.consistent {
		begin.ClusterID, begin.Revision, begin.Digest = s.cluster, s.rev, s.digest.String() // a resume position
	}
	s.mu.Unlock()

	keys := slices.Sorted(maps.Keys(view)) // sorted: the same view gives the same bytes
	raw, _ := wire.Append(nil, begin)
	for _, run := range wire.Chunks(len(keys), func(i int) int { return len(keys[i]) + len(view[keys[i]].Value) }) {
		chunk := keys[run[0]:run[1]]
		f := &wire.Frame{Type: wire.TypeKVs, KVs: make([]wire.KV, len(chunk))}
		for i, k := range chunk {
			f.KVs[i] = view[k]
		}
		raw, _ = wire.Append(raw, f)
	}
	raw, _ = wire.Append(raw, &wire.Frame{Type: wire.TypeSnapshotEnd, Status: status.String()})
	sn := &snapshot{next: next, built: time.Now(), enc: encoded{raw: raw}, keys: len(keys)}
	s.shed(first, len(raw))
	s.snap = sn
	s.hold(sn, h)
	s.stats.snapshotsBuilt.Add(1)
	s.cfg.Logger.Debug("relay snapshot built", "keys", len(keys), "bytes", len(raw), "revision", begin.Revision)
	return sn
}

// reusable returns a snapshot a stream that asked at asked may be given
// (see snapshotFor), the newest first, or nil; first and head are the
// log's. Called with snapMu and mu held.
func (s *Server) reusable(asked time.Time, first, head uint64) *snapshot {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	ok := func(sn *snapshot) bool {
		return sn != nil && !sn.shedding && sn.next >= first &&
			(sn.next == head || len(sn.holders) > 0 || !sn.built.Before(asked.Add(-s.cfg.SnapshotShare)))
	}
	if ok(s.snap) {
		return s.snap
	}
	for _, sn := range slices.Backward(s.live) {
		if ok(sn) {
			return sn
		}
	}
	return nil
}

// hold records that h writes sn, until release.
func (s *Server) hold(sn *snapshot, h *holder) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if sn.holders == nil {
		sn.holders = map[*holder]struct{}{}
	}
	if len(sn.holders) == 0 {
		s.live = append(s.live, sn)
	}
	sn.holders[h] = struct{}{}
}

// release records that h no longer writes sn: a snapshot no stream writes
// is garbage, but for the last built.
func (s *Server) release(sn *snapshot, h *holder) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	delete(sn.holders, h)
	if len(sn.holders) == 0 {
		s.live = slices.DeleteFunc(s.live, func(l *snapshot) bool { return l == sn })
	}
}

// shed ends the streams holding the oldest snapshots the log has moved
// past (before first), until those left and one more of size bytes fit in
// SnapshotBytes. Only such a snapshot is shed: its readers are the
// slowest, and would need a fresh snapshot after it anyway; any other would
// have been reused instead of building one more.
func (s *Server) shed(first uint64, size int) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	held := size
	for _, sn := range s.live {
		if !sn.shedding {
			held += len(sn.enc.raw)
		}
	}
	for _, sn := range s.live {
		if held <= s.cfg.SnapshotBytes {
			return
		}
		if sn.shedding || sn.next >= first {
			continue
		}
		sn.shedding, held = true, held-len(sn.enc.raw)
		s.cfg.Logger.Info("relay snapshot memory over SnapshotBytes: shedding the slowest clients",
			"clients", len(sn.holders), "bytes", len(sn.enc.raw), "max", s.cfg.SnapshotBytes)
		for h := range sn.holders {
			h.shed.Store(true)
			h.interrupt()
		}
	}
}

// Close ends every stream and refuses new ones, so that the host's
// http.Server.Shutdown, which waits for handlers, can finish. Safe to call
// more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// Stats are the server's counters, for metrics and tests.
type Stats struct {
	Clients         int    // streams open now
	SnapshotsBuilt  uint64 // snapshots encoded
	SnapshotsShared uint64 // times a snapshot built for an earlier client was handed to another
	SnapshotsSent   uint64 // snapshots written to streams
	Resumes         uint64 // streams that resumed from the log, without a snapshot
	Refused         uint64 // streams refused for MaxClients
	Conns           int    // connections open now through Listener, streams included
	ConnsRefused    uint64 // connections closed at accept for MaxConns
	BadRequests     uint64 // requests refused as malformed
	LogEntries      int    // entries retained
	LogBytes        int    // their encoded size
	LogAppends      uint64 // entries ever appended
	BytesSent       uint64 // bytes written to streams, after compression
	// Ended counts the streams that ended, by reason: EndClientGone,
	// EndSlow, EndWriteError, EndShutdown, EndShed.
	Ended map[string]uint64
	// MaxLag is how many log entries the furthest-behind open stream has
	// still to send (0 with none behind).
	MaxLag uint64
}

// Why a stream ended (Stats.Ended).
const (
	EndClientGone = "client-gone" // the client closed its connection
	EndSlow       = "slow"        // a write took longer than WriteTimeout: the client stopped reading
	EndWriteError = "write-error" // a write failed otherwise
	EndShutdown   = "shutdown"    // Close
	EndShed       = "shed"        // its snapshot was over SnapshotBytes, and the log had moved past it
)

type counters struct {
	snapshotsBuilt, snapshotsShared, snapshotsSent, resumes, refused, badRequests, logAppends atomic.Uint64
	connsRefused                                                                              atomic.Uint64
	bytesSent                                                                                 atomic.Uint64
	clientGone, slow, writeError, shutdown, shed                                              atomic.Uint64
}

// Stats returns the counters now.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	entries, bytes, head := len(s.log.entries), s.log.bytes, s.log.head()
	s.mu.Unlock()
	var lag uint64
	s.streams.Range(func(k, _ any) bool {
		if next := k.(*atomic.Uint64).Load(); next < head {
			lag = max(lag, head-next)
		}
		return true
	})
	return Stats{
		BytesSent: s.stats.bytesSent.Load(),
		Ended: map[string]uint64{
			EndClientGone: s.stats.clientGone.Load(),
			EndSlow:       s.stats.slow.Load(),
			EndWriteError: s.stats.writeError.Load(),
			EndShutdown:   s.stats.shutdown.Load(),
			EndShed:       s.stats.shed.Load(),
		},
		MaxLag:          lag,
		Clients:         int(s.clients.Load()),
		SnapshotsBuilt:  s.stats.snapshotsBuilt.Load(),
		SnapshotsShared: s.stats.snapshotsShared.Load(),
		SnapshotsSent:   s.stats.snapshotsSent.Load(),
		Resumes:         s.stats.resumes.Load(),
		Refused:         s.stats.refused.Load(),
		Conns:           int(s.conns.Load()),
		ConnsRefused:    s.stats.connsRefused.Load(),
		BadRequests:     s.stats.badRequests.Load(),
		LogEntries:      entries,
		LogBytes:        bytes,
		LogAppends:      s.stats.logAppends.Load(),
	}
}

var (
	_ messages.Callbacks        = (*Server)(nil)
	_ messages.StatusAtCallback = (*Server)(nil)
)
