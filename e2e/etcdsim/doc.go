// Package etcdsim is an in-memory etcd v2 key space that implements
// client.KeysAPI (go.etcd.io/etcd/client/v2), for specs that need fault
// schedules a real etcd can't produce on demand: a follower that serves
// stale reads, a watch that falls out of the 1000-event window at a chosen
// moment, transport errors for exactly as long as a spec wants, a watch
// connection cut mid-request, a whole-cluster reset (new cluster ID, the
// index starting over) and a restore from backup (same cluster ID, the
// index going back), with TTL expiry driven by a fake clock.
//
// It copies etcd 3.5's v2 store (etcdserver/api/v2store) and HTTP layer
// (etcdserver/api/v2http) as the client sees them through client/v2:
// actions, keys, values, directories, created/modified indexes, PrevNode,
// X-Etcd-Index (Response.Index), X-Etcd-Cluster-ID (Response.ClusterID),
// error codes, messages, causes and indexes, hidden "_" keys (hidden from
// GETs and live notifications, not from the history), a directory set over
// a file, the 1000 event history and its 401 errors, and the errors
// client/v2 returns for a dead server. Its ServeHTTP serves the same over
// HTTP, streaming watches included, with etcd's quirks: a stream asked for
// an index in the history answers one event and then nothing, and a stream
// that falls StreamBuffer (100) events behind is dropped by the hub and
// left open and silent. A differential spec (differential_test.go, label "etcd")
// runs one script against the simulation and against a real etcd and
// compares what a client sees; it is what keeps this package honest.
// Beyond etcd, StateAt answers what Map would have at any past index since
// the store began, the last Reset or Restore: an oracle can judge a host
// that claims to be at an index other than the head.
//
// # Usage
//
//	sim := etcdsim.New()                   // or NewWithConfig(etcdsim.Config{...})
//	var kapi client.KeysAPI = sim          // hand it to the code under test
//	sim.Load(map[string]string{"/calico/v1/Ready": "true"})
//	sim.FreezeFollower()                   // non-quorum GETs now go stale
//	sim.Disconnect(etcdsim.OpWatch)        // every watch fails, in-flight ones too
//	Eventually(sim.Calls).WithArguments(etcdsim.OpWatch).Should(BeNumerically(">", 3))
//	sim.Reconnect()
//	sim.Advance(30 * time.Second)          // expire TTL keys, one event each
//	Eventually(syncedMap).Should(Equal(sim.Map("/calico/v1")))
//	past, err := sim.StateAt("/calico/v1", 42) // what Map gave at index 42
//
// # The caller's duties
//
//  1. Drive time with Advance: nothing expires on its own, and nothing in
//     the package sleeps or starts goroutines.
//  2. Release what you hold: a spec that calls HoldWatches or
//     FreezeFollower should DeferCleanup the matching ReleaseWatches or
//     ReleaseFollower, or blocked watches wait for their context.
//  3. Cancel the context of a Watcher.Next that should stop waiting; Next
//     returns ctx.Err() as client/v2 does.
//
// Every method of Server and of the Watchers it returns is safe for
// concurrent use. Nothing random happens outside Config.Seed.
//
// # Where it differs from etcd
//
// Not simulated: multi-member behaviour beyond one stale follower (no
// leader elections, no "no leader" answers but the one etcd gives for an
// update of a directory), authentication, writes over HTTP (ServeHTTP
// answers GETs and watches; writes go through the KeysAPI), and the v2
// members and stats APIs. The follower is frozen at one index until
// released, as a real member cut off from its quorum is (the differential
// spec partitions one with etcdproc.Partition and compares); it does not
// lag by a number of indexes, and only its non-quorum GETs are stale: a
// quorum GET is answered by the leader at once, where the real member
// fails it after its request timeout and client/v2 moves on, and watches
// are served by the leader, where the real member's stay silent (the
// watch's stall check is spec'd against a real frozen member). Keys
// expire only when Advance moves the clock (etcd's leader checks every
// 500 ms); keys due at the same instant expire in key order (etcd's heap
// order is arbitrary). An unsorted listing comes in a seeded shuffle
// where etcd uses Go's map order.
package etcdsim
