package supervisor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/model/calicov1"
	"github.com/etcdsync/etcdsync/supervisor"
)

// printer is a host that keeps the map of what the syncer told it. It
// prints each status, the map when the syncer reports InSync (the order of
// a snapshot's keys is etcd's, which varies), and each update after that.
type printer struct {
	keys    map[string]string
	inSync  bool
	reached chan struct{} // closed at the first InSync
	updates chan messages.Update
}

func newPrinter() *printer {
	return &printer{keys: map[string]string{}, reached: make(chan struct{}), updates: make(chan messages.Update, 16)}
}

func (p *printer) OnStatusUpdated(s messages.SyncStatus) {
	fmt.Println("status", s)
	if s == messages.InSync && !p.inSync {
		p.inSync = true
		fmt.Println("keys", p.keys)
		close(p.reached)
	}
}

func (p *printer) OnUpdates(us []messages.Update) {
	for _, u := range us {
		if u.Type == messages.UpdateTypeDeleted {
			delete(p.keys, u.Key)
		} else {
			p.keys[u.Key] = u.Value
		}
		if p.inSync {
			fmt.Println(u.Type, u.Key, u.Value, "at", u.Revision)
			p.updates <- u
		}
	}
}

// An embedding host implements messages.Callbacks and starts a syncer on
// its own actor system. Here etcd is the simulated one of e2e/etcdsim, so
// that the example runs anywhere; a real host sets Endpoints instead of
// KeysAPI.
func ExampleStart() {
	sim := etcdsim.New()
	sim.Load(map[string]string{
		"/calico/v1/Ready":                    "true",
		"/calico/v1/config/LogSeverityScreen": "info",
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := supervisor.NewSystem(logger)

	cfg := supervisor.DefaultConfig()
	cfg.KeysAPI = sim // or cfg.Endpoints = []string{"http://127.0.0.1:2379"}
	cfg.Prefix = "/calico/v1"
	cfg.Logger = logger
	host := newPrinter()
	s, err := supervisor.Start(system, cfg, host)
	if err != nil {
		fmt.Println(err) // a *supervisor.ConfigError names the field
		return
	}
	<-host.reached

	// The watch delivers what changes after the snapshot.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sim.Set(ctx, "/calico/v1/config/LogSeverityScreen", "debug", nil); err != nil {
		fmt.Println(err)
		return
	}
	<-host.updates

	if err := s.Stop(ctx); err != nil {
		fmt.Println("stop:", err)
	}
	// Output:
	// status wait-for-datastore
	// status resync
	// status in-sync
	// keys map[/calico/v1/Ready:true /calico/v1/config/LogSeverityScreen:info]
	// updated /calico/v1/config/LogSeverityScreen debug at 6
}

// A host that is itself an actor sets Config.HostPID: it receives each
// messages.Deliver in its mailbox and answers messages.Delivered once it
// has applied it. Until it answers, the syncer sends it nothing more (later
// updates wait, coalesced per key); one it never answers is sent again.
func ExampleConfig_hostPID() {
	sim := etcdsim.New()
	sim.Load(map[string]string{"/calico/v1/config/LogSeverityScreen": "info"})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := supervisor.NewSystem(logger)

	inSync := make(chan struct{})
	keys := map[string]string{} // the host's view: touched only by its actor
	host := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		d, ok := c.Message().(messages.Deliver)
		if !ok {
			return
		}
		for _, u := range d.Updates {
			if u.Type == messages.UpdateTypeDeleted {
				delete(keys, u.Key)
			} else {
				keys[u.Key] = u.Value
			}
		}
		c.Respond(messages.Delivered{})
		if d.Status == messages.InSync {
			fmt.Println("in sync with", keys)
			close(inSync)
		}
	}))

	cfg := supervisor.DefaultConfig()
	cfg.KeysAPI = sim
	cfg.Logger = logger
	cfg.HostPID = host
	s, err := supervisor.Start(system, cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-inSync
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		fmt.Println("stop:", err)
	}
	// Output:
	// in sync with map[/calico/v1/config/LogSeverityScreen:info]
}

// With Config.Decoder set to the Calico v1 model, every update carries the
// typed key and value (a value that does not parse has a nil DecodedValue,
// and a key outside the model goes to ParseFailed, never to OnUpdates).
func ExampleConfig_calicoDecoder() {
	sim := etcdsim.New()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := supervisor.NewSystem(logger)

	cfg := supervisor.DefaultConfig()
	cfg.KeysAPI = sim
	cfg.Logger = logger
	cfg.Decoder = calicov1.Decoder{}
	host := newPrinter()
	s, err := supervisor.Start(system, cfg, host)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-host.reached

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sim.Set(ctx, "/calico/v1/host/h1/bird_ip", "192.0.2.1", nil); err != nil {
		fmt.Println(err)
		return
	}
	u := <-host.updates
	fmt.Printf("%#v %v (%T)\n", u.DecodedKey, u.DecodedValue, u.DecodedValue)

	if err := s.Stop(ctx); err != nil {
		fmt.Println("stop:", err)
	}
	// Output:
	// status wait-for-datastore
	// status resync
	// status in-sync
	// keys map[]
	// new /calico/v1/host/h1/bird_ip 192.0.2.1 at 4
	// calicov1.HostIPKey{Hostname:"h1"} 192.0.2.1 (net.IP)
}
