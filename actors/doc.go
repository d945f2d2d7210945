// Package actors holds etcdsync's actors, one per file, each a thin shell
// around a pure, deterministic core. The actors are unexported: a host or
// the supervisor spawns them through their New…Props functions.
//
//   - the watcher (watcher.go) runs the free-running recursive watch, by long
//     poll or by etcd's stream (StreamWatches, streamwatch.go); its error
//     classification is the pure ClassifyWatchError (watchclass.go).
//   - the snapshot reader (snapshot.go) reads recursive snapshots on request,
//     through a Snapshotter (snapshotter.go); StaleCheck (stalecheck.go)
//     judges reads that came back behind.
//   - the merger (merger.go) feeds MergeCore (mergecore.go), the merge state
//     machine, and keeps nothing of its own.
//   - the cluster-ID poller (clusterid.go) watches for a rebuilt or restored
//     etcd; SharedClusterIDCheck (clusteridcheck.go) checks the cluster ID of every
//     response before its data reaches the merger.
//   - the relay client (relayclient.go) takes the place of the watcher, the
//     snapshot reader and the poller for a syncer that reads from relays
//     (relay); RelayFeed (relayfeed.go) turns the relay's frames
//     into the merger's inputs.
//   - the consumer (consumer.go) delivers to the host's Callbacks or host
//     actor, one batch at a time, through an Outbox (outbox.go) that
//     coalesces per key while the host is busy.
//
// The cores take inputs and return outputs; they hold no goroutines, clocks
// or actor types, and are tested by script. The actors only move messages in
// and out; every blocking call (etcd, the host) runs as a task (task.go),
// which is cancelled on stop or restart and whose stale results are dropped
// in one place: the shell the actors run on (shell.go). Env carries what they share, and its Runner lets e2e/stepper
// run them one step at a time. Supervision policy does not live here: an
// actor fails by panicking with a typed error, and its parent in package
// supervisor decides.
package actors
