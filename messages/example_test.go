package messages_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// replicas decodes keys /apps/<name>/replicas into appKey and their values
// into ints.
type replicas struct{}

type appKey struct{ Name string }

func (replicas) DecodeKey(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "/apps/")
	if !ok {
		return nil, false
	}
	name, ok = strings.CutSuffix(name, "/replicas")
	return appKey{name}, ok && name != "" && !strings.Contains(name, "/")
}

func (replicas) DecodeValue(_ any, value string) (any, error) {
	return strconv.Atoi(value)
}

// host implements messages.Callbacks and, to hear about keys the decoder
// refused, messages.ParseFailedCallback. It prints what it got, sorted,
// when the syncer reports InSync: a snapshot comes in etcd's order, which
// varies.
type host struct {
	lines []string
	done  chan struct{}
}

func (h *host) OnStatusUpdated(s messages.SyncStatus) {
	if s == messages.InSync {
		slices.Sort(h.lines)
		fmt.Println(strings.Join(h.lines, "\n"))
		close(h.done)
	}
}

func (h *host) OnUpdates(us []messages.Update) {
	for _, u := range us {
		h.lines = append(h.lines, fmt.Sprintf("%s %v = %v", u.Type, u.DecodedKey, u.DecodedValue))
	}
}

func (h *host) ParseFailed(key, value string) {
	h.lines = append(h.lines, fmt.Sprintf("not an app key: %s (%q)", key, value))
}

// A host's Decoder gives each Update a typed key and value. A value that
// does not decode is delivered with a nil DecodedValue; a key the decoder
// refuses goes to ParseFailed.
func ExampleDecoder() {
	sim := etcdsim.New()
	sim.Load(map[string]string{
		"/apps/web/replicas": "3",
		"/apps/db/replicas":  "three",
		"/apps/README":       "hello",
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := supervisor.DefaultConfig()
	cfg.KeysAPI = sim
	cfg.Prefix = "/apps"
	cfg.Logger = logger
	cfg.Decoder = replicas{}
	h := &host{done: make(chan struct{})}
	s, err := supervisor.Start(supervisor.NewSystem(logger), cfg, h)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		fmt.Println("stop:", err)
	}
	// Output:
	// new {db} = <nil>
	// new {web} = 3
	// not an app key: /apps/README ("hello")
}
