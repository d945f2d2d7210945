package bench_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// mergeKeys is the size of the key set the merge benchmarks work on.
const mergeKeys = 100_000

// BenchmarkMerge measures the pure merge state machine (actors.Merge), no
// actors, no I/O. watch: one op is one watch event on an in-sync Merge of
// mergeKeys keys, about 80 % updates of existing keys, 10 % deletions and
// 10 % re-creations. snapshot: one op is one key of a snapshot merged into
// a fresh MergeCore, in batches of 1000, its final sweep included.
func BenchmarkMerge(b *testing.B) {
	kvs := calico.KVs(mergeKeys)
	b.Run("watch", func(b *testing.B) {
		m := actors.NewMergeCore()
		m.Start()
		snapshot(b, m, kvs, 1)
		if m.Status() != messages.InSync {
			b.Fatalf("merge is %v after its snapshot, want in-sync", m.Status())
		}
		idx := uint64(1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			j, pass := i%len(kvs), i/len(kvs)
			idx++
			var in messages.MergeInput = messages.WatcherUpdate{KV: messages.KV{Key: kvs[j].Key, Value: kvs[j].Value, ModifiedIndex: idx}}
			if (pass+j)%10 == 9 {
				in = messages.WatcherDeletion{Key: kvs[j].Key, ModifiedIndex: idx}
			}
			m.Step(in)
		}
		reportRate(b)
	})
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		var m *actors.MergeCore
		for i := 0; i < b.N; i += len(kvs) {
			b.StopTimer()
			m = actors.NewMergeCore()
			m.Start()
			b.StartTimer()
			snapshot(b, m, kvs[:min(len(kvs), b.N-i)], uint64(i/len(kvs)+1))
		}
		reportRate(b)
	})
}

// snapshot merges kvs into m as one snapshot at index idx, in batches of
// 1000, from the watcher's request to the sweep.
func snapshot(b *testing.B, m *actors.MergeCore, kvs []calico.KV, idx uint64) {
	step := func(in messages.MergeInput) { m.Step(in) }
	step(messages.WatcherNeedsSnapshot{MinIndex: idx, Cause: "start"})
	batch := make([]messages.KV, 0, 1000)
	for i, kv := range kvs {
		batch = append(batch, messages.KV{Key: kv.Key, Value: kv.Value, ModifiedIndex: idx})
		if len(batch) == cap(batch) || i == len(kvs)-1 {
			step(messages.SnapshotBatch{Index: idx, KVs: batch})
			batch = make([]messages.KV, 0, 1000)
		}
	}
	step(messages.SnapshotFinished{Index: idx})
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "events/s")
	}
}

// Pipeline benchmark parameters: the keys written (in turn), the keys the
// simulated etcd holds before, and how far the writer may run ahead of the
// consumer (well inside etcd's 1000-event window, so nothing resyncs).
const (
	pipelineKeys   = 10_000
	pipelineWindow = 500
)

// BenchmarkPipeline measures the whole actor pipeline on the simulated
// etcd: one op is one write into the sim, delivered to the host through
// etcdsync's watcher, merger and consumer actors (syncer), or through a
// bare client/v2-style watcher loop on the same sim (floor). The writer
// stays at most pipelineWindow events ahead of the consumer. allocs/op
// counts everything in the process: the sim's share is the floor's.
func BenchmarkPipeline(b *testing.B) {
	kvs := calico.KVs(pipelineKeys)
	initial := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		initial[kv.Key] = kv.Value
	}
	b.Run("floor", func(b *testing.B) {
		sim := etcdsim.New()
		sim.Load(initial)
		p := newPipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		w := sim.Watcher(calico.Prefix, &client.WatcherOptions{AfterIndex: sim.Index(), Recursive: true})
		go func() {
			defer close(done)
			for {
				resp, err := w.Next(ctx)
				if err != nil {
					return
				}
				p.deliver(resp.Node.Value)
			}
		}()
		p.run(b, sim, kvs)
		cancel()
		<-done
	})
	b.Run("syncer", func(b *testing.B) {
		sim := etcdsim.New()
		sim.Load(initial)
		p := newPipe()
		c := &pipeHost{pipe: p, inSync: make(chan struct{})}
		stop, err := startSyncer(supervisor.Config{KeysAPI: sim})(c)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-c.inSync:
		case <-time.After(30 * time.Second):
			b.Fatal("the syncer was not in sync with the sim within 30 s")
		}
		p.run(b, sim, kvs)
		if err := stop(); err != nil {
			b.Fatal(err)
		}
	})
}

// pipe is one pipeline run: values written carry its run prefix; each
// delivery of one returns a credit to the writer.
type pipe struct {
	prefix    string
	credits   chan struct{}
	delivered atomic.Int64
}

func newPipe() *pipe {
	return &pipe{prefix: fmt.Sprintf("p%d-", runIDs.Add(1)), credits: make(chan struct{}, pipelineWindow)}
}

func (p *pipe) deliver(value string) {
	if strings.HasPrefix(value, p.prefix) {
		p.delivered.Add(1)
		<-p.credits
	}
}

// run writes b.N values into sim, on the clock, and waits for all of them to
// be delivered.
func (p *pipe) run(b *testing.B, sim *etcdsim.Server, kvs []calico.KV) {
	ctx := context.Background()
	values := make([]string, pipelineKeys) // made off the clock
	for i := range values {
		values[i] = p.prefix + kvs[i].Value
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.credits <- struct{}{}
		j := i % len(kvs)
		if _, err := sim.Set(ctx, kvs[j].Key, values[j], nil); err != nil {
			b.Fatal(err)
		}
	}
	last, lastChange := p.delivered.Load(), time.Now()
	for p.delivered.Load() < int64(b.N) {
		if time.Since(lastChange) > 10*time.Second {
			b.Fatalf("%d of %d writes delivered, none for 10 s", last, b.N)
		}
		time.Sleep(50 * time.Microsecond)
		if n := p.delivered.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	b.StopTimer()
	reportRate(b)
}

// pipeHost is the syncer's host in the pipeline benchmark.
type pipeHost struct {
	pipe   *pipe
	inSync chan struct{}
	synced bool // only touched by the callbacks, which never run concurrently
}

func (h *pipeHost) OnStatusUpdated(s messages.SyncStatus) {
	if s == messages.InSync && !h.synced {
		h.synced = true
		close(h.inSync)
	}
}

func (h *pipeHost) OnUpdates(updates []messages.Update) {
	for _, u := range updates {
		h.pipe.deliver(u.Value)
	}
}
