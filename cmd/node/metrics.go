package main

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// metrics is the node's supervisor.Observer: it turns what the actors report
// into Prometheus metrics on its own registry. Its methods are called
// concurrently from actor goroutines; each is a few atomic operations.
type metrics struct {
	registry *prometheus.Registry

	status          *prometheus.GaugeVec
	resyncs         *prometheus.CounterVec
	watcherRestarts prometheus.Counter
	clusterResets   prometheus.Counter
	snapshotSeconds prometheus.Histogram
	snapshotKeys    prometheus.Gauge
	watchEvents     prometheus.Counter
	updates         [messages.UpdateTypeDeleted + 1]prometheus.Counter // by UpdateType
	keys            prometheus.Gauge
	keyParseFails   prometheus.Counter
	valueDecodeFail prometheus.Counter
	relayStreams    *prometheus.CounterVec // a leaf's, by how they began
	relayDrops      prometheus.Counter

	// Read by the Func metrics at scrape time.
	suppressed atomic.Uint64 // the merger's running count
	applied    atomic.Uint64 // highest etcd index the merger applied
	etcdIndex  atomic.Uint64 // etcd's index as last seen
}

// statuses are the values of etcdsync_sync_status's "status" label.
var statuses = []messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	f := factory{m.registry}
	m.status = f.gaugeVec("etcdsync_sync_status",
		"1 for the sync status the host was last told of, 0 for the others.", "status")
	m.resyncs = f.counterVec("etcdsync_resyncs_total",
		"Snapshots requested, by cause: start (first watch), watcher-restart (a watcher that lost sync or failed).", "cause")
	for _, cause := range []string{"start", "watcher-restart"} { // actors/watcher.go's; others appear when seen
		m.resyncs.WithLabelValues(cause) // exported at 0 until the first
	}
	m.watcherRestarts = f.counter("etcdsync_watcher_restarts_total",
		"Failed watchers restarted by the supervisor (after a backoff).")
	m.clusterResets = f.counter("etcdsync_cluster_resets_total",
		"Times etcd was found rebuilt (new cluster ID) or restored (index gone back).")
	m.snapshotSeconds = f.histogram("etcdsync_snapshot_duration_seconds",
		"Time from a snapshot request to the snapshot merged.", prometheus.ExponentialBuckets(0.005, 2, 15))
	m.snapshotKeys = f.gauge("etcdsync_snapshot_keys", "Keys in the latest snapshot merged.")
	m.watchEvents = f.counter("etcdsync_watch_events_total", "Events received on the etcd watch.")
	updates := f.counterVec("etcdsync_updates_total", "Updates delivered to the host, by type: new, updated, deleted.", "type")
	for _, t := range []messages.UpdateType{messages.UpdateTypeNew, messages.UpdateTypeUpdated, messages.UpdateTypeDeleted} {
		m.updates[t] = updates.WithLabelValues(t.String()) // resolved once: Delivered is hot
	}
	m.keys = f.gauge("etcdsync_keys", "Keys the host holds (as the merger counts them).")
	m.keyParseFails = f.counter("etcdsync_parse_failures_total",
		"Keys the --model decoder did not accept (logged, left out of the output and /state).")
	m.valueDecodeFail = f.counter("etcdsync_value_decode_failures_total",
		"Values the --model decoder could not decode (their keys are shown with a null value).")
	m.relayStreams = f.counterVec("etcdsync_relay_client_streams_total",
		"A leaf's relay streams accepted, by start: resume (the missing deltas only) or snapshot.", "start")
	for _, start := range []string{"resume", "snapshot"} {
		m.relayStreams.WithLabelValues(start)
	}
	m.relayDrops = f.counter("etcdsync_relay_client_reconnects_total",
		"A leaf's relay streams that failed or were refused, each followed by a reconnect (to the next relay).")
	f.counterFunc("etcdsync_updates_suppressed_total",
		"Values not delivered because a newer one (or a deletion) had been seen.",
		func() float64 { return float64(m.suppressed.Load()) })
	f.gaugeFunc("etcdsync_applied_index", "Highest etcd index the merger has applied.",
		func() float64 { return float64(m.applied.Load()) })
	f.gaugeFunc("etcdsync_etcd_index",
		"etcd's index as last seen (watch start, cluster-ID poll, newest watch event).",
		func() float64 { return float64(m.etcdIndex.Load()) })
	f.gaugeFunc("etcdsync_watch_lag_index",
		"etcdsync_etcd_index minus etcdsync_applied_index, or 0 if below.",
		func() float64 { return float64(m.lag()) })
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.setStatus(messages.WaitForDatastore)
	return m
}

// setStatus records the status the host was told of; the view calls it.
func (m *metrics) setStatus(s messages.SyncStatus) {
	for _, st := range statuses {
		v := 0.0
		if st == s {
			v = 1
		}
		m.status.WithLabelValues(st.String()).Set(v)
	}
}

func (m *metrics) lag() uint64 {
	etcd, applied := m.etcdIndex.Load(), m.applied.Load()
	if etcd <= applied {
		return 0
	}
	return etcd - applied
}

// Resync implements supervisor.Observer.
func (m *metrics) Resync(cause string) { m.resyncs.WithLabelValues(cause).Inc() }

// WatcherRestarted implements supervisor.Observer.
func (m *metrics) WatcherRestarted() { m.watcherRestarts.Inc() }

// ClusterReset implements supervisor.Observer. The new cluster's index space
// starts over: forget the old one's until it is seen again.
func (m *metrics) ClusterReset() {
	m.clusterResets.Inc()
	m.etcdIndex.Store(0)
}

// SnapshotRead implements supervisor.Observer.
func (m *metrics) SnapshotRead(d time.Duration, keys int) {
	m.snapshotSeconds.Observe(d.Seconds())
	m.snapshotKeys.Set(float64(keys))
}

// WatchEvent implements supervisor.Observer. An event's index is a lower bound
// of etcd's current one.
func (m *metrics) WatchEvent(index uint64) {
	m.watchEvents.Inc()
	for {
		cur := m.etcdIndex.Load()
		if index <= cur || m.etcdIndex.CompareAndSwap(cur, index) {
			return
		}
	}
}

// Delivered implements supervisor.Observer.
func (m *metrics) Delivered(updates []messages.Update) {
	var n [len(m.updates)]int
	for _, u := range updates {
		if int(u.Type) < len(n) {
			n[u.Type]++
		}
	}
	for t, c := range m.updates {
		if c != nil && n[t] > 0 {
			c.Add(float64(n[t]))
		}
	}
}

// Merged implements supervisor.Observer. suppressed is the merger's running
// count; it is exposed as is through a CounterFunc.
func (m *metrics) Merged(keys int, applied, suppressed uint64) {
	m.keys.Set(float64(keys))
	m.applied.Store(applied)
	m.suppressed.Store(suppressed)
}

// EtcdIndex implements supervisor.Observer.
func (m *metrics) EtcdIndex(index uint64) { m.etcdIndex.Store(index) }

// KeyParseFailed implements supervisor.Observer.
func (m *metrics) KeyParseFailed() { m.keyParseFails.Inc() }

// ValueDecodeFailed implements supervisor.Observer.
func (m *metrics) ValueDecodeFailed() { m.valueDecodeFail.Inc() }

var _ supervisor.Observer = (*metrics)(nil)

// factory registers each metric it makes.
type factory struct{ r *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help, label string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	f.r.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.r.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help, label string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
	f.r.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}

func (f factory) counterFunc(name, help string, fn func() float64) {
	f.r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

func (f factory) gaugeFunc(name, help string, fn func() float64) {
	f.r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// RelayStream implements actors.RelayObserver, for a leaf.
func (m *metrics) RelayStream(_ string, resumed bool) {
	start := "snapshot"
	if resumed {
		start = "resume"
	}
	m.relayStreams.WithLabelValues(start).Inc()
}

// RelayDisconnected implements actors.RelayObserver, for a leaf.
func (m *metrics) RelayDisconnected(string, error) { m.relayDrops.Inc() }

var _ supervisor.RelayObserver = (*metrics)(nil)
