// Package bench is the harness behind `make bench`: the pieces every
// benchmark of the syncer shares, so that each candidate (etcdsync in
// process, the reference node, the seed-style syncer of e2e/seedbaseline)
// is measured by the same code, against the same etcd, in the same run.
//
// It provides a counting host (Counter), a heap sampler (HeapSampler), the
// floor every snapshot figure is divided by (Floor: a bare client/v2
// recursive GET plus a walk of its nodes), a loader that fills etcd with
// Calico-shaped keys (Load), the shared snapshot etcd (SnapshotEtcd), and
// MeasureSnapshot, the one measurement loop used for every candidate.
//
// The benchmarks themselves are the _test.go files of this package and of
// e2e/seedbaseline; e2e/bench/bench.sh runs them all and
// e2e/bench/report turns their output into BENCHMARKS.md.
//
// # Usage
//
//	func BenchmarkSnapshot(b *testing.B) {
//		endpoints := bench.SnapshotEtcd(b) // loads etcd once per process
//		keys, err := bench.KeysAPI(endpoints, 2)
//		if err != nil {
//			b.Fatal(err)
//		}
//		b.Run("floor", func(b *testing.B) {
//			bench.MeasureFloor(b, keys, calico.Prefix, bench.SnapshotKeys)
//		})
//		b.Run("mine", func(b *testing.B) {
//			bench.MeasureSnapshot(b, bench.SnapshotKeys, func(cb messages.Callbacks) (func() error, error) {
//				s := startMine(endpoints, cb) // a fresh syncer each time
//				return s.Stop, nil
//			})
//		})
//	}
//
// # The caller's duties
//
//  1. Call Shutdown from TestMain after m.Run: it stops the etcd processes
//     SnapshotEtcd started. (Every etcd is also killed if the test process
//     dies: see e2e/etcdproc.)
//  2. Start nothing heavy outside Benchmark functions: `go test ./...` runs
//     this package's tests too, and must not start etcd.
//  3. Give MeasureSnapshot a start function that starts a fresh syncer each
//     time and a stop function that waits for all its goroutines: the next
//     iteration's heap baseline must not include the previous one.
//
// SnapshotEtcd and Shutdown are safe for concurrent use; a Counter is safe
// for a syncer's callbacks and a benchmark reading it at the same time.
//
// Setting ETCDSYNC_BENCH_ETCD to an endpoint that already holds the keys
// (e2e/bench/snapshotetcd does that for bench.sh) makes SnapshotEtcd use it
// instead of loading its own, so that several test processes share one load.
//
// # The v3 source
//
// The v3 source (internal/etcdv3) has its own floor, FloorV3: one
// unpaginated clientv3 Get of the prefix, results discarded, the fastest
// etcd serves a prefix. SnapshotEtcdV3 is SnapshotEtcd for an etcd 3.5 or
// 3.7 holding the keys through the v3 API (loaded by LoadV3, in
// transactions), named by ETCDSYNC_BENCH_ETCD35 or ETCDSYNC_BENCH_ETCD37
// when bench.sh shares one load. MeasurePages times the source's paged
// read alone, for choosing its FirstPage and MaxPage; the in-process and
// node candidates reuse MeasureSnapshot, MeasureHeld and the node benchmark
// with APIv3.
package bench
