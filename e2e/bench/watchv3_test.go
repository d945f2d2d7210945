package bench_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/supervisor"
)

// watchRatesV3 are the write rates of BenchmarkWatchV3 (0: as fast as
// watchWriters go): the 1000/s the lag goal is set at, twice that, and the
// most the writers get through, where resyncs would show.
var watchRatesV3 = []int{1000, 2000, 0}

var watchClustersV3 struct {
	mu        sync.Mutex
	endpoints map[etcdproc.Version][]string
}

// watchEtcdV3 returns the endpoints of a one-member etcd of version v of
// its own, started on first use, as watchEtcd does for v2.
func watchEtcdV3(b *testing.B, v etcdproc.Version) []string {
	watchClustersV3.mu.Lock()
	defer watchClustersV3.mu.Unlock()
	if eps, ok := watchClustersV3.endpoints[v]; ok {
		return eps
	}
	c, err := etcdproc.StartMember(etcdproc.Options{Version: v})
	if err != nil {
		b.Fatalf("watch etcd %v: %v", v, err)
	}
	bench.Track(c)
	if watchClustersV3.endpoints == nil {
		watchClustersV3.endpoints = map[etcdproc.Version][]string{}
	}
	watchClustersV3.endpoints[v] = c.Endpoints()
	return c.Endpoints()
}

// BenchmarkWatchV3 is BenchmarkWatch for the v3 source, on etcd 3.5 and
// 3.7: writes through clientv3 at fixed rates while etcdsync in process
// with APIv3 (syncer), or the floor, a bare clientv3 watch of the prefix
// (floor), consumes them.
func BenchmarkWatchV3(b *testing.B) {
	for _, v := range v3Versions {
		b.Run("etcd="+v.String(), func(b *testing.B) {
			endpoints := watchEtcdV3(b, v)
			writer, err := bench.ClientV3(endpoints) // one connection for every run
			if err != nil {
				b.Fatal(err)
			}
			defer writer.Close()
			for _, rate := range watchRatesV3 {
				name := "rate=max"
				if rate > 0 {
					name = fmt.Sprintf("rate=%d", rate)
				}
				b.Run(name+"/syncer", func(b *testing.B) {
					for range b.N {
						runWatch(b, endpoints, putV3(writer), rate, startWatchSyncerV3)
					}
				})
				b.Run(name+"/floor", func(b *testing.B) {
					for range b.N {
						runWatch(b, endpoints, putV3(writer), rate, startWatchFloorV3)
					}
				})
			}
		})
	}
}

// putV3 writes through clientv3.
func putV3(c *clientv3.Client) putFunc {
	return func(ctx context.Context, key, value string) error {
		_, err := c.Put(ctx, key, value)
		return err
	}
}

// startWatchSyncerV3 starts etcdsync with APIv3 and otherwise the default
// configuration, and waits for its first in-sync.
func startWatchSyncerV3(endpoints []string, log *lagLog) (func() error, func() int64, error) {
	h := &watchHost{log: log, inSync: make(chan struct{})}
	stop, err := startSyncer(supervisor.Config{Endpoints: endpoints, API: supervisor.APIv3})(h)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-h.inSync:
	case <-time.After(30 * time.Second):
		_ = stop()
		return nil, nil, errors.New("the v3 syncer was not in sync within 30 s")
	}
	return stop, h.resyncs.Load, nil
}

// startWatchFloorV3 starts the floor: one goroutine reading etcd's
// revision, then ranging over one clientv3 watch of the prefix from the
// revision after it, and starting over from the compaction revision if the
// watch's revision is compacted (counted as lost sync).
func startWatchFloorV3(endpoints []string, log *lagLog) (func() error, func() int64, error) {
	c, err := bench.ClientV3(endpoints)
	if err != nil {
		return nil, nil, err
	}
	key, end := bench.RangeOf(calico.Prefix)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.Get(ctx, key, clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil {
		cancel()
		c.Close()
		return nil, nil, fmt.Errorf("reading etcd's revision: %w", err)
	}
	rev := resp.Header.Revision + 1
	var compacted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for resp := range c.Watch(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev)) {
				if errors.Is(resp.Err(), rpctypes.ErrCompacted) {
					compacted.Add(1)
					rev = resp.CompactRevision
					break
				}
				for _, ev := range resp.Events {
					rev = ev.Kv.ModRevision + 1
					if ev.Type == mvccpb.PUT {
						log.deliver(string(ev.Kv.Value))
					}
				}
			}
		}
	}()
	return func() error { cancel(); <-done; return c.Close() }, compacted.Load, nil
}
