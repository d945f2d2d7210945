package main

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/etcdsync/etcdsync/messages"
)

func TestMetricsObserver(t *testing.T) {
	m := newMetrics()
	m.Resync("start")
	m.Resync("watcher-restart")
	m.Resync("watcher-restart")
	m.WatcherRestarted()
	m.SnapshotRead(1500*time.Millisecond, 42)
	m.WatchEvent(10)
	m.WatchEvent(12)
	m.Merged(7, 9, 3)
	m.Merged(7, 11, 5)
	m.Delivered([]messages.Update{{Type: messages.UpdateTypeUpdated}, {Type: messages.UpdateTypeNew}, {Type: messages.UpdateTypeUpdated}})
	m.KeyParseFailed()
	m.ValueDecodeFailed()

	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"resyncs{start}", testutil.ToFloat64(m.resyncs.WithLabelValues("start")), 1},
		{"resyncs{watcher-restart}", testutil.ToFloat64(m.resyncs.WithLabelValues("watcher-restart")), 2},
		{"watcher restarts", testutil.ToFloat64(m.watcherRestarts), 1},
		{"snapshot keys", testutil.ToFloat64(m.snapshotKeys), 42},
		{"watch events", testutil.ToFloat64(m.watchEvents), 2},
		{"keys", testutil.ToFloat64(m.keys), 7},
		{"updates{new}", testutil.ToFloat64(m.updates[messages.UpdateTypeNew]), 1},
		{"updates{updated}", testutil.ToFloat64(m.updates[messages.UpdateTypeUpdated]), 2},
		{"updates{deleted}", testutil.ToFloat64(m.updates[messages.UpdateTypeDeleted]), 0},
		{"suppressed (a running count, not summed)", float64(m.suppressed.Load()), 5},
		{"lag: event 12, applied 11", float64(m.lag()), 1},
		{"key parse failures", testutil.ToFloat64(m.keyParseFails), 1},
		{"value decode failures", testutil.ToFloat64(m.valueDecodeFail), 1},
		{"sync status wait-for-datastore at start", testutil.ToFloat64(m.status.WithLabelValues("wait-for-datastore")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.snapshotSeconds); n != 1 {
		t.Errorf("snapshot histogram has %d series", n)
	}

	m.EtcdIndex(20) // a poll: etcd is ahead
	if lag := m.lag(); lag != 9 {
		t.Errorf("lag = %d, want 20-11", lag)
	}
	m.WatchEvent(15) // older than the poll: no change
	m.Merged(7, 25, 5)
	if lag := m.lag(); lag != 0 {
		t.Errorf("lag = %d with applied beyond etcd's index, want 0", lag)
	}
	m.ClusterReset()
	m.Merged(0, 0, 5)
	if lag := m.lag(); lag != 0 || testutil.ToFloat64(m.clusterResets) != 1 {
		t.Errorf("after a reset: lag %d, resets %v", lag, testutil.ToFloat64(m.clusterResets))
	}

	m.setStatus(messages.InSync)
	for _, s := range statuses {
		want := 0.0
		if s == messages.InSync {
			want = 1
		}
		if got := testutil.ToFloat64(m.status.WithLabelValues(s.String())); got != want {
			t.Errorf("sync_status{%v} = %v, want %v", s, got, want)
		}
	}
}

// TestMetricsConcurrentObservers calls every Observer method from several
// goroutines while scraping, as the actors and Prometheus do. Run with -race.
func TestMetricsConcurrentObservers(t *testing.T) {
	m := newMetrics()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				idx := uint64(g*1000 + i)
				m.WatchEvent(idx)
				m.EtcdIndex(idx)
				m.Merged(i, idx, uint64(i))
				m.Delivered([]messages.Update{{Type: messages.UpdateTypeNew}})
				m.Resync("start")
			}
		}()
	}
	for range 20 {
		if _, err := m.registry.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got := testutil.ToFloat64(m.updates[messages.UpdateTypeNew]); got != 2000 {
		t.Errorf("updates{new} = %v, want 2000", got)
	}
}
