// Package etcdv3 is etcd's v3 API as the syncer's actors use it: a
// source.Source over a clientv3.Client.
//
// A prefix P names a directory, as in v2: the source reads the range
// [P+"/", prefixEnd(P+"/")), so neither the key P itself nor P+"x/..." is in
// the view. Revisions stand in for v2 indexes one for one: a key's
// mod_revision is its index, and a deletion carries the deleting revision.
//
// Snapshots are read page by page at the revision of the first page, each
// page twice the size of the one before up to MaxPage: etcd counts the whole
// rest of the range for every page with a limit, so many small pages cost
// quadratic time, while one unbounded Get holds the whole prefix in memory at
// once. The watch asks for progress notifications after every ProgressInterval
// of silence, so that a quiet prefix keeps a current position: a compaction
// driven by writes elsewhere then finds nothing behind it to cancel. A watch
// that finds its revision compacted loses sync (the syncer resyncs), never
// retries blindly.
//
// This package holds no actors and starts no goroutines; clientv3 runs its
// own.
package etcdv3
