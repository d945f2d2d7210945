package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/loopback"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/tcpproxy"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Real etcd processes (bin/etcd, v3.5.35 with --enable-v2): every spec here
// ends with the invariant (ARCHITECTURE.md) checked against a quorum read.
var _ = Describe("Syncer on real etcd", Label("etcd"), func() {
	for _, mode := range []supervisor.WatchMode{supervisor.WatchLongPoll, supervisor.WatchStream} {
		Context(fmt.Sprintf("watching by %v", mode), func() { realEtcdSpecs(mode) })
	}
})

// realEtcdSpecs are the specs every watch mode must pass.

// realEtcdSpecs are the specs every watch mode must pass, by behaviour:
// following writes (etcd_writes_test.go), members failing
// (etcd_members_test.go) and the datastore reset or restored
// (etcd_reset_test.go).
func realEtcdSpecs(mode supervisor.WatchMode) {
	r := realEtcd{mode: mode}
	writeSpecs(r)
	memberFailureSpecs(r)
	datastoreResetSpecs(r)
}

// realEtcd is what the real-etcd specs of one watch mode share.
type realEtcd struct{ mode supervisor.WatchMode }

// config is loopback.Config in the watch mode under test.
func (r realEtcd) config(endpoints ...string) supervisor.Config {
	cfg := loopback.Config(endpoints...)
	cfg.WatchMode = r.mode
	return cfg
}

func (realEtcd) startEtcd(members int) *etcdproc.Cluster {
	GinkgoHelper()
	c, err := etcdproc.StartCluster(members, etcdproc.Options{Output: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.Stop)
	return c
}

func (realEtcd) writer(c *etcdproc.Cluster) client.KeysAPI {
	GinkgoHelper()
	keys, err := c.KeysAPI()
	Expect(err).NotTo(HaveOccurred())
	return keys
}

// proxies puts a proxy in front of each member.
func (realEtcd) proxies(c *etcdproc.Cluster) []*tcpproxy.Proxy {
	GinkgoHelper()
	var ps []*tcpproxy.Proxy
	for _, ep := range c.Endpoints() {
		p, err := tcpproxy.New(strings.TrimPrefix(ep, "http://"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(p.Close)
		ps = append(ps, p)
	}
	return ps
}

func (realEtcd) urls(ps []*tcpproxy.Proxy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.URL())
	}
	return out
}

// inSyncWith passes when the host is in sync and holds exactly what a
// quorum read of the prefix returns.
func (realEtcd) inSyncWith(ctx context.Context, keys client.KeysAPI, rec interface{ InSyncMap() map[string]string }) func(Gomega) {
	return func(g Gomega) {
		want, err := etcdMap(ctx, keys, prefix)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rec.InSyncMap()).To(Equal(want))
	}
}

// syncedThroughProxy starts one member holding 100 keys and a syncer
// that reaches it through a proxy, and waits for it to be in sync.
func (r realEtcd) syncedThroughProxy(ctx context.Context) (client.KeysAPI, []*tcpproxy.Proxy, *recorder.Recorder) {
	GinkgoHelper()
	etcd := r.startEtcd(1)
	keys := r.writer(etcd)
	load(ctx, keys, 100, 4)
	ps := r.proxies(etcd)
	_, rec := startSyncer(r.config(r.urls(ps)...))
	Eventually(rec.InSyncMap).WithContext(ctx).Should(HaveLen(100))
	return keys, ps, rec
}

// etcdMap returns every key and value below prefix, by a quorum read.
func etcdMap(ctx context.Context, keys client.KeysAPI, prefix string) (map[string]string, error) {
	out := map[string]string{}
	resp, err := keys.Get(ctx, prefix, &client.GetOptions{Recursive: true, Quorum: true})
	if isEtcdCode(err, client.ErrorCodeKeyNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", prefix, err)
	}
	var walk func(n *client.Node)
	walk = func(n *client.Node) {
		if !n.Dir {
			out[n.Key] = n.Value
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(resp.Node)
	return out, nil
}

func isEtcdCode(err error, codes ...int) bool {
	var e client.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

// load writes n keys below prefix/host/..., from the given number of
// writers, each value new.
func load(ctx context.Context, keys client.KeysAPI, n, writers int) {
	GinkgoHelper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	stamp := time.Now().UnixNano()
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				k := fmt.Sprintf("%s/host/h%d/k%d", prefix, i%10, i)
				if _, err := keys.Set(ctx, k, fmt.Sprint(stamp, i), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(<-errs).NotTo(HaveOccurred())
}

// loadMap sets every key of kv with the given TTL (0: none), from the given
// number of writers.
func loadMap(ctx context.Context, keys client.KeysAPI, kv map[string]string, ttl time.Duration, writers int) {
	GinkgoHelper()
	work := make(chan [2]string, len(kv))
	for k, v := range kv {
		work <- [2]string{k, v}
	}
	close(work)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for kv := range work {
				if _, err := keys.Set(ctx, kv[0], kv[1], &client.SetOptions{TTL: ttl}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(<-errs).NotTo(HaveOccurred())
}

// background writes to prefix/load until the returned stop is called,
// tolerating errors while members die.
func background(ctx context.Context, keys client.KeysAPI) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			wctx, done := context.WithTimeout(ctx, time.Second)
			_, _ = keys.Set(wctx, fmt.Sprintf("%s/load/k%d", prefix, i%200), fmt.Sprint(i), nil)
			done()
		}
	})
	return func() { cancel(); wg.Wait() }
}

// memberWithWatch returns the index of the one member whose watcher count
// (GET /v2/stats/store) is not zero, or -1.
func memberWithWatch(ctx context.Context, endpoints []string) (int, error) {
	found := -1
	for i, ep := range endpoints {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/v2/stats/store", nil)
		if err != nil {
			return -1, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1, err
		}
		var stats struct {
			Watchers int `json:"watchers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&stats)
		resp.Body.Close()
		if err != nil {
			return -1, fmt.Errorf("stats of %s: %w", ep, err)
		}
		if stats.Watchers > 0 {
			if found >= 0 {
				return -1, fmt.Errorf("watchers on members %d and %d", found, i)
			}
			found = i
		}
	}
	return found, nil
}

func accepted(ps []*tcpproxy.Proxy) int64 {
	var n int64
	for _, p := range ps {
		n += p.Accepted()
	}
	return n
}

// resetCounter is an Observer that counts escalated cluster resets.
type resetCounter struct {
	actors.NopObserver
	n atomic.Int64
}

func (r *resetCounter) ClusterReset() { r.n.Add(1) }

// keysAPIOf is a client of the one member at endpoint.
func keysAPIOf(endpoint string) client.KeysAPI {
	GinkgoHelper()
	c, err := client.New(client.Config{Endpoints: []string{endpoint}, HeaderTimeoutPerRequest: 2 * time.Second})
	Expect(err).NotTo(HaveOccurred())
	return client.NewKeysAPI(c)
}

// rootIndex is etcd's index, by a quorum read.
func rootIndex(ctx context.Context, keys client.KeysAPI) uint64 {
	GinkgoHelper()
	resp, err := keys.Get(ctx, "/", &client.GetOptions{Quorum: true})
	Expect(err).NotTo(HaveOccurred())
	return resp.Index
}

// storeGets is how many GETs the member at endpoint has served (its v2
// store's getsSuccess: each member counts its own).
func storeGets(ctx context.Context, endpoint string) uint64 {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v2/stats/store", nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var stats struct {
		Gets uint64 `json:"getsSuccess"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&stats)).To(Succeed())
	return stats.Gets
}
