// Package migrate copies an etcd v2 prefix into etcd's v3 API, and keeps
// the copy equal while v2 is still being written: it is the host side of
// `node migrate`, which runs the syncer on the v2 source and hands its
// updates to a Host.
//
// The package has three parts:
//
//   - the core (plan.go): Diff turns what v3 should hold and what it holds
//     into Ops, and Batcher cuts Ops into txns within etcd's limits. Both
//     are plain functions of their inputs, with no I/O and no clock;
//   - the I/O (v2.go, v3.go): V2Reader reads values with their TTLs from
//     v2, which the syncer's updates do not carry; Target reads and writes
//     v3;
//   - the Host (host.go): the syncer's messages.Callbacks. It keeps the
//     syncer's view and the keys that changed in it, and its Run loop writes
//     them into v3 whenever the view is in sync.
//
// # Mapping
//
// A v2 key becomes the v3 key of the same name; directories have no v3
// form (their keys carry their path). Hidden keys (a path segment starting
// with "_") are not copied: v2 leaves them out of every read the syncer
// makes. A v3 key under the prefix that v2 lacks is deleted.
//
// A v2 key with a TTL expires at a wall-clock second S (its expiration,
// rounded up). It is written on the v3 lease whose ID is LeaseID(S), granted
// with the seconds left until S. The lease ID names the second, so keys
// expiring in the same second share a lease, a rerun finds the lease it
// granted before, and a v3 key's lease says when it expires: comparing it
// is comparing TTLs.
//
// # Idempotency
//
// Every write is decided by reading first: a key whose v3 value and lease
// are already right is not written, so a run over equal data writes nothing
// and etcd's v3 revision does not move. Each txn is atomic, and the next
// run reads again, so a run killed at any point is finished by the next.
package migrate
