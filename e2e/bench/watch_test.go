package bench_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Watch benchmark parameters: the write rates (0: as fast as
// watchWriters can go), how long each rate is held, and the keys written
// (one after another, so a key is rewritten every watchKeys writes).
var watchRates = []int{250, 500, 1000, 2000, 0}

const (
	watchFor     = 3 * time.Second
	watchKeys    = 1000
	watchWriters = 32
	// watchDrain is how long the consumer may stay silent, after the
	// writers stop, before the writes it has not delivered count as missed.
	watchDrain = time.Second
)

var watchCluster struct {
	once      sync.Once
	endpoints []string
	err       error
}

// watchEtcd returns the endpoints of a one-member etcd of its own, started
// on first use: the writes of the watch benchmark never touch the snapshot
// etcd.
func watchEtcd(b *testing.B) []string {
	watchCluster.once.Do(func() {
		c, err := etcdproc.StartMember(etcdproc.Options{})
		if err != nil {
			watchCluster.err = err
			return
		}
		bench.Track(c)
		watchCluster.endpoints = c.Endpoints()
	})
	if watchCluster.err != nil {
		b.Fatalf("watch etcd: %v", watchCluster.err)
	}
	return watchCluster.endpoints
}

// BenchmarkWatch writes into one etcd member at fixed rates, each for
// watchFor, while a consumer watches the prefix, and measures the lag from
// each write's acknowledgement to its delivery: for etcdsync in process
// (started and in sync first) and for the floor, a bare client/v2 watcher
// loop that restarts at etcd's current index after a 401, as the seed did.
// Each op is one such run; its figures are custom metrics.
func BenchmarkWatch(b *testing.B) {
	endpoints := watchEtcd(b)
	writer, err := bench.KeysAPI(endpoints, watchWriters) // one pool of connections for every run
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range watchRates {
		name := "rate=max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%d", rate)
		}
		b.Run(name+"/syncer", func(b *testing.B) {
			for range b.N {
				runWatch(b, endpoints, putV2(writer), rate, startWatchSyncer(supervisor.WatchLongPoll))
			}
		})
		b.Run(name+"/stream", func(b *testing.B) {
			for range b.N {
				runWatch(b, endpoints, putV2(writer), rate, startWatchSyncer(supervisor.WatchStream))
			}
		})
		b.Run(name+"/floor", func(b *testing.B) {
			for range b.N {
				runWatch(b, endpoints, putV2(writer), rate, startWatchFloor)
			}
		})
	}
}

var runIDs atomic.Uint64

// A watchConsumer starts watching endpoints, delivering every value it sees
// to log, and returns once it is ready for writes: stop stops it, and
// lostSync reports how often it lost its position (syncer: resyncs after
// the first in-sync; floor: 401 errors).
type watchConsumer func(endpoints []string, log *lagLog) (stop func() error, lostSync func() int64, err error)

// A putFunc writes one key, returning once etcd has acknowledged it.
type putFunc func(ctx context.Context, key, value string) error

// putV2 writes through client/v2.
func putV2(keys client.KeysAPI) putFunc {
	return func(ctx context.Context, key, value string) error {
		_, err := keys.Set(ctx, key, value, nil)
		return err
	}
}

func runWatch(b *testing.B, endpoints []string, put putFunc, rate int, consume watchConsumer) {
	b.StopTimer()
	capacity := 200_000
	if rate > 0 {
		capacity = rate*int(watchFor/time.Second)*2 + 1000
	}
	log := newLagLog(fmt.Sprintf("r%d-", runIDs.Add(1)), capacity)
	stop, lostSync, err := consume(endpoints, log)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	acked, took, werr := write(put, rate, log)
	log.drain(acked)
	b.StopTimer()
	lost := lostSync()
	if err := stop(); err != nil {
		b.Fatalf("stopping the consumer: %v", err)
	}
	if werr != nil {
		b.Fatalf("writer: %v", werr)
	}
	lags, missed := log.lags(acked)
	if len(lags) == 0 {
		b.Fatalf("none of %d writes delivered", acked)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(acked)/took.Seconds(), "writes/s")
	b.ReportMetric(ms(lags[len(lags)/2]), "lag-p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "lag-p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "lag-max-ms")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(float64(lost), "lost-sync")
}

// lagLog records, per write sequence number, when the write was
// acknowledged and when it was delivered, as offsets from its creation.
type lagLog struct {
	run   string // every value written is run+seq: older values are ignored
	base  time.Time
	acks  []atomic.Int64
	seen  []atomic.Int64
	count atomic.Int64 // deliveries recorded
}

func newLagLog(run string, capacity int) *lagLog {
	return &lagLog{run: run, base: time.Now(), acks: make([]atomic.Int64, capacity), seen: make([]atomic.Int64, capacity)}
}

func (l *lagLog) now() int64 { return int64(time.Since(l.base)) + 1 } // 0 means "not yet"

func (l *lagLog) value(seq int) string { return l.run + strconv.Itoa(seq) }

func (l *lagLog) ack(seq int) { l.acks[seq].Store(l.now()) }

// deliver records the delivery of value, if it is one of this run's.
func (l *lagLog) deliver(value string) {
	rest, ok := strings.CutPrefix(value, l.run)
	if !ok {
		return
	}
	seq, err := strconv.Atoi(rest)
	if err != nil || seq >= len(l.seen) {
		return
	}
	if l.seen[seq].CompareAndSwap(0, l.now()) {
		l.count.Add(1)
	}
}

// drain waits until every one of the first acked writes is delivered, or
// deliveries have stopped for watchDrain.
func (l *lagLog) drain(acked int) {
	last, lastChange := l.count.Load(), time.Now()
	for l.count.Load() < int64(acked) && time.Since(lastChange) < watchDrain {
		time.Sleep(5 * time.Millisecond)
		if n := l.count.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}

// lags returns the sorted lags of the delivered writes among the first
// acked (a delivery seen before its acknowledgement returned counts as no
// lag), and how many were never delivered.
func (l *lagLog) lags(acked int) (lags []time.Duration, missed int) {
	for seq := range acked {
		a, s := l.acks[seq].Load(), l.seen[seq].Load()
		if s == 0 {
			missed++
			continue
		}
		lags = append(lags, time.Duration(max(0, s-a)))
	}
	slices.Sort(lags)
	return lags, missed
}

// write writes values 0, 1, 2, ... of log to watchKeys keys with
// watchWriters writers for watchFor: at rate writes a second, or as fast as
// they go if rate is 0. It returns how many writes were made, all
// acknowledged (seq 0 to acked-1), and how long writing took.
func write(put putFunc, rate int, log *lagLog) (acked int, took time.Duration, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seqs := make(chan int, watchWriters)
	start := time.Now()
	go func() { // the pacer
		defer close(seqs)
		for seq := 0; seq < len(log.acks); seq++ {
			if rate > 0 {
				due := start.Add(time.Duration(seq) * time.Second / time.Duration(rate))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
			if time.Since(start) >= watchFor {
				return
			}
			select {
			case seqs <- seq:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var once sync.Once
	var done atomic.Int64
	for range watchWriters {
		wg.Go(func() {
			for seq := range seqs {
				key := fmt.Sprintf("%s/bench/watch/k%04d", calico.Prefix, seq%watchKeys)
				if werr := put(ctx, key, log.value(seq)); werr != nil {
					once.Do(func() { err = fmt.Errorf("write %d: %w", seq, werr) })
					cancel()
					continue
				}
				log.ack(seq)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	took = time.Since(start)
	if err != nil {
		return 0, took, err
	}
	return int(done.Load()), took, nil
}

// startWatchSyncer starts etcdsync with the default configuration and
// waits for its first in-sync.
func startWatchSyncer(mode supervisor.WatchMode) watchConsumer {
	return func(endpoints []string, log *lagLog) (func() error, func() int64, error) {
		h := &watchHost{log: log, inSync: make(chan struct{})}
		stop, err := startSyncer(supervisor.Config{Endpoints: endpoints, WatchMode: mode})(h)
		if err != nil {
			return nil, nil, err
		}
		select {
		case <-h.inSync:
		case <-time.After(30 * time.Second):
			_ = stop()
			return nil, nil, errors.New("the syncer was not in sync within 30 s")
		}
		return stop, h.resyncs.Load, nil
	}
}

// watchHost is the syncer's host in the watch benchmark.
type watchHost struct {
	log     *lagLog
	inSync  chan struct{}
	synced  bool // only touched by the callbacks, which never run concurrently
	resyncs atomic.Int64
}

func (h *watchHost) OnStatusUpdated(s messages.SyncStatus) {
	switch {
	case s == messages.InSync && !h.synced:
		h.synced = true
		close(h.inSync)
	case s != messages.InSync && h.synced:
		h.resyncs.Add(1)
	}
}

func (h *watchHost) OnUpdates(updates []messages.Update) {
	for _, u := range updates {
		if u.Type != messages.UpdateTypeDeleted {
			h.log.deliver(u.Value)
		}
	}
}

// startWatchFloor starts the floor: one goroutine reading etcd's index,
// then calling Next on a recursive client/v2 watcher from it, one long-poll
// request per event, and starting over from the index a 401 carries.
func startWatchFloor(endpoints []string, log *lagLog) (func() error, func() int64, error) {
	keys, err := bench.KeysAPI(endpoints, 1)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var index uint64
	resp, err := keys.Get(ctx, calico.Prefix, nil)
	var e client.Error
	switch {
	case err == nil:
		index = resp.Index
	case errors.As(err, &e) && e.Code == client.ErrorCodeKeyNotFound:
		index = e.Index
	default:
		cancel()
		return nil, nil, err
	}
	var cleared atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := keys.Watcher(calico.Prefix, &client.WatcherOptions{AfterIndex: index, Recursive: true})
		for {
			resp, err := w.Next(ctx)
			if ctx.Err() != nil {
				return
			}
			var e client.Error
			switch {
			case errors.As(err, &e) && e.Code == client.ErrorCodeEventIndexCleared:
				cleared.Add(1)
				w = keys.Watcher(calico.Prefix, &client.WatcherOptions{AfterIndex: e.Index, Recursive: true})
			case err != nil:
				// Transport trouble: retry the same position.
			case resp.Node != nil && !resp.Node.Dir:
				log.deliver(resp.Node.Value)
			}
		}
	}()
	return func() error { cancel(); <-done; return nil }, cleared.Load, nil
}
