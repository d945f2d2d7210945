// Package hwm records, per etcd key, the highest etcd index seen for it (its
// high-water mark), so that a syncer merging a snapshot with a concurrent
// watch can tell which of two reports about a key is newer.
//
// A Tracker also supports the two bulk operations a merge needs: a directory
// deletion removes every key below the directory whose mark is older than the
// deletion (StoreDeletion), and after a snapshot every key the snapshot did not
// refresh is swept (DeleteOldKeys). While a snapshot is being read, deletions
// can be tracked (StartTrackingDeletions) so that a snapshot value older than a
// deletion already seen on the watch is refused instead of resurrecting the
// key.
//
// # Keys
//
// Keys are slash-separated paths. They are normalised the way etcd v2
// normalises them (path.Clean of the key joined to "/"): "a/b", "/a/b/" and
// "/a//b" are all the key "/a/b", and the empty key is the root, "/". Keys are
// compared segment by segment, so "/foo" is never a prefix of "/foobar". Every
// key the Tracker returns is in normalised form. The Tracker keeps the key
// strings it is given (it does not copy them), which costs nothing when, as in
// a syncer, the same strings are handed on to the host.
//
// # Indexes
//
// Marks are etcd indexes. Index 0 means "never seen": storing an update at 0
// records nothing. All comparisons are strict: an update replaces a mark only
// if it is higher, and a deletion removes a key only if the key's mark is lower.
//
// This package is a pure data structure: no goroutines, no clocks, no I/O. A
// Tracker is not safe for concurrent use; its owner (the merger) serialises
// access.
package hwm
