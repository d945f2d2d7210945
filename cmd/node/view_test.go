package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"testing"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/model/calicov1"
)

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestViewAppliesAndWritesLines(t *testing.T) {
	var out bytes.Buffer
	var told []messages.SyncStatus
	v := newView(&out, discardLogger, func(s messages.SyncStatus) { told = append(told, s) })
	if s, keys, _ := v.state(); s != messages.WaitForDatastore || len(keys) != 0 {
		t.Fatalf("new view: %v %v", s, keys)
	}
	v.OnStatusUpdated(messages.Resync)
	v.OnUpdates([]messages.Update{
		{Type: messages.UpdateTypeNew, Key: "/p/a", Value: "1", Revision: 5},
		{Type: messages.UpdateTypeNew, Key: "/p/b", Value: "2", Revision: 5},
	})
	v.OnStatusUpdated(messages.InSync)
	v.OnUpdates([]messages.Update{
		{Type: messages.UpdateTypeUpdated, Key: "/p/a", Value: "3", Revision: 6},
		{Type: messages.UpdateTypeDeleted, Key: "/p/b", Revision: 7},
	})
	want := `{"status":"resync"}
{"type":"new","key":"/p/a","value":"1","revision":5}
{"type":"new","key":"/p/b","value":"2","revision":5}
{"status":"in-sync"}
{"type":"updated","key":"/p/a","value":"3","revision":6}
{"type":"deleted","key":"/p/b","revision":7}
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	s, keys, _ := v.state()
	if s != messages.InSync || !maps.Equal(keys, map[string]string{"/p/a": "3"}) {
		t.Errorf("state() = %v %v", s, keys)
	}
	if len(told) != 2 || told[0] != messages.Resync || told[1] != messages.InSync {
		t.Errorf("onStatus heard %v", told)
	}
	keys["/p/z"] = "mutated"
	if _, k, _ := v.state(); len(k) != 1 {
		t.Errorf("state() shares its map with the view: %v", k)
	}
}

func TestViewOutputNone(t *testing.T) {
	v := newView(nil, discardLogger, nil)
	v.OnUpdates([]messages.Update{{Type: messages.UpdateTypeNew, Key: "/p/a", Value: "1", Revision: 5}})
	v.OnStatusUpdated(messages.InSync)
	if s, keys, _ := v.state(); s != messages.InSync || keys["/p/a"] != "1" {
		t.Errorf("state() = %v %v", s, keys)
	}
}

// failingWriter fails every write.
type failingWriter struct{ writes int }

func (w *failingWriter) Write([]byte) (int, error) { w.writes++; return 0, errors.New("broken pipe") }

func TestViewStopsWritingAfterAnError(t *testing.T) {
	w := &failingWriter{}
	v := newView(w, discardLogger, nil)
	v.OnStatusUpdated(messages.Resync)
	v.OnUpdates([]messages.Update{{Type: messages.UpdateTypeNew, Key: "/p/a", Value: "1", Revision: 5}})
	v.OnStatusUpdated(messages.InSync)
	if w.writes != 1 {
		t.Errorf("%d writes after the first failed, want none", w.writes-1)
	}
	if s, keys, _ := v.state(); s != messages.InSync || keys["/p/a"] != "1" {
		t.Errorf("the view must keep working without output: %v %v", s, keys)
	}
}

// TestViewStateIsConsistent reads the view while a host-like goroutine
// applies batches that each move every key to the same new value together
// with a status: a state() must never mix two batches. Run with -race.
func TestViewStateIsConsistent(t *testing.T) {
	v := newView(nil, discardLogger, nil)
	keys := []string{"/p/a", "/p/b", "/p/c"}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			var batch []messages.Update
			for _, k := range keys {
				typ := messages.UpdateTypeUpdated
				if i == 0 {
					typ = messages.UpdateTypeNew
				}
				batch = append(batch, messages.Update{Type: typ, Key: k, Value: string(rune('a' + i%26)), Revision: uint64(i + 1)})
			}
			v.OnUpdates(batch)
			v.OnStatusUpdated(messages.SyncStatus(1 + i%3))
		}
	}()
	for range 2000 {
		_, m, _ := v.state()
		if len(m) != 0 && (m["/p/a"] != m["/p/b"] || m["/p/b"] != m["/p/c"]) {
			t.Fatalf("state() mixes batches: %v", m)
		}
	}
	wg.Wait()
}

func TestViewKeepsTypedEntriesWithAModel(t *testing.T) {
	v := newView(nil, discardLogger, nil)
	key := calicov1.KeyFromDefaultPath("/calico/v1/host/h1/bird_ip")
	v.OnUpdates([]messages.Update{{Key: "/calico/v1/host/h1/bird_ip", Value: `"10.0.0.1"`, Revision: 3,
		Type: messages.UpdateTypeNew, DecodedKey: key, DecodedValue: net.ParseIP("10.0.0.1")}})
	_, keys, typed := v.state()
	if keys["/calico/v1/host/h1/bird_ip"] != `"10.0.0.1"` {
		t.Fatalf("raw keys: %v", keys)
	}
	got, err := json.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"/calico/v1/host/h1/bird_ip":{"kind":"HostIPKey","key":{"Hostname":"h1"},"value":"10.0.0.1"}}`
	if string(got) != want {
		t.Fatalf("typed = %s, want %s", got, want)
	}
	v.OnUpdates([]messages.Update{{Key: "/calico/v1/host/h1/bird_ip", Revision: 4, Type: messages.UpdateTypeDeleted, DecodedKey: key}})
	if _, _, typed := v.state(); len(typed) != 0 {
		t.Fatalf("a deleted key stays typed: %v", typed)
	}
}
