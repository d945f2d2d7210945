// Package loopback gives specs a syncer configuration for an etcd (or a
// relay, or the simulated etcd) on the same machine: short retry and poll
// intervals, so that faults are recovered from in well under a second.
// Hosts start from supervisor.DefaultConfig instead.
package loopback

import (
	"time"

	"github.com/etcdsync/etcdsync/supervisor"
)

// Config returns the loopback configuration, reading from endpoints;
// every field it leaves zero takes its default.
func Config(endpoints ...string) supervisor.Config {
	return supervisor.Config{
		Endpoints:             endpoints,
		ClusterIDPollInterval: 200 * time.Millisecond,
		WatchStallTimeout:     time.Second,
		RequestTimeout:        2 * time.Second,
		StaleSnapshotTimeout:  2 * time.Second,
		StaleReadRetry:        20 * time.Millisecond,
		Backoff:               supervisor.BackoffConfig{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, ResetAfter: 5 * time.Second},
	}
}
