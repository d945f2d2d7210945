package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/internal/etcdv3"
	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// LoadTxnOps is how many puts one transaction of LoadV3 carries: below
// etcd's default --max-txn-ops (128), and few enough bytes (about 20 KB of
// Calico-shaped keys) to stay far under its request limit. One put per
// request would make loading 10^6 keys take minutes.
const LoadTxnOps = 100

// EnvSnapshotEtcdV3 returns the name of the environment variable that
// points the v3 snapshot benchmarks at an etcd of version v already holding
// calico.KVs(SnapshotKeyCount()) through the v3 API (and, on 3.5, through
// v2 as well): ETCDSYNC_BENCH_ETCD35 or ETCDSYNC_BENCH_ETCD37.
func EnvSnapshotEtcdV3(v etcdproc.Version) string {
	return "ETCDSYNC_BENCH_ETCD" + strings.ReplaceAll(v.String(), ".", "")
}

// ClientV3 returns a quiet clientv3 client for endpoints; the caller closes
// it. Its receive limit is clientv3's default (math.MaxInt32), so that one
// Get of 10^6 keys fits.
func ClientV3(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bench: v3 client for %v: %w", endpoints, err)
	}
	return c, nil
}

// LoadV3 puts every key of kvs through the v3 API, LoadTxnOps per
// transaction, with LoadWriters concurrent writers.
func LoadV3(ctx context.Context, c *clientv3.Client, kvs []calico.KV) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, LoadWriters)
	var wg sync.WaitGroup
	for w := range LoadWriters {
		wg.Go(func() {
			ops := make([]clientv3.Op, 0, LoadTxnOps)
			for i := w * LoadTxnOps; i < len(kvs); i += LoadWriters * LoadTxnOps {
				ops = ops[:0]
				for _, kv := range kvs[i:min(i+LoadTxnOps, len(kvs))] {
					ops = append(ops, clientv3.OpPut(kv.Key, kv.Value))
				}
				if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- fmt.Errorf("bench: loading %s and the %d keys after it: %w", kvs[i].Key, len(ops)-1, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil if none
}

// StartLoadedEtcdV3 starts a one-member etcd of version v and loads
// calico.KVs(n) into it through the v3 API; on 3.5, up to SnapshotKeys
// keys, also through v2 (the two APIs keep separate stores), so that the v2
// syncer can read the same keys from the same process. Beyond, v2 is left
// empty: 10^6 keys through v2 take minutes to load. The caller stops the
// cluster.
func StartLoadedEtcdV3(v etcdproc.Version, n int) (*etcdproc.Cluster, time.Duration, error) {
	opts := etcdproc.Options{Version: v}
	if n > SnapshotKeys {
		// As StartLoadedEtcd: etcd's snapshots copy the whole v2 store.
		opts.Args = []string{"--snapshot-count", strconv.Itoa(2 * n)}
	}
	c, err := etcdproc.StartMember(opts)
	if err != nil {
		return nil, 0, err
	}
	cl, err := ClientV3(c.Endpoints())
	if err != nil {
		_ = c.Stop()
		return nil, 0, err
	}
	defer cl.Close()
	kvs := calico.KVs(n)
	start := time.Now()
	if err := LoadV3(context.Background(), cl, kvs); err != nil {
		_ = c.Stop()
		return nil, 0, err
	}
	if LoadsV2(v, n) {
		keys, err := KeysAPI(c.Endpoints(), LoadWriters)
		if err == nil {
			err = Load(context.Background(), keys, kvs)
		}
		if err != nil {
			_ = c.Stop()
			return nil, 0, err
		}
	}
	return c, time.Since(start), nil
}

// LoadsV2 reports whether StartLoadedEtcdV3(v, n) loads the keys through
// v2 as well.
func LoadsV2(v etcdproc.Version, n int) bool { return v.ServesV2() && n <= SnapshotKeys }

var sharedV3 struct {
	mu        sync.Mutex
	endpoints map[etcdproc.Version][]string
}

// SnapshotEtcdV3 is SnapshotEtcd for the v3 benchmarks on etcd of version
// v: the etcd named by EnvSnapshotEtcdV3(v), or else one it starts and
// loads with StartLoadedEtcdV3 on first use and shares with every later
// caller in the process.
func SnapshotEtcdV3(tb testing.TB, v etcdproc.Version) []string {
	tb.Helper()
	sharedV3.mu.Lock()
	defer sharedV3.mu.Unlock()
	if eps, ok := sharedV3.endpoints[v]; ok {
		return eps
	}
	var eps []string
	if env := os.Getenv(EnvSnapshotEtcdV3(v)); env != "" {
		eps = strings.Split(env, ",")
	} else {
		c, took, err := StartLoadedEtcdV3(v, SnapshotKeyCount())
		if err != nil {
			tb.Fatalf("bench: v3 snapshot etcd %v: %v", v, err)
		}
		Track(c)
		fmt.Fprintf(os.Stderr, "bench: loaded %d keys into etcd %v at %v in %v\n", SnapshotKeyCount(), v, c.Endpoints(), took.Round(time.Millisecond))
		eps = c.Endpoints()
	}
	if sharedV3.endpoints == nil {
		sharedV3.endpoints = map[etcdproc.Version][]string{}
	}
	sharedV3.endpoints[v] = eps
	return eps
}

// RangeOf returns the key range of prefix as a directory, as the v3 source
// reads it: [prefix+"/", its prefix end).
func RangeOf(prefix string) (key, end string) {
	key = prefix + "/"
	return key, clientv3.GetPrefixRangeEnd(key)
}

// FloorV3 is the v3 floor: one unpaginated Get of the whole prefix, its
// results discarded but for their count. It is the fastest that etcd serves
// a prefix, and holds the whole answer in memory at once, which is why no
// syncer may do it.
func FloorV3(ctx context.Context, c *clientv3.Client, prefix string) (int, error) {
	key, end := RangeOf(prefix)
	resp, err := c.Get(ctx, key, clientv3.WithRange(end))
	if err != nil {
		return 0, err
	}
	return len(resp.Kvs), nil
}

// WarmUpV3 reads the prefix once through c, off the clock, as WarmUp does
// for v2.
func WarmUpV3(tb testing.TB, c *clientv3.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
	defer cancel()
	if _, err := FloorV3(ctx, c, prefix); err != nil {
		tb.Fatalf("warming etcd up: %v", err)
	}
}

// MeasureFloorV3 times FloorV3 through c, b.N times, and reports its peak
// heap ("peak-heap-MB") as MeasureFloor does. It fails b unless every Get
// finds want keys.
func MeasureFloorV3(b *testing.B, c *clientv3.Client, prefix string, want int) {
	var peak uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h := StartHeapSampler()
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
		n, err := FloorV3(ctx, c, prefix)
		cancel()
		b.StopTimer()
		peak = max(peak, h.Stop())
		if err != nil {
			b.Fatalf("floor Get of %s: %v", prefix, err)
		}
		if n != want {
			b.Fatalf("floor Get of %s found %d keys, want %d", prefix, n, want)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// MeasurePages times the v3 source's snapshot read alone (etcdv3.Source
// Snapshot with pages from first doubling up to most, every key handed to
// a leaf that only counts), b.N times: what the page sizes cost, without
// the merge and the host. It reports the peak heap above the start
// ("peak-heap-MB", and per key "peak-B/key": the pages in flight, decoded,
// and what the leaves copied out of them not yet collected) and the pages
// read ("pages"). It fails b unless every read finds want keys.
func MeasurePages(b *testing.B, c *clientv3.Client, prefix string, want int, first, most int64) {
	var peak uint64
	pages := pagesOf(want, first, most)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		src := &etcdv3.Source{Client: c, Prefix: prefix, FirstPage: first, MaxPage: most}
		n := 0
		h := StartHeapSampler()
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), SnapshotTimeout)
		err := src.Snapshot(ctx, false, func(source.Head) error { return nil }, func(messages.KV) { n++ })
		cancel()
		b.StopTimer()
		peak = max(peak, h.Stop())
		runtime.KeepAlive(src)
		if err != nil {
			b.Fatalf("paged read of %s (pages %d to %d): %v", prefix, first, most, err)
		}
		if n != want {
			b.Fatalf("paged read of %s found %d keys, want %d", prefix, n, want)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peak)/float64(want), "peak-B/key")
	b.ReportMetric(float64(pages), "pages")
}

// pagesOf returns how many pages a read of n keys takes, the first of
// first keys, each next one twice the one before up to most. The last page
// may come back full with More set and be followed by an empty one; that
// one is not counted.
func pagesOf(n int, first, most int64) int {
	pages, limit := 0, first
	for left := int64(n); left > 0; left -= limit {
		if pages > 0 {
			limit = min(2*limit, most)
		}
		pages++
	}
	return pages
}
