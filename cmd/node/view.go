package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/etcdsync/etcdsync/messages"
)

// view is the node's host: the messages.Callbacks that applies every update
// to a map (the materialized view /state serves), remembers the status, and
// writes both as JSON lines to the output.
//
// The syncer calls OnUpdates and OnStatusUpdated one at a time; state may
// be called concurrently with them from any goroutine.
type view struct {
	mu     sync.Mutex // guards status, keys and typed: /state reads them at once
	status messages.SyncStatus
	keys   map[string]string
	typed  map[string]typedEntry // with --model calicov1: the decoded keys and values

	// Touched only by the callbacks, which never run concurrently.
	out      *bufio.Writer // nil: --output none
	line     []byte        // reused encoding buffer
	logger   *slog.Logger
	onStatus func(messages.SyncStatus) // the metrics' hook; may be nil
}

// newView returns an empty view in status WaitForDatastore writing JSON
// lines to out (nil: no output).
func newView(out io.Writer, logger *slog.Logger, onStatus func(messages.SyncStatus)) *view {
	v := &view{status: messages.WaitForDatastore, keys: map[string]string{}, logger: logger, onStatus: onStatus}
	if out != nil {
		v.out = bufio.NewWriterSize(out, 64<<10)
	}
	return v
}

// OnUpdates implements messages.Callbacks.
func (v *view) OnUpdates(updates []messages.Update) {
	v.mu.Lock()
	for _, u := range updates {
		if u.Type == messages.UpdateTypeDeleted {
			delete(v.keys, u.Key)
			delete(v.typed, u.Key)
		} else {
			v.keys[u.Key] = u.Value
			if u.DecodedKey != nil {
				if v.typed == nil {
					v.typed = map[string]typedEntry{}
				}
				v.typed[u.Key] = typedOf(u)
			}
		}
	}
	v.mu.Unlock()
	// Written outside the lock: a slow reader of stdout must not stall
	// /state. The callbacks are serialised, so lines keep their order.
	if v.out == nil {
		return
	}
	for _, u := range updates {
		v.line = appendUpdate(v.line[:0], u)
		_, _ = v.out.Write(v.line) // a write error sticks; flush reports it
	}
	v.flush()
}

// OnStatusUpdated implements messages.Callbacks.
func (v *view) OnStatusUpdated(s messages.SyncStatus) {
	v.mu.Lock()
	v.status = s
	v.mu.Unlock()
	if v.onStatus != nil {
		v.onStatus(s)
	}
	if v.out == nil {
		return
	}
	v.line = appendStatus(v.line[:0], s)
	_, _ = v.out.Write(v.line)
	v.flush()
}

// flush writes the batch out; on the first error it logs once and stops
// writing (the view and the HTTP server keep working).
func (v *view) flush() {
	if err := v.out.Flush(); err != nil {
		v.logger.Error("writing updates to stdout failed; no more output", "err", err)
		v.out = nil
	}
}

// ParseFailed implements messages.ParseFailedCallback: with --model, a key
// the model does not know is logged and left out (the metrics count it).
func (v *view) ParseFailed(key, value string) {
	v.logger.Debug("key is not in the model; left out", "key", key)
}

// state returns the status and copies of the keys and of the typed
// entries (nil without a model), taken together: they are the view the
// status describes.
func (v *view) state() (messages.SyncStatus, map[string]string, map[string]typedEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.status, maps.Clone(v.keys), maps.Clone(v.typed)
}

// Status returns the last status the syncer reported.
func (v *view) Status() messages.SyncStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.status
}

// typedEntry is a key and value as the --model decoder read them.
type typedEntry struct {
	Kind  string `json:"kind"`            // the key's type, e.g. "WorkloadEndpointKey"
	Key   any    `json:"key"`             // the key's fields
	Value any    `json:"value,omitempty"` // the decoded value; absent if it did not decode
}

func typedOf(u messages.Update) typedEntry {
	kind := fmt.Sprintf("%T", u.DecodedKey)
	if i := strings.LastIndexByte(kind, '.'); i >= 0 {
		kind = kind[i+1:]
	}
	return typedEntry{Kind: kind, Key: u.DecodedKey, Value: u.DecodedValue}
}

var (
	_ messages.Callbacks           = (*view)(nil)
	_ messages.ParseFailedCallback = (*view)(nil)
)
