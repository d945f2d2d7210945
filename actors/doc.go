// Package actors holds etcdsync's actors, one per file, each a thin shell
// around a pure, deterministic core:
//
//   - Watcher (watcher.go) runs the free-running recursive watch; its error
//     classification is the pure function classifyWatchError.
//   - SnapshotReader (snapshot.go) reads recursive snapshots on request.
//   - Merger (merger.go) feeds Merge (merge.go), the merge state machine.
//   - ClusterIDPoller (clusterid.go) watches for a rebuilt or restored etcd.
//   - Consumer (consumer.go) delivers batches to the host's Callbacks.
//
// The cores take inputs and return outputs; they hold no goroutines, clocks
// or actor types, and are tested by script. The actors only move messages in
// and out, run every blocking etcd call in a goroutine they own and cancel on
// stop or restart, and drop results of an earlier incarnation by generation.
// Supervision policy does not live here: an actor fails by panicking with a
// typed error, and its parent in package supervisor decides.
package actors
