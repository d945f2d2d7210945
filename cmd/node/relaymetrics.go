package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcdsync/etcdsync/relay"
)

// relayCollector exports a relay server's Stats as Prometheus metrics, read
// once per scrape.
type relayCollector struct {
	rs *relay.Server

	clients, conns, refused, snapshotsBuilt, snapshotsShared, snapshotsSent, resumes *prometheus.Desc
	bytesSent, ended, lag, logEntries, logBytes                                      *prometheus.Desc
}

func newRelayCollector(rs *relay.Server) *relayCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &relayCollector{
		rs:              rs,
		clients:         d("etcdsync_relay_clients", "Relay clients connected now."),
		conns:           d("etcdsync_relay_connections", "Connections the relay holds now, streams and handshakes (at most relay.Config.MaxConns)."),
		refused:         d("etcdsync_relay_requests_refused_total", "Relay requests refused, by reason: too-many-clients, bad-request, or too-many-connections (closed at accept).", "reason"),
		snapshotsBuilt:  d("etcdsync_relay_snapshots_built_total", "Snapshots the relay encoded (one serves every client of a burst)."),
		snapshotsShared: d("etcdsync_relay_snapshots_shared_total", "Times a snapshot built for an earlier client was handed to another."),
		snapshotsSent:   d("etcdsync_relay_snapshots_sent_total", "Snapshots written to relay clients."),
		resumes:         d("etcdsync_relay_resumes_total", "Relay streams that resumed from the log, with no snapshot."),
		bytesSent:       d("etcdsync_relay_bytes_sent_total", "Bytes written to relay clients, after compression."),
		ended:           d("etcdsync_relay_clients_dropped_total", "Relay streams ended, by reason: client-gone, slow (a write timed out), write-error, shutdown.", "reason"),
		lag:             d("etcdsync_relay_client_lag_entries", "Log entries the furthest-behind relay client has still to read."),
		logEntries:      d("etcdsync_relay_log_entries", "Entries in the relay's retained log."),
		logBytes:        d("etcdsync_relay_log_bytes", "Encoded size of the relay's retained log."),
	}
}

// Describe implements prometheus.Collector.
func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.conns, c.refused, c.snapshotsBuilt, c.snapshotsShared, c.snapshotsSent,
		c.resumes, c.bytesSent, c.ended, c.lag, c.logEntries, c.logBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.rs.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.clients, float64(st.Clients))
	counter(c.refused, st.Refused, "too-many-clients")
	counter(c.refused, st.BadRequests, "bad-request")
	gauge(c.conns, float64(st.Conns))
	counter(c.refused, st.ConnsRefused, "too-many-connections")
	counter(c.snapshotsBuilt, st.SnapshotsBuilt)
	counter(c.snapshotsShared, st.SnapshotsShared)
	counter(c.snapshotsSent, st.SnapshotsSent)
	counter(c.resumes, st.Resumes)
	counter(c.bytesSent, st.BytesSent)
	for _, reason := range []string{relay.EndClientGone, relay.EndSlow, relay.EndWriteError, relay.EndShutdown, relay.EndShed} {
		counter(c.ended, st.Ended[reason], reason)
	}
	gauge(c.lag, float64(st.MaxLag))
	gauge(c.logEntries, float64(st.LogEntries))
	gauge(c.logBytes, float64(st.LogBytes))
}

var _ prometheus.Collector = (*relayCollector)(nil)
