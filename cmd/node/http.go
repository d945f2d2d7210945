package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/etcdsync/etcdsync/messages"
)

// stateReader is what the HTTP handlers read the host view from.
type stateReader interface {
	Status() messages.SyncStatus
	state() (messages.SyncStatus, map[string]string, map[string]typedEntry)
}

// stateBody is the body of GET /state.
type stateBody struct {
	Status string            `json:"status"`
	Keys   map[string]string `json:"keys"`
	// Typed, with --model calicov1: each key's decoded key and value.
	Typed map[string]typedEntry `json:"typed,omitempty"`
}

// newHandler returns the node's HTTP API:
//
//	GET /healthz  200 "ok" while the syncer runs (alive reports true), else 503
//	GET /readyz   200 "in-sync" while the view is in sync, else 503 and the status
//	GET /state    {"status":"...","keys":{"<key>":"<value>",...}}, taken together;
//	              with --model calicov1 also "typed":{"<key>":{"kind","key","value"}}
//	GET /metrics  Prometheus text format, from registry
func newHandler(v stateReader, alive func() bool, registry *prometheus.Registry, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(alive))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s := v.Status()
		if s != messages.InSync || !alive() {
			http.Error(w, s.String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, s)
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		s, keys, typed := v.state()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // values as etcd holds them, like the JSON lines
		if err := enc.Encode(stateBody{Status: s.String(), Keys: keys, Typed: typed}); err != nil {
			// The client went away mid-body; the status line is sent.
			logger.Debug("writing /state failed", "err", err)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	return mux
}

// healthz answers 200 "ok" while the syncer runs (alive reports true),
// else 503.
func healthz(alive func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if !alive() {
			http.Error(w, "syncer stopped", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// newServer returns the HTTP server for handler, with timeouts so that a
// stuck client holds no goroutine forever.
func newServer(handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
