package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// SnapshotKeys is how many Calico-shaped keys the snapshot etcd holds,
// unless ETCDSYNC_BENCH_KEYS says otherwise (SnapshotKeyCount).
const SnapshotKeys = 100_000

// EnvSnapshotKeys names the environment variable that sets how many keys
// the snapshot etcd holds: bench.sh sets it to 10^6 for BENCH_LARGE=1.
const EnvSnapshotKeys = "ETCDSYNC_BENCH_KEYS"

// SnapshotKeyCount returns how many keys the snapshot benchmarks expect:
// ETCDSYNC_BENCH_KEYS if it is set to a positive number, else SnapshotKeys.
func SnapshotKeyCount() int {
	if n, err := strconv.Atoi(os.Getenv(EnvSnapshotKeys)); err == nil && n > 0 {
		return n
	}
	return SnapshotKeys
}

// LoadWriters is how many concurrent writers Load uses.
const LoadWriters = 32

// EnvSnapshotEtcd names the environment variable that points SnapshotEtcd
// at an etcd already holding calico.KVs(SnapshotKeys): comma-separated
// client URLs.
const EnvSnapshotEtcd = "ETCDSYNC_BENCH_ETCD"

// KeysAPI returns a client/v2 KeysAPI for endpoints whose transport keeps
// up to conns idle connections per host, so that conns concurrent callers
// do not open a new connection per request.
func KeysAPI(endpoints []string, conns int) (client.KeysAPI, error) {
	c, err := client.New(client.Config{Endpoints: endpoints, Transport: Transport(conns)})
	if err != nil {
		return nil, fmt.Errorf("bench: etcd client for %v: %w", endpoints, err)
	}
	return client.NewKeysAPI(c), nil
}

// Transport returns an HTTP transport for loopback etcd with up to conns
// idle connections per host.
func Transport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Load sets every key of kvs with LoadWriters concurrent writers.
func Load(ctx context.Context, keys client.KeysAPI, kvs []calico.KV) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, LoadWriters)
	var wg sync.WaitGroup
	for w := range LoadWriters {
		wg.Go(func() {
			for i := w; i < len(kvs); i += LoadWriters {
				if _, err := keys.Set(ctx, kvs[i].Key, kvs[i].Value, nil); err != nil {
					errs <- fmt.Errorf("bench: loading %s: %w", kvs[i].Key, err)
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

// StartLoadedEtcd starts a one-member etcd and loads calico.KVs(n) into it
// (one Set per key). The caller stops the cluster. Above 10^5 keys etcd's
// own snapshots are put off until after the load: each one copies and
// encodes the whole v2 store, which at 10^6 keys would slow the load down
// several times over.
func StartLoadedEtcd(n int) (*etcdproc.Cluster, time.Duration, error) {
	var opts etcdproc.Options
	if n > SnapshotKeys {
		opts.Args = []string{"--snapshot-count", strconv.Itoa(2 * n)}
	}
	c, err := etcdproc.StartMember(opts)
	if err != nil {
		return nil, 0, err
	}
	keys, err := KeysAPI(c.Endpoints(), LoadWriters)
	if err != nil {
		_ = c.Stop()
		return nil, 0, err
	}
	kvs := calico.KVs(n)
	start := time.Now()
	if err := Load(context.Background(), keys, kvs); err != nil {
		_ = c.Stop()
		return nil, 0, err
	}
	return c, time.Since(start), nil
}

var shared struct {
	once      sync.Once
	endpoints []string
	err       error

	mu       sync.Mutex
	clusters []*etcdproc.Cluster
}

// SnapshotEtcd returns the endpoints of an etcd holding
// calico.KVs(SnapshotKeyCount()) under calico.Prefix: the one named by
// ETCDSYNC_BENCH_ETCD, or else one it starts and loads on first use (15 to
// 40 s) and shares with every later caller in the process. It fails tb if
// that cannot be done.
func SnapshotEtcd(tb testing.TB) []string {
	tb.Helper()
	shared.once.Do(func() {
		if env := os.Getenv(EnvSnapshotEtcd); env != "" {
			shared.endpoints = strings.Split(env, ",")
			return
		}
		c, took, err := StartLoadedEtcd(SnapshotKeyCount())
		if err != nil {
			shared.err = err
			return
		}
		Track(c)
		fmt.Fprintf(os.Stderr, "bench: loaded %d keys into %v in %v\n", SnapshotKeyCount(), c.Endpoints(), took.Round(time.Millisecond))
		shared.endpoints = c.Endpoints()
	})
	if shared.err != nil {
		tb.Fatalf("bench: snapshot etcd: %v", shared.err)
	}
	return shared.endpoints
}

// Track hands c to Shutdown, which stops it.
func Track(c *etcdproc.Cluster) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.clusters = append(shared.clusters, c)
}

// Shutdown stops every etcd started by SnapshotEtcd or handed to Track.
// Call it from TestMain after m.Run.
func Shutdown() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, c := range shared.clusters {
		_ = c.Stop()
	}
	shared.clusters = nil
}
