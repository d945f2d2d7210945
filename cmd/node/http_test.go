package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/etcdsync/etcdsync/messages"
)

// get serves one GET of path and returns the status code and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func newTestHandler() (*view, *metrics, *atomic.Bool, http.Handler) {
	m := newMetrics()
	v := newView(nil, discardLogger, m.setStatus)
	var alive atomic.Bool
	alive.Store(true)
	return v, m, &alive, newHandler(v, alive.Load, m.registry, discardLogger)
}

func TestStateHandler(t *testing.T) {
	v, _, _, h := newTestHandler()
	if code, body := get(t, h, "/state"); code != http.StatusOK || body != `{"status":"wait-for-datastore","keys":{}}`+"\n" {
		t.Errorf("empty /state = %d %q", code, body)
	}
	v.OnUpdates([]messages.Update{
		{Type: messages.UpdateTypeNew, Key: "/calico/v1/b", Value: `{"x":"<1>"}`, Revision: 4},
		{Type: messages.UpdateTypeNew, Key: "/calico/v1/a", Value: "hello", Revision: 5},
		{Type: messages.UpdateTypeNew, Key: "/calico/v1/gone", Value: "x", Revision: 6},
		{Type: messages.UpdateTypeDeleted, Key: "/calico/v1/gone", Revision: 7},
	})
	v.OnStatusUpdated(messages.InSync)
	code, body := get(t, h, "/state")
	want := `{"status":"in-sync","keys":{"/calico/v1/a":"hello","/calico/v1/b":"{\"x\":\"<1>\"}"}}` + "\n"
	if code != http.StatusOK || body != want {
		t.Errorf("/state = %d\n got %s\nwant %s", code, body, want)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/state", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("/state Content-Type %q", ct)
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	v, _, alive, h := newTestHandler()
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "wait-for-datastore" {
		t.Errorf("/readyz before in-sync = %d %q", code, body)
	}
	v.OnStatusUpdated(messages.Resync)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "resync" {
		t.Errorf("/readyz in resync = %d %q", code, body)
	}
	v.OnStatusUpdated(messages.InSync)
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || strings.TrimSpace(body) != "in-sync" {
		t.Errorf("/readyz in sync = %d %q", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while alive = %d", code)
	}
	alive.Store(false)
	if code, _ := get(t, h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after the syncer stopped = %d", code)
	}
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the syncer stopped = %d", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/state", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /state = %d", rec.Code)
	}
}

func TestMetricsHandler(t *testing.T) {
	v, m, _, h := newTestHandler()
	v.OnStatusUpdated(messages.InSync)
	m.Delivered([]messages.Update{{Type: messages.UpdateTypeNew}, {Type: messages.UpdateTypeNew}, {Type: messages.UpdateTypeDeleted}})
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range []string{
		`etcdsync_sync_status{status="in-sync"} 1`,
		`etcdsync_sync_status{status="resync"} 0`,
		`etcdsync_updates_total{type="new"} 2`,
		`etcdsync_updates_total{type="deleted"} 1`,
		`etcdsync_updates_total{type="updated"} 0`,
		"# TYPE etcdsync_snapshot_duration_seconds histogram",
		"# TYPE etcdsync_updates_suppressed_total counter",
		"# TYPE etcdsync_watch_lag_index gauge",
		"etcdsync_resyncs_total", "etcdsync_watcher_restarts_total", "etcdsync_cluster_resets_total",
		"etcdsync_snapshot_keys", "etcdsync_watch_events_total", "etcdsync_keys",
		"go_goroutines",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
