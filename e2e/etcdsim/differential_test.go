package etcdsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

// side is one of the two systems a differential script runs against, and
// the log of what a client saw there. The simulation starts at the real
// etcd's index, so indexes compare as they are; cluster IDs and
// expiration timestamps legitimately differ and are left out.
type side struct {
	name     string
	kapi     client.KeysAPI
	sim      *etcdsim.Server // nil on the real side
	endpoint string          // the real etcd's
	log      []string
}

func (d *side) record(step string, resp *client.Response, err error) *client.Response {
	d.log = append(d.log, step+" → "+describe(resp, err))
	return resp
}

func describe(resp *client.Response, err error) string {
	var etcdErr client.Error
	switch {
	case errors.As(err, &etcdErr):
		return fmt.Sprintf("error %d %q cause=%q index=%d", etcdErr.Code, etcdErr.Message, etcdErr.Cause, etcdErr.Index)
	case err != nil:
		return fmt.Sprintf("error %T %v", err, err)
	}
	return fmt.Sprintf("%s index=%d cid=%v node=%s prev=%s",
		resp.Action, resp.Index, resp.ClusterID != "", describeNode(resp.Node), describeNode(resp.PrevNode))
}

func describeNode(n *client.Node) string {
	if n == nil {
		return "nil"
	}
	s := fmt.Sprintf("{%q dir=%v value=%q c=%d m=%d ttl=%d exp=%v", n.Key, n.Dir, n.Value,
		n.CreatedIndex, n.ModifiedIndex, n.TTL, n.Expiration != nil)
	if n.Nodes != nil {
		var children []string
		for _, c := range n.Nodes {
			children = append(children, describeNode(c))
		}
		s += " nodes=[" + strings.Join(children, " ") + "]"
	}
	return s + "}"
}

func sortNodes(n *client.Node) {
	if n == nil {
		return
	}
	sort.Sort(n.Nodes)
	for _, c := range n.Nodes {
		sortNodes(c)
	}
}

func modIndex(r *client.Response) uint64 {
	if r == nil || r.Node == nil {
		return 0
	}
	return r.Node.ModifiedIndex
}

func (d *side) set(ctx context.Context, key, value string, opts *client.SetOptions) *client.Response {
	resp, err := d.kapi.Set(ctx, key, value, opts)
	return d.record(fmt.Sprintf("set %s %q %+v", key, value, opts), resp, err)
}

func (d *side) create(ctx context.Context, key, value string) *client.Response {
	resp, err := d.kapi.Create(ctx, key, value)
	return d.record(fmt.Sprintf("create %s %q", key, value), resp, err)
}

func (d *side) update(ctx context.Context, key, value string) *client.Response {
	resp, err := d.kapi.Update(ctx, key, value)
	return d.record(fmt.Sprintf("update %s %q", key, value), resp, err)
}

func (d *side) createInOrder(ctx context.Context, dir, value string) *client.Response {
	resp, err := d.kapi.CreateInOrder(ctx, dir, value, nil)
	return d.record(fmt.Sprintf("createInOrder %s %q", dir, value), resp, err)
}

func (d *side) get(ctx context.Context, key string, opts *client.GetOptions) *client.Response {
	resp, err := d.kapi.Get(ctx, key, opts)
	if err == nil && (opts == nil || !opts.Sort) {
		sortNodes(resp.Node) // the order is etcd's map order: compare the content
	}
	return d.record(fmt.Sprintf("get %s %+v", key, opts), resp, err)
}

func (d *side) del(ctx context.Context, key string, opts *client.DeleteOptions) *client.Response {
	resp, err := d.kapi.Delete(ctx, key, opts)
	return d.record(fmt.Sprintf("delete %s %+v", key, opts), resp, err)
}

// index is the current index, from a quorum GET of the root (not logged:
// the root lists other specs' keys on the real side).
func (d *side) index(ctx context.Context) uint64 {
	GinkgoHelper()
	resp, err := d.kapi.Get(ctx, "/", &client.GetOptions{Quorum: true})
	Expect(err).NotTo(HaveOccurred())
	return resp.Index
}

// getRoot logs what a GET of the root shows, down to the entry for p.
func (d *side) getRoot(ctx context.Context, p string) {
	resp, err := d.kapi.Get(ctx, "/", nil)
	if err != nil {
		d.record("get /", nil, err)
		return
	}
	var mine *client.Node
	for _, n := range resp.Node.Nodes {
		if n.Key == p {
			mine = n
		}
	}
	d.log = append(d.log, fmt.Sprintf("get / → %s index=%d cid=%v root={%q dir=%v c=%d m=%d} entry=%s",
		resp.Action, resp.Index, resp.ClusterID != "", resp.Node.Key, resp.Node.Dir,
		resp.Node.CreatedIndex, resp.Node.ModifiedIndex, describeNode(mine)))
}

// next logs the watcher's next event.
func (d *side) next(ctx context.Context, label string, w client.Watcher) *client.Response {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := w.Next(ctx)
	return d.record("next "+label, resp, err)
}

// watchedNext is a Next that starts now and returns when the test has
// done its writes: start it, write, then call the returned function.
func (d *side) watchedNext(ctx context.Context, label string, w client.Watcher) func() *client.Response {
	GinkgoHelper()
	type result struct {
		resp *client.Response
		err  error
	}
	ch := make(chan result, 1)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	go func() {
		defer GinkgoRecover()
		resp, err := w.Next(ctx)
		ch <- result{resp, err}
	}()
	d.waitWatchers(ctx, 1)
	return func() *client.Response {
		defer cancel()
		r := <-ch
		return d.record("live next "+label, r.resp, r.err)
	}
}

// waitWatchers waits until n watch requests are waiting on the server:
// on etcd, its watcher count in /v2/stats/store.
func (d *side) waitWatchers(ctx context.Context, n int) {
	GinkgoHelper()
	if d.sim != nil {
		Eventually(d.sim.WatchesInFlight).WithContext(ctx).Should(Equal(n))
		return
	}
	Eventually(func(g Gomega) int {
		resp, err := http.Get(d.endpoint + "/v2/stats/store")
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var stats struct {
			Watchers int `json:"watchers"`
		}
		g.Expect(json.NewDecoder(resp.Body).Decode(&stats)).To(Succeed())
		return stats.Watchers
	}).WithContext(ctx).WithPolling(20 * time.Millisecond).Should(Equal(n))
}

// tick lets time pass: the fake clock moves on the simulation; on etcd,
// time passes anyway.
func (d *side) tick(dur time.Duration) {
	if d.sim != nil {
		d.sim.Advance(dur)
	}
}

// waitExpiry lets key's TTL (set ttl ago at the latest) run out: the
// simulation advances its clock; etcd's leader expires it within 500 ms
// of its time, which the spec polls for without changing the index.
func (d *side) waitExpiry(ctx context.Context, key string, ttl time.Duration) {
	GinkgoHelper()
	if d.sim != nil {
		d.sim.Advance(ttl)
		return
	}
	Eventually(func() error {
		_, err := d.kapi.Get(ctx, key, nil)
		return err
	}).WithContext(ctx).WithTimeout(ttl + 3*time.Second).WithPolling(50 * time.Millisecond).
		Should(Satisfy(client.IsKeyNotFound))
}

// bulk sets key n times. On etcd eight writers share the work (each
// write waits for an fsync); every write is the same, so the resulting
// events are the same in any order.
func (d *side) bulk(ctx context.Context, key string, n int) {
	GinkgoHelper()
	if d.sim != nil {
		for range n {
			_, err := d.kapi.Set(ctx, key, "v", nil)
			Expect(err).NotTo(HaveOccurred())
		}
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range 8 {
		wg.Go(func() {
			for range work {
				if _, err := d.kapi.Set(ctx, key, "v", nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(errs).To(BeEmpty())
}

// expectSameLogs compares the two sides step by step and names the first
// step where they differ.
func expectSameLogs(sim, real *side) {
	GinkgoHelper()
	fmt.Fprintf(GinkgoWriter, "--- %s\n%s\n--- %s\n%s\n", real.name, strings.Join(real.log, "\n"),
		sim.name, strings.Join(sim.log, "\n"))
	for i := 0; i < max(len(sim.log), len(real.log)); i++ {
		var s, r string
		if i < len(sim.log) {
			s = sim.log[i]
		}
		if i < len(real.log) {
			r = real.log[i]
		}
		if s != r {
			Fail(fmt.Sprintf("step %d differs:\n  etcd: %s\n  sim:  %s", i, r, s))
		}
	}
}

// differ runs script on the real etcd, then on a simulation that starts
// at the index etcd had, called directly, and on another called over HTTP
// (ServeHTTP, through client/v2), and compares what the client saw.
func differ(ctx context.Context, script func(context.Context, *side)) {
	GinkgoHelper()
	real := &side{name: "etcd", kapi: realKeysAPI(), endpoint: realEtcd}
	real.waitWatchers(ctx, 0) // watches of earlier specs are gone
	base := real.index(ctx)
	script(ctx, real)

	// The endpoint appears in some errors' messages.
	sim := etcdsim.NewWithConfig(etcdsim.Config{StartIndex: base, Endpoint: realEtcd})
	simSide := &side{name: "sim", kapi: sim, sim: sim}
	script(ctx, simSide)
	expectSameLogs(simSide, real)

	sim = etcdsim.NewWithConfig(etcdsim.Config{StartIndex: base, Endpoint: realEtcd})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	httpSide := &side{name: "sim over HTTP", kapi: overHTTP{KeysAPI: sim, reads: keysAPIFor(srv.URL)}, sim: sim, endpoint: srv.URL}
	script(ctx, httpSide)
	expectSameLogs(httpSide, real)
}

// overHTTP reads and watches through client/v2 over the simulation's HTTP
// front end, and writes through the simulation's KeysAPI (ServeHTTP
// answers GETs only).
type overHTTP struct {
	client.KeysAPI
	reads client.KeysAPI
}

func (o overHTTP) Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error) {
	return o.reads.Get(ctx, key, opts)
}

func (o overHTTP) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	return o.reads.Watcher(key, opts)
}

var _ = Describe("The simulation beside a real etcd", Label("etcd"), Serial, func() {
	It("answers writes, reads and their errors alike", func(ctx SpecContext) {
		differ(ctx, keysScript)
	}, SpecTimeout(30*time.Second))

	It("delivers the same watch events, from the history and live", func(ctx SpecContext) {
		differ(ctx, watchScript)
	}, SpecTimeout(30*time.Second))

	It("expires keys and directories alike", func(ctx SpecContext) {
		differ(ctx, ttlScript)
	}, SpecTimeout(30*time.Second))

	It("fails a watch that fell out of the 1000-event history alike", func(ctx SpecContext) {
		differ(ctx, historyScript)
	}, SpecTimeout(60*time.Second))

	It("fails calls to a dead server alike", func(ctx SpecContext) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		dead := "http://" + l.Addr().String()
		Expect(l.Close()).To(Succeed())
		sim := etcdsim.NewWithConfig(etcdsim.Config{Endpoint: dead})
		sim.Disconnect()
		calls := func(kapi client.KeysAPI) []string {
			var errs []error
			_, err := kapi.Get(ctx, "/k", nil)
			errs = append(errs, err)
			_, err = kapi.Set(ctx, "/k", "v", nil)
			errs = append(errs, err)
			_, err = kapi.Create(ctx, "/k", "v")
			errs = append(errs, err)
			_, err = kapi.Update(ctx, "/k", "v")
			errs = append(errs, err)
			_, err = kapi.CreateInOrder(ctx, "/k", "v", nil)
			errs = append(errs, err)
			_, err = kapi.Delete(ctx, "/k", nil)
			errs = append(errs, err)
			_, err = kapi.Watcher("/k", nil).Next(ctx)
			errs = append(errs, err)
			var out []string
			for _, err := range errs {
				out = append(out, fmt.Sprintf("%T %v", err, err))
			}
			return out
		}
		Expect(calls(sim)).To(Equal(calls(keysAPIFor(dead))))
	}, SpecTimeout(20*time.Second))

	It("fails a call with a cancelled context alike", func(ctx SpecContext) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		sim := etcdsim.New()
		for _, kapi := range []client.KeysAPI{sim, realKeysAPI()} {
			_, err := kapi.Get(cancelled, "/k", nil)
			Expect(err).To(MatchError(context.Canceled))
			_, err = kapi.Watcher("/k", nil).Next(cancelled)
			Expect(err).To(MatchError(context.Canceled))
		}
	}, SpecTimeout(10*time.Second))

	It("breaks a waiting watch alike when the member dies", func(ctx SpecContext) {
		c, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		real := &side{name: "etcd", kapi: keysAPIFor(c.Endpoints()[0]), endpoint: c.Endpoints()[0]}
		sim := etcdsim.New()
		simSide := &side{name: "sim", kapi: sim, sim: sim}

		done := real.watchedNext(ctx, "/k", real.kapi.Watcher("/k", nil))
		Expect(c.Kill(0)).To(Succeed())
		done()
		done = simSide.watchedNext(ctx, "/k", sim.Watcher("/k", nil))
		sim.CutWatches()
		done()
		expectSameLogs(simSide, real)
	}, SpecTimeout(20*time.Second))
})

var _ = Describe("The simulation's streams beside a real etcd's", Label("etcd"), Serial, func() {
	It("stream from the head, answer a past index once and then never, and go silent, not closed, when dropped", func(ctx SpecContext) {
		real := &side{name: "etcd", kapi: realKeysAPI(), endpoint: realEtcd}
		real.waitWatchers(ctx, 0)
		base := real.index(ctx)
		streamScript(ctx, real)
		sim := etcdsim.NewWithConfig(etcdsim.Config{StartIndex: base, Endpoint: realEtcd})
		srv := httptest.NewServer(sim)
		defer srv.Close()
		simSide := &side{name: "sim over HTTP", kapi: sim, sim: sim, endpoint: srv.URL}
		streamScript(ctx, simSide)
		expectSameLogs(simSide, real)
	}, SpecTimeout(60*time.Second))
})

// streamScript reads streaming watches (?wait=true&stream=true) over plain
// HTTP: what the syncer's stream mode relies on, and what it must survive.
func streamScript(ctx context.Context, d *side) {
	const p = "/diff-stream"
	ctx, cancel := context.WithCancel(ctx) // ends the streams with the script
	defer cancel()
	logEvents := func(label string, evs []*client.Response) {
		for _, ev := range evs {
			d.record(label, ev, nil)
		}
	}
	silent := func(label string, st *streamReader) {
		GinkgoHelper()
		// etcd writes an event to a stream within milliseconds: none in
		// 300 ms is none at all.
		Consistently(st.events).WithTimeout(300*time.Millisecond).ShouldNot(Receive(), label)
		d.log = append(d.log, label+": silent, and still open")
	}

	d.set(ctx, p+"/before", "1", nil)
	head := openStream(ctx, d.endpoint, p, "wait=true&stream=true&recursive=true")
	d.log = append(d.log, fmt.Sprintf("a stream from the head starts at the store's index: %v", head.Index == fmt.Sprint(d.index(ctx))))
	d.set(ctx, p+"/a", "1", nil)
	d.set(ctx, p+"/_hidden", "h", nil)
	d.set(ctx, p+"/a", "", &client.SetOptions{Dir: true})
	d.set(ctx, p+"/a/b", "1", nil)
	d.del(ctx, p+"/a", &client.DeleteOptions{Recursive: true})
	logEvents("from the head", head.take(ctx, 4))
	silent("after them, the hidden key not among them", head)

	first := modIndex(d.set(ctx, p+"/past", "1", nil))
	d.set(ctx, p+"/past", "2", nil)
	past := openStream(ctx, d.endpoint, p, fmt.Sprintf("wait=true&stream=true&recursive=true&waitIndex=%d", first))
	logEvents("from a past index", past.take(ctx, 1))
	d.set(ctx, p+"/after-past", "1", nil)
	silent("a stream asked for the past, after its one event", past)

	const burst, ttl = 600, 2 * time.Second
	d.setTTLs(ctx, p+"/ttl/k", burst, ttl)
	dropped := openStream(ctx, d.endpoint, p, "wait=true&stream=true&recursive=true")
	d.waitExpiry(ctx, fmt.Sprintf("%s/ttl/k%d", p, burst-1), ttl)
	got := 0
	for quiet := false; !quiet; {
		select {
		case ev := <-dropped.events:
			Expect(ev).NotTo(BeNil(), "the stream ended: %v", dropped.err)
			got++
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	d.set(ctx, p+"/marker", "1", nil)
	d.log = append(d.log, fmt.Sprintf("%d expiries at once: the stream got at least %d, fewer than all: %v",
		burst, etcdsim.StreamBuffer, got >= etcdsim.StreamBuffer && got < burst))
	GinkgoWriter.Printf("%s: the stream got %d of %d expiries\n", d.name, got, burst)
	silent("then, the marker not among them", dropped)
}

// setTTLs sets n keys prefix0..prefix<n-1> with a TTL, not logged; on etcd
// eight writers share the work, so that they expire close together.
func (d *side) setTTLs(ctx context.Context, prefix string, n int, ttl time.Duration) {
	GinkgoHelper()
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	writers := 8
	if d.sim != nil {
		writers = 1 // the same events, in a reproducible order
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range writers {
		wg.Go(func() {
			for i := range work {
				if _, err := d.kapi.Set(ctx, fmt.Sprint(prefix, i), "soon gone", &client.SetOptions{TTL: ttl}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	Expect(errs).To(BeEmpty())
}

var _ = Describe("The simulation beside a real etcd that is rebuilt or restored", Label("etcd", "slow"), func() {
	// Each spec has a member of its own: it restarts it.
	var c *etcdproc.Cluster
	var real, simSide *side
	var sim *etcdsim.Server
	BeforeEach(func() {
		var err error
		c, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		ep := c.Endpoints()[0]
		real = &side{name: "etcd", kapi: keysAPIFor(ep), endpoint: ep}
	})
	JustBeforeEach(func(ctx SpecContext) {
		sim = etcdsim.NewWithConfig(etcdsim.Config{StartIndex: real.index(ctx), Endpoint: real.endpoint})
		simSide = &side{name: "sim", kapi: sim, sim: sim}
	})

	It("goes back in time alike on a restore from backup", func(ctx SpecContext) {
		var b *etcdproc.Backup
		restoreScript(ctx, real, func() {
			var err error
			b, err = c.Backup()
			Expect(err).NotTo(HaveOccurred())
		}, func() { Expect(c.Restore(b)).To(Succeed()) })
		var sb *etcdsim.Backup
		// etcdproc restarts the member to take a backup and to restore one.
		restoreScript(ctx, simSide, func() {
			sb = sim.Backup()
			sim.Restart()
		}, func() {
			sim.Restore(sb)
			sim.Restart()
		})
		expectSameLogs(simSide, real)
	}, SpecTimeout(30*time.Second))

	It("starts over alike when the cluster is rebuilt", func(ctx SpecContext) {
		resetScript(ctx, real, func() { Expect(c.Rebuild()).To(Succeed()) })
		resetScript(ctx, simSide, func() { sim.Reset("", nil) })
		expectSameLogs(simSide, real)
	}, SpecTimeout(30*time.Second))
})

// restoreScript restores a backup and watches from beyond the restored
// head: the watch waits for the index to come round again.
func restoreScript(ctx context.Context, d *side, backup, restore func()) {
	const p = "/diff-restore"
	cid := d.clusterID(ctx)
	d.set(ctx, p+"/a", "1", nil)
	d.set(ctx, p+"/b", "1", nil)
	backup()
	d.set(ctx, p+"/a", "2", nil)
	d.set(ctx, p+"/c", "1", nil)
	d.del(ctx, p+"/b", nil)
	head := d.index(ctx)
	restore()
	d.log = append(d.log, fmt.Sprintf("same cluster ID: %v", d.clusterID(ctx) == cid))
	d.get(ctx, p, &client.GetOptions{Recursive: true, Sort: true, Quorum: true})
	d.next(ctx, "from the restored history", d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: 1, Recursive: true}))
	w := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: head, Recursive: true})
	done := d.watchedNext(ctx, "beyond the restored head", w)
	for i := 0; d.index(ctx) <= head && i < 10; i++ {
		d.set(ctx, p+"/again", fmt.Sprint(i), nil)
	}
	done()
}

// resetScript replaces the cluster under a waiting watch.
func resetScript(ctx context.Context, d *side, reset func()) {
	const p = "/diff-reset"
	cid := d.clusterID(ctx)
	d.set(ctx, p+"/a", "1", nil)
	done := d.watchedNext(ctx, "across the reset", d.kapi.Watcher(p, &client.WatcherOptions{Recursive: true}))
	reset()
	done()
	d.log = append(d.log, fmt.Sprintf("same cluster ID: %v", d.clusterID(ctx) == cid))
	d.get(ctx, p+"/a", nil)
	d.set(ctx, p+"/b", "1", nil)
	d.next(ctx, "from the new history", d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: 1, Recursive: true}))
}

func (d *side) clusterID(ctx context.Context) string {
	GinkgoHelper()
	resp, err := d.kapi.Get(ctx, "/", &client.GetOptions{Quorum: true})
	Expect(err).NotTo(HaveOccurred())
	return resp.ClusterID
}

// keysScript exercises every write and read, their errors included.
func keysScript(ctx context.Context, d *side) {
	const p = "/diff-keys"
	d.set(ctx, p+"/a", "1", nil)
	d.set(ctx, p+"/a", "2", nil)
	d.create(ctx, p+"/b", "1")
	d.create(ctx, p+"/b", "1")
	d.update(ctx, p+"/b", "2")
	d.update(ctx, p+"/nope", "2")
	d.set(ctx, p+"/a", "3", &client.SetOptions{PrevValue: "2"})
	d.set(ctx, p+"/a", "4", &client.SetOptions{PrevValue: "x"})
	idx := modIndex(d.get(ctx, p+"/a", nil))
	d.set(ctx, p+"/a", "5", &client.SetOptions{PrevIndex: idx})
	d.set(ctx, p+"/a", "6", &client.SetOptions{PrevIndex: idx})
	d.set(ctx, p+"/a", "6", &client.SetOptions{PrevIndex: idx, PrevValue: "x"})
	d.set(ctx, p+"/a", "6", &client.SetOptions{PrevExist: client.PrevExist, PrevValue: "5"})
	d.set(ctx, p+"/a", "7", &client.SetOptions{PrevExist: client.PrevNoExist, PrevValue: "6"})
	d.set(ctx, p+"/nope", "1", &client.SetOptions{PrevValue: "5"})
	d.set(ctx, p+"/d/e/f", "1", nil)
	d.set(ctx, p+"/d", "x", &client.SetOptions{PrevValue: "y"})
	d.set(ctx, p+"/d", "x", nil)
	d.set(ctx, p+"/a/under", "x", nil)
	d.set(ctx, p+"/a/under/deeper", "x", nil)
	d.set(ctx, p+"/b", "ignored", &client.SetOptions{Dir: true})
	d.set(ctx, p+"/b", "", &client.SetOptions{Dir: true})
	d.set(ctx, p+"/c", "", &client.SetOptions{Dir: true, PrevExist: client.PrevNoExist})
	d.update(ctx, p+"/c", "v")
	d.set(ctx, p+"/c", "", &client.SetOptions{PrevExist: client.PrevExist})
	d.set(ctx, p+"/a", "z", &client.SetOptions{PrevExist: "maybe"})
	d.set(ctx, p+"/a", "z", &client.SetOptions{Refresh: true, TTL: 10 * time.Second})
	d.set(ctx, p+"/a", "", &client.SetOptions{Refresh: true})
	d.set(ctx, p+"/a", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second})
	d.set(ctx, p+"/nope", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second})
	d.set(ctx, p+"/a", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second, PrevExist: client.PrevExist})
	d.set(ctx, p+"/a", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second, PrevValue: "6"})
	d.set(ctx, p+"/a", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second, PrevValue: "x"})
	d.set(ctx, p+"/a", "7", &client.SetOptions{NoValueOnSuccess: true})
	d.set(ctx, p+"/a", "8", &client.SetOptions{PrevValue: "7", NoValueOnSuccess: true})
	d.createInOrder(ctx, p+"/q", "first")
	d.createInOrder(ctx, p+"/q", "second")
	d.createInOrder(ctx, p+"/a", "under a file")
	d.set(ctx, p+"//g//h/", "1", nil)
	d.set(ctx, "diff-keys/g/../i", "1", nil)
	d.set(ctx, p+"/_hidden", "h", nil)
	d.set(ctx, p+"/d/_h2", "h", nil)
	d.set(ctx, p+"/d/_hdir/k", "h", nil)
	d.set(ctx, "/", "x", nil)
	d.create(ctx, "/", "x")
	d.update(ctx, "/", "x")
	d.set(ctx, "/", "x", &client.SetOptions{PrevValue: "y"})

	d.get(ctx, p+"/a", nil)
	d.get(ctx, p+"/_hidden", nil)
	d.get(ctx, p+"/d/_hdir", &client.GetOptions{Recursive: true})
	d.get(ctx, p+"/nope/deeper", nil)
	d.get(ctx, p+"/a/deeper/still", nil)
	d.get(ctx, p, &client.GetOptions{Sort: true})
	d.get(ctx, p, &client.GetOptions{Sort: true, Recursive: true})
	d.get(ctx, p, &client.GetOptions{Recursive: true})
	d.get(ctx, p, nil)
	d.get(ctx, p+"/c", &client.GetOptions{Recursive: true})
	d.get(ctx, p+"/a", &client.GetOptions{Quorum: true})
	d.get(ctx, p+"/d/", &client.GetOptions{Quorum: true, Recursive: true, Sort: true})
	d.getRoot(ctx, p)

	d.del(ctx, p+"/d", nil)
	d.del(ctx, p+"/d", &client.DeleteOptions{Dir: true})
	d.del(ctx, p+"/c", &client.DeleteOptions{Dir: true})
	d.del(ctx, p+"/d", &client.DeleteOptions{Recursive: true})
	d.del(ctx, p+"/d", nil)
	d.set(ctx, p+"/a", "8", nil)
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevValue: "x"})
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevValue: "8"})
	idx = modIndex(d.set(ctx, p+"/a", "9", nil))
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevIndex: idx + 100})
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevIndex: idx + 100, PrevValue: "x"})
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevIndex: idx, Dir: true})
	d.del(ctx, p+"/nope", &client.DeleteOptions{PrevValue: "x"})
	d.del(ctx, p+"/b", &client.DeleteOptions{PrevValue: "x"})
	d.del(ctx, p+"/b", &client.DeleteOptions{Dir: true})
	d.del(ctx, "/", nil)
	d.del(ctx, "/", &client.DeleteOptions{PrevValue: "x"})
	d.del(ctx, p+"/q", &client.DeleteOptions{Dir: true, Recursive: true})
	d.get(ctx, p, &client.GetOptions{Sort: true, Recursive: true})
}

// watchScript replays a history of every kind of event to recursive and
// plain watchers, then watches live.
func watchScript(ctx context.Context, d *side) {
	const p = "/diff-watch"
	start := d.index(ctx)
	d.set(ctx, p+"/a", "1", nil)
	d.set(ctx, p+"/a", "2", nil)
	d.create(ctx, p+"/b", "1")
	d.update(ctx, p+"/b", "2")
	d.set(ctx, p+"/a", "3", &client.SetOptions{PrevValue: "2"})
	d.del(ctx, p+"/a", &client.DeleteOptions{PrevValue: "3"})
	d.set(ctx, p+"/dir/x", "1", nil)
	zIdx := modIndex(d.set(ctx, p+"/dir/y/z", "1", nil))
	d.set(ctx, p+"/_hidden", "h", nil)
	d.set(ctx, p+"/dir/x", "", &client.SetOptions{Refresh: true, TTL: 100 * time.Second})
	d.set(ctx, p+"/dir/x", "2", nil)
	d.set(ctx, p+"/dir/empty", "", &client.SetOptions{Dir: true})
	d.del(ctx, p+"/dir", &client.DeleteOptions{Recursive: true})
	d.createInOrder(ctx, p+"/q", "in order")
	d.set(ctx, p+"/file", "f", nil)
	d.set(ctx, p+"/file", "", &client.SetOptions{Dir: true}) // a directory over a file: "set", the file as prevNode
	d.set(ctx, p+"/file/_h", "h", nil)
	end := modIndex(d.set(ctx, p+"/other", "1", nil))

	w := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: start, Recursive: true})
	for i := 0; i < 20; i++ {
		if r := d.next(ctx, "recursive "+p, w); r == nil || r.Node.ModifiedIndex >= end {
			break
		}
	}
	d.next(ctx, "plain "+p+"/a", d.kapi.Watcher(p+"/a", &client.WatcherOptions{AfterIndex: start}))
	d.next(ctx, "plain "+p+"/dir/y/z", d.kapi.Watcher(p+"/dir/y/z", &client.WatcherOptions{AfterIndex: zIdx}))
	// etcd matches a directory's deletion by raw prefix: /dirx sees /dir go.
	d.next(ctx, "plain "+p+"/dirx", d.kapi.Watcher(p+"/dirx", &client.WatcherOptions{AfterIndex: zIdx}))
	d.next(ctx, "recursive "+p+"/dir/y", d.kapi.Watcher(p+"/dir/y", &client.WatcherOptions{AfterIndex: zIdx, Recursive: true}))
	d.next(ctx, "root", d.kapi.Watcher("/", &client.WatcherOptions{AfterIndex: end - 1, Recursive: true}))

	// Live: the watch waits on the server before the write.
	d.set(ctx, p+"/live-file", "f", nil)
	d.set(ctx, p+"/_gone", "h", nil)
	live := d.kapi.Watcher(p, &client.WatcherOptions{Recursive: true})
	done := d.watchedNext(ctx, "recursive "+p, live)
	d.set(ctx, p+"/_live-hidden", "h", nil) // a recursive watcher is not told live
	d.set(ctx, p+"/sub/_h", "h", nil)
	d.set(ctx, p+"/live", "1", nil)
	done()
	done = d.watchedNext(ctx, "recursive "+p+" again", live)
	d.del(ctx, p+"/live", nil)
	done()
	done = d.watchedNext(ctx, "recursive "+p+", a directory over a file", live)
	d.set(ctx, p+"/live-file", "", &client.SetOptions{Dir: true})
	done()
	done = d.watchedNext(ctx, "recursive "+p+", a hidden key deleted", live)
	d.del(ctx, p+"/_gone", nil) // hidden from the watch: the next event is the one it gets
	d.set(ctx, p+"/after-hidden", "1", nil)
	done()
	plain := d.kapi.Watcher(p+"/sub/k", nil)
	d.set(ctx, p+"/sub/k", "1", nil)
	done = d.watchedNext(ctx, "plain "+p+"/sub/k", plain)
	d.del(ctx, p+"/sub", &client.DeleteOptions{Recursive: true})
	done()
	hidden := d.kapi.Watcher(p+"/_live-hidden", nil)
	done = d.watchedNext(ctx, "plain "+p+"/_live-hidden", hidden)
	d.set(ctx, p+"/_live-hidden", "h2", nil)
	done()
	future := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: d.index(ctx) + 1, Recursive: true})
	done = d.watchedNext(ctx, "future "+p, future)
	d.set(ctx, p+"/skipped", "1", nil)
	d.set(ctx, p+"/seen", "1", nil)
	done()
}

// ttlScript lets a key and a directory expire.
func ttlScript(ctx context.Context, d *side) {
	const p = "/diff-ttl"
	start := d.index(ctx)
	d.set(ctx, p+"/k1", "v", &client.SetOptions{TTL: time.Second})
	d.tick(10 * time.Millisecond)
	d.set(ctx, p+"/dir", "", &client.SetOptions{Dir: true, TTL: time.Second})
	d.set(ctx, p+"/dir/child", "c", nil)
	d.set(ctx, p+"/k2", "v", &client.SetOptions{TTL: time.Second})
	d.update(ctx, p+"/k2", "w")
	d.set(ctx, p+"/k3", "v", &client.SetOptions{TTL: time.Second})
	d.set(ctx, p+"/k3", "w", &client.SetOptions{PrevValue: "v"})
	// k4 outlives the wait; it is deleted at the end, so that no expiry
	// moves etcd's index during a later spec.
	d.set(ctx, p+"/k4", "v", &client.SetOptions{TTL: 5 * time.Second})
	d.get(ctx, p+"/k1", nil)
	d.get(ctx, p+"/k4", nil)
	d.get(ctx, p, &client.GetOptions{Recursive: true, Sort: true})
	childWatch := d.kapi.Watcher(p+"/dir/child", nil)
	done := d.watchedNext(ctx, "plain "+p+"/dir/child", childWatch)
	d.waitExpiry(ctx, p+"/dir", time.Second)
	done()
	d.get(ctx, p, &client.GetOptions{Recursive: true, Sort: true})
	w := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: start, Recursive: true})
	for i := 0; i < 12; i++ {
		if r := d.next(ctx, "recursive "+p, w); r == nil || r.Action == "expire" && r.Node.Key == p+"/dir" {
			break
		}
	}
	d.del(ctx, p+"/k4", nil)
}

// historyScript overflows the 1000-event history under a watcher.
func historyScript(ctx context.Context, d *side) {
	const p = "/diff-history"
	start := d.index(ctx)
	first := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: start, Recursive: true})
	d.bulk(ctx, p+"/k", etcdsim.HistorySize)
	d.next(ctx, "at the window's start", first)
	late := d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: start, Recursive: true})
	d.set(ctx, p+"/one-more", "x", nil)
	d.next(ctx, "one before the window", late)
	d.next(ctx, "at the window's new start", first)
	d.next(ctx, "far before the window", d.kapi.Watcher(p, &client.WatcherOptions{AfterIndex: 1}))
	d.next(ctx, "non-recursive, before the window", d.kapi.Watcher(p+"/k", &client.WatcherOptions{AfterIndex: start}))
}

var _ = Describe("The simulation's frozen follower beside a real member cut off from its quorum", Label("etcd", "slow"), func() {
	It("answers non-quorum reads from the store as it was, and quorum reads current, alike", func(ctx SpecContext) {
		c, err := etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter, PeerProxies: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		leader, err := c.Leader()
		Expect(err).NotTo(HaveOccurred())
		cutOff := (leader + 1) % 3
		writes, err := c.KeysAPIOf(leader, (leader+2)%3)
		Expect(err).NotTo(HaveOccurred())
		real := &side{name: "etcd", kapi: writes, endpoint: c.Endpoints()[leader]}
		reads := keysAPIFor(c.Endpoints()[cutOff])
		first := partitionScript(ctx, real, reads, func() {
			// The member must have applied everything so far, as the
			// simulation's follower has when it freezes.
			Eventually(func() (uint64, error) {
				resp, err := reads.Get(ctx, "/", nil)
				if err != nil {
					return 0, err
				}
				return resp.Index, nil
			}).WithContext(ctx).Should(Equal(real.index(ctx)))
			Expect(c.Partition(cutOff)).To(Succeed())
		})

		// The simulation starts where etcd was just before the script's
		// first write: read before it, etcd's index may still move as the
		// members of a cluster just started publish themselves.
		Expect(first).NotTo(BeZero())
		sim := etcdsim.NewWithConfig(etcdsim.Config{StartIndex: first - 1, Endpoint: real.endpoint})
		simSide := &side{name: "sim", kapi: sim, sim: sim}
		partitionScript(ctx, simSide, sim, sim.FreezeFollower)
		expectSameLogs(simSide, real)
	}, SpecTimeout(60*time.Second))
})

// partitionScript writes, cuts the member that reads serves off (freeze),
// writes on, and reads through both: non-quorum reads from the member cut
// off, quorum reads from the others. (A quorum read sent to the member cut
// off fails there and client/v2 moves to another endpoint; the simulation
// answers it from the leader at once. Watches differ: the real member's are
// silent, the simulation serves them from the leader; the stall check is
// spec'd on a real etcd.)
//
// It returns the index of its first write.
func partitionScript(ctx context.Context, d *side, reads client.KeysAPI, freeze func()) (first uint64) {
	if resp := d.set(ctx, "/part/a", "old", nil); resp != nil {
		first = resp.Index
	}
	d.set(ctx, "/part/dir/b", "old", nil)
	freeze()
	d.set(ctx, "/part/a", "new", nil)
	d.set(ctx, "/part/dir/c", "new", nil)
	d.del(ctx, "/part/dir/b", nil)
	for _, key := range []string{"/part/a", "/part/dir/b", "/part/dir/c"} {
		resp, err := reads.Get(ctx, key, nil)
		d.record("stale get "+key, resp, err)
	}
	resp, err := reads.Get(ctx, "/part", &client.GetOptions{Recursive: true, Sort: true})
	d.record("stale recursive get /part", resp, err)
	d.get(ctx, "/part", &client.GetOptions{Recursive: true, Sort: true, Quorum: true})
	return first
}
