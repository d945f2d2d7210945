package etcdsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

// streamReader reads a streaming watch answer event by event into a
// channel, closed with the error that ended it.
type streamReader struct {
	Index  string // X-Etcd-Index of the answer
	events chan *client.Response
	err    error
}

// openStream opens GET endpoint/v2/keys<key>?<query> and reads it until ctx
// ends.
func openStream(ctx context.Context, endpoint, key, query string) *streamReader {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v2/keys"+key+"?"+query, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	r := &streamReader{Index: resp.Header.Get("X-Etcd-Index"), events: make(chan *client.Response, 10000)}
	go func() {
		defer resp.Body.Close()
		defer close(r.events)
		dec := json.NewDecoder(resp.Body)
		for {
			var ev client.Response
			if err := dec.Decode(&ev); err != nil {
				r.err = err
				return
			}
			r.events <- &ev
		}
	}()
	return r
}

// take receives n events, or fails.
func (r *streamReader) take(ctx context.Context, n int) []*client.Response {
	GinkgoHelper()
	var out []*client.Response
	for range n {
		var ev *client.Response
		Eventually(r.events).WithContext(ctx).Should(Receive(&ev))
		Expect(ev).NotTo(BeNil(), "the stream ended: %v", r.err)
		out = append(out, ev)
	}
	return out
}

func actionsAndKeys(evs []*client.Response) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+" "+e.Node.Key)
	}
	return out
}

var _ = Describe("The simulation over HTTP", func() {
	var (
		sim  *etcdsim.Server
		srv  *httptest.Server
		kapi client.KeysAPI // client/v2 over HTTP
	)
	BeforeEach(func() {
		sim = etcdsim.New()
		srv = httptest.NewServer(sim)
		DeferCleanup(srv.Close)
		DeferCleanup(sim.ReleaseWatches)
		kapi = keysAPIFor(srv.URL)
	})

	It("answers client/v2's GETs as the KeysAPI does", func(ctx SpecContext) {
		sim.Load(map[string]string{"/p/a": "1", "/p/d/b": "2", "/p/_h": "hidden"})
		for _, opts := range []*client.GetOptions{{Sort: true}, {Recursive: true, Sort: true}, {Quorum: true, Recursive: true, Sort: true}} {
			want, err := sim.Get(ctx, "/p", opts)
			Expect(err).NotTo(HaveOccurred())
			got, err := kapi.Get(ctx, "/p", opts)
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(want), "%+v", opts)
		}
		_, want := sim.Get(ctx, "/nope", nil)
		_, err := kapi.Get(ctx, "/nope", nil)
		Expect(err).To(Equal(want))
	})

	It("answers client/v2's long polls as the KeysAPI does, from the history and live", func(ctx SpecContext) {
		must(sim.Set(ctx, "/p/a", "1", nil))
		start := sim.Index()
		must(sim.Set(ctx, "/p/a", "2", nil))
		must(sim.Set(ctx, "/p/_h", "h", nil))
		ours, theirs := kapi.Watcher("/p", &client.WatcherOptions{AfterIndex: start - 1, Recursive: true}),
			sim.Watcher("/p", &client.WatcherOptions{AfterIndex: start - 1, Recursive: true})
		for range 3 {
			Expect(must(ours.Next(ctx))).To(Equal(must(theirs.Next(ctx))))
		}
		ch := nextAsync(ctx, ours)
		Eventually(sim.WatchesInFlight).Should(Equal(1))
		must(sim.Set(ctx, "/p/live", "1", nil))
		var r result
		Eventually(ch).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.resp.Node.Key).To(Equal("/p/live"))
	})

	It("streams from the head, event after event, hiding hidden keys as a live notification does", func(ctx SpecContext) {
		must(sim.Set(ctx, "/p/before", "1", nil))
		st := openStream(ctx, srv.URL, "/p", "wait=true&stream=true&recursive=true")
		Expect(st.Index).To(Equal(fmt.Sprint(sim.Index())))
		must(sim.Set(ctx, "/p/a", "1", nil))
		must(sim.Set(ctx, "/p/_h", "h", nil))
		must(sim.Set(ctx, "/p/b", "1", nil))
		must(sim.Delete(ctx, "/p/a", nil))
		Expect(actionsAndKeys(st.take(ctx, 3))).To(Equal([]string{"set /p/a", "set /p/b", "delete /p/a"}))
	})

	It("answers a stream asked for an index in the history with that one event, and then nothing, ever", func(ctx SpecContext) {
		must(sim.Set(ctx, "/p/a", "1", nil))
		first := sim.Index()
		must(sim.Set(ctx, "/p/b", "1", nil))
		st := openStream(ctx, srv.URL, "/p", fmt.Sprintf("wait=true&stream=true&recursive=true&waitIndex=%d", first))
		Expect(actionsAndKeys(st.take(ctx, 1))).To(Equal([]string{"set /p/a"}))
		must(sim.Set(ctx, "/p/c", "1", nil))
		Consistently(st.events).WithTimeout(200*time.Millisecond).ShouldNot(Receive(), "open and silent")
	})

	It("drops a stream whose buffer a burst overflows, leaving it open and silent", func(ctx SpecContext) {
		for i := range 2 * etcdsim.StreamBuffer {
			must(sim.Set(ctx, fmt.Sprintf("/p/ttl/k%d", i), "v", &client.SetOptions{TTL: time.Second}))
		}
		st := openStream(ctx, srv.URL, "/p", "wait=true&stream=true&recursive=true")
		sim.Advance(time.Second) // 200 expiries, one store operation
		Expect(st.take(ctx, etcdsim.StreamBuffer)).To(HaveEach(HaveField("Action", "expire")))
		must(sim.Set(ctx, "/p/after", "1", nil))
		Consistently(st.events).WithTimeout(200*time.Millisecond).ShouldNot(Receive(), "open and silent")
	})

	It("drops a stream held back while more than its buffer happens", func(ctx SpecContext) {
		st := openStream(ctx, srv.URL, "/p", "wait=true&stream=true&recursive=true")
		Eventually(sim.WatchesInFlight).Should(Equal(1))
		sim.HoldWatches()
		for i := range etcdsim.StreamBuffer + 1 {
			must(sim.Set(ctx, fmt.Sprintf("/p/k%d", i), "v", nil))
		}
		sim.ReleaseWatches()
		Expect(st.take(ctx, etcdsim.StreamBuffer)).To(HaveLen(etcdsim.StreamBuffer))
		Consistently(st.events).WithTimeout(200 * time.Millisecond).ShouldNot(Receive())
	})

	It("breaks streams and long polls when watches are cut", func(ctx SpecContext) {
		st := openStream(ctx, srv.URL, "/p", "wait=true&stream=true&recursive=true")
		ch := nextAsync(ctx, kapi.Watcher("/p", nil))
		Eventually(sim.WatchesInFlight).Should(Equal(2))
		sim.CutWatches()
		Eventually(st.events).Should(BeClosed())
		Expect(st.err).To(HaveOccurred())
		var r result
		Eventually(ch).Should(Receive(&r))
		Expect(r.err).To(HaveOccurred())
		Expect(r.err.Error()).To(ContainSubstring("EOF"))
	})
})
