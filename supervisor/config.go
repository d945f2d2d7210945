package supervisor

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"k8s.io/utils/clock"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/internal/etcdv2"
	"github.com/etcdsync/etcdsync/internal/etcdv3"
	"github.com/etcdsync/etcdsync/internal/keyspace"
	"github.com/etcdsync/etcdsync/internal/replay"
	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// ResetPolicy says what the syncer does when etcd turns out to be another
// cluster (its cluster ID changed) or to have gone back in time (its index
// fell below one already applied).
type ResetPolicy uint8

const (
	// ResyncOnReset (the default) rebuilds the actors against the new
	// datastore with a clean index space, keeping the host's key set: the
	// next snapshot sends every key it holds as updated (or new) and every
	// key it lacks as deleted.
	ResyncOnReset ResetPolicy = iota
	// StopOnReset stops the syncer and reports the error through Err and
	// Done; the host decides what to do.
	StopOnReset
)

func (p ResetPolicy) String() string {
	switch p {
	case ResyncOnReset:
		return "resync"
	case StopOnReset:
		return "stop"
	}
	return fmt.Sprintf("ResetPolicy(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler ("resync", "stop").
func (p ResetPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: "resync" or "stop".
func (p *ResetPolicy) UnmarshalText(b []byte) error {
	return unmarshalEnum(p, b, "resync nor stop", ResyncOnReset, StopOnReset)
}

// WatchMode says how the watcher watches etcd.
type WatchMode uint8

const (
	// WatchLongPoll (the default) is client/v2's watch: one request per
	// event.
	WatchLongPoll WatchMode = iota
	// WatchStream is etcd v2's streaming watch: one connection carries
	// event after event once the watch has caught up with etcd's head. It
	// keeps up with higher write rates. It needs Endpoints: a KeysAPI
	// cannot stream.
	WatchStream
)

func (m WatchMode) String() string {
	switch m {
	case WatchLongPoll:
		return "long-poll"
	case WatchStream:
		return "stream"
	}
	return fmt.Sprintf("WatchMode(%d)", uint8(m))
}

// MarshalText implements encoding.TextMarshaler ("long-poll", "stream").
func (m WatchMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: "long-poll" or "stream".
func (m *WatchMode) UnmarshalText(b []byte) error {
	return unmarshalEnum(m, b, "long-poll nor stream", WatchLongPoll, WatchStream)
}

// unmarshalEnum sets *dst to the value of values whose String is text, or
// says that text is neither of them (what names them).
func unmarshalEnum[T fmt.Stringer](dst *T, text []byte, what string, values ...T) error {
	for _, v := range values {
		if v.String() == string(text) {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("%q is neither %s", text, what)
}

// API says which of etcd's APIs the syncer reads Endpoints through.
type API uint8

const (
	// APIv2 (the default) is etcd's v2 keys API, which etcd 3.5 serves
	// with --enable-v2 and 3.6 removed.
	APIv2 API = iota
	// APIv3 is etcd's v3 API, served by every etcd 3.x. The prefix still
	// names a directory: it is the range of keys that start with Prefix+"/".
	// An update's revision is the key's mod_revision; a deletion's, the
	// deleting revision.
	APIv3
)

func (a API) String() string {
	switch a {
	case APIv2:
		return "v2"
	case APIv3:
		return "v3"
	}
	return fmt.Sprintf("API(%d)", uint8(a))
}

// MarshalText implements encoding.TextMarshaler ("v2", "v3").
func (a API) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: "v2" or "v3".
func (a *API) UnmarshalText(b []byte) error {
	return unmarshalEnum(a, b, "v2 nor v3", APIv2, APIv3)
}

// Config configures a syncer. The zero value of every field but the etcd
// connection (Endpoints or KeysAPI) has a documented default. A Config must
// not be modified after Start.
type Config struct {
	// Endpoints are etcd client URLs, e.g. "http://127.0.0.1:2379".
	// Ignored when KeysAPI is set.
	Endpoints []string
	// API is the etcd API that Endpoints are read through; default APIv2.
	// With APIv3, TLS, Username and Password apply; KeysAPI, Transport and
	// WatchMode do not (a v3 watch is always a stream).
	API API
	// TLS is the TLS configuration for https Endpoints (CA, client
	// certificate), used by the syncer's own transport; default none.
	TLS *tls.Config
	// Transport, when set, carries requests to Endpoints instead of the
	// syncer's own transport (which Stop closes every connection of); TLS
	// is then the Transport's business.
	Transport client.CancelableTransport
	// Username and Password are etcd v2 basic-auth credentials.
	Username, Password string
	// KeysAPI, when set, is used instead of a client built from Endpoints
	// (e2e/etcdsim's simulated etcd, or a client the host built).
	KeysAPI KeysAPI
	// Relays, when set, are relay URLs (http(s)://host:port of a
	// relay server, such as a node's --relay-listen) to sync
	// from instead of etcd; exclusive with Endpoints and KeysAPI. The host
	// gets the same contract. The syncer starts at a random relay, moves to
	// the next when a stream fails, and resumes from its position. TLS,
	// Transport and the Backoff apply to them as to etcd.
	Relays []string
	// RelayReadTimeout is how long a relay stream may stay silent before
	// the syncer drops it and moves to the next relay; default 30 s (a
	// relay pings every 10 s).
	RelayReadTimeout time.Duration

	// WatchMode is how the watcher watches; default WatchLongPoll.
	WatchMode WatchMode

	// Prefix is the key prefix to sync; default "/calico/v1".
	Prefix string
	// Logger receives the syncer's logs; default slog.Default().
	Logger *slog.Logger

	// OnClusterReset is the policy for a rebuilt or restored etcd.
	OnClusterReset ResetPolicy
	// ClusterIDPollInterval is the mean interval of the cluster-ID poll
	// (±10 % jitter); default 10 s.
	ClusterIDPollInterval time.Duration
	// StaleSnapshotTimeout is how long snapshot reads may stay below the
	// required index, with the cluster ID unchanged, before etcd is
	// considered restored from a backup; default 30 s.
	StaleSnapshotTimeout time.Duration
	// StaleReadRetry is the pause before re-reading a snapshot that came
	// back below the required index (a lagging follower); default 100 ms.
	StaleReadRetry time.Duration
	// WatchErrorLimit is how many transport errors in a row make the
	// watcher give up its position; default 5.
	WatchErrorLimit int
	// WatchStallTimeout is how long the watch may stay silent before the
	// watcher asks etcd, with a quorum read, whether it is behind: etcd
	// drops a stream that falls behind without a word, and a member cut
	// off from its quorum goes silent. If etcd moved on meanwhile, the
	// watch asks again from its position (and resyncs only if etcd's
	// history no longer holds it). Default 5 s; each check costs a quorum
	// read and a new watch request, so a quiet prefix costs about two
	// requests per WatchStallTimeout.
	WatchStallTimeout time.Duration
	// RequestTimeout is how long an etcd member may take to start answering
	// a request that does not wait for an event before the next member is
	// tried; default 10 s. It is what moves the syncer off a member that
	// was frozen or black-holed.
	RequestTimeout time.Duration
	// MaxDeliveryAttempts is how many times one batch may make a host
	// callback panic before the syncer stops with ErrPoisonBatch; default 3.
	MaxDeliveryAttempts int
	// SnapshotBatchSize is the most keys one snapshot batch carries to the
	// merger; default 1000.
	SnapshotBatchSize int
	// CoalesceAfter is how many updates may wait for a busy host, as they
	// came, before they are coalesced to one per key; default 4096. Lower
	// it to bound memory tighter at some CPU cost.
	CoalesceAfter int
	// Backoff bounds the watcher's restart delays and the retries of
	// transport errors; zero fields take the defaults (0.8 s doubling
	// to 30 s, reset after 2 min).
	Backoff BackoffConfig

	// Decoder, when set, turns keys and values into typed ones before they
	// are delivered (see messages.Decoder); default none: raw strings.
	Decoder messages.Decoder
	// HostPID, when set, receives every messages.Deliver instead of the
	// callbacks passed to Start being called. It must answer each with
	// messages.Delivered (ctx.Respond(messages.Delivered{})) once it has
	// applied it: the next waits for that, coalescing meanwhile, as for a
	// busy callback, and Stop waits for the answer to the one in flight.
	HostPID *actor.PID
	// HostAckTimeout is how long a HostPID may take to answer a Deliver;
	// past it the batch is delivered again (and counts towards
	// MaxDeliveryAttempts). Default 30 s.
	HostAckTimeout time.Duration
	// Observer hears what the actors do, for metrics; default none.
	Observer Observer

	// Clock drives every timer; default the real clock. Tests pass a fake.
	Clock clock.WithDelayedExecution
	// replay holds the hooks a spec sets (internal/replay) to run the
	// syncer deterministically; a host cannot.
	replay replay.Hooks
}

// BackoffConfig bounds a Backoff; zero fields take the defaults.
type BackoffConfig struct {
	Initial, Max, ResetAfter time.Duration
}

// DefaultConfig returns a Config holding every default: what Start uses for
// each field left zero. It has no etcd connection (Endpoints, KeysAPI or
// Relays), and no Logger, Observer or Clock, which Start fills in with
// slog.Default(), none and the real clock. A host or a command
// line can start from it, so that no default is written twice.
func DefaultConfig() Config {
	return Config{
		Prefix:                "/calico/v1",
		ClusterIDPollInterval: 10 * time.Second,
		StaleSnapshotTimeout:  30 * time.Second,
		StaleReadRetry:        100 * time.Millisecond,
		WatchStallTimeout:     5 * time.Second,
		RequestTimeout:        10 * time.Second,
		HostAckTimeout:        30 * time.Second,
		RelayReadTimeout:      30 * time.Second,
		WatchErrorLimit:       5,
		MaxDeliveryAttempts:   3,
		SnapshotBatchSize:     1000,
		CoalesceAfter:         actors.DefaultFoldAt,
		Backoff:               defaultBackoff,
	}
}

func init() {
	replay.Register(func(cfg any, h replay.Hooks) any {
		c := cfg.(Config)
		c.replay = h
		return c
	})
}

// ConfigError is an invalid Config; Field names the field.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "etcdsync: config: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// withDefaults returns cfg validated and with every default filled in.
func (cfg Config) withDefaults() (Config, error) {
	if err := cfg.checkSource(); err != nil {
		return Config{}, err
	}
	def := DefaultConfig()
	if cfg.Prefix == "" {
		cfg.Prefix = def.Prefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return Config{}, badField("Prefix", "%q does not start with /", cfg.Prefix)
	}
	if cfg.Prefix = keyspace.Prefix(cfg.Prefix); cfg.Prefix == "" {
		return Config{}, badField("Prefix", "syncing the whole keyspace (/) is not supported; name a directory")
	}
	if cfg.OnClusterReset > StopOnReset {
		return Config{}, badField("OnClusterReset", "unknown policy %d", cfg.OnClusterReset)
	}
	if err := cfg.fillLimits(def); err != nil {
		return Config{}, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = actors.NopObserver{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.replay.Rand == nil {
		cfg.replay.Rand = rand.Int64N
	}
	return cfg, nil
}

// badField returns a *ConfigError naming field.
func badField(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

// checkSource checks the choice of source: relays, a KeysAPI or
// endpoints, and the API and watch mode that go with it.
func (cfg Config) checkSource() error {
	relays := len(cfg.Relays) > 0
	switch {
	case relays && cfg.KeysAPI != nil:
		return badField("Relays", "Relays and KeysAPI are exclusive: sync from relays or from etcd")
	case relays && len(cfg.Endpoints) > 0:
		return badField("Relays", "Relays and Endpoints are exclusive: sync from relays or from etcd")
	case relays && cfg.WatchMode != WatchLongPoll:
		return badField("WatchMode", "a syncer reading from relays does not watch etcd")
	case relays && cfg.API != APIv2:
		return badField("API", "a syncer reading from relays does not read etcd; the relay's API is the relay's business")
	case cfg.API > APIv3:
		return badField("API", "unknown API %d", cfg.API)
	case cfg.API == APIv3 && cfg.KeysAPI != nil:
		return badField("KeysAPI", "a KeysAPI is etcd v2's; an APIv3 syncer reads Endpoints")
	case cfg.API == APIv3 && cfg.Transport != nil:
		return badField("Transport", "Transport carries v2 requests; an APIv3 syncer dials Endpoints over gRPC (set TLS instead)")
	case cfg.API == APIv3 && cfg.WatchMode != WatchLongPoll:
		return badField("WatchMode", "a v3 watch is always a stream; leave WatchMode unset with APIv3")
	case cfg.WatchMode > WatchStream:
		return badField("WatchMode", "unknown mode %d", cfg.WatchMode)
	case cfg.WatchMode == WatchStream && cfg.KeysAPI != nil:
		return badField("WatchMode", "streaming needs Endpoints; a KeysAPI cannot stream")
	case !relays && cfg.KeysAPI == nil && len(cfg.Endpoints) == 0:
		return badField("Endpoints", "no etcd endpoint given (and no KeysAPI or Relays)")
	}
	for i, ep := range cfg.Relays {
		if err := ValidateEndpoint(ep); err != nil {
			return &ConfigError{Field: fmt.Sprintf("Relays[%d]", i), Err: err}
		}
	}
	if cfg.KeysAPI == nil {
		for i, ep := range cfg.Endpoints {
			if err := ValidateEndpoint(ep); err != nil {
				return &ConfigError{Field: fmt.Sprintf("Endpoints[%d]", i), Err: err}
			}
		}
	}
	return nil
}

// fillLimits gives every duration and count left zero its default from
// def, and refuses a negative one.
func (cfg *Config) fillLimits(def Config) error {
	durations := []struct {
		field string
		d     *time.Duration
		def   time.Duration
	}{
		{"ClusterIDPollInterval", &cfg.ClusterIDPollInterval, def.ClusterIDPollInterval},
		{"StaleSnapshotTimeout", &cfg.StaleSnapshotTimeout, def.StaleSnapshotTimeout},
		{"StaleReadRetry", &cfg.StaleReadRetry, def.StaleReadRetry},
		{"WatchStallTimeout", &cfg.WatchStallTimeout, def.WatchStallTimeout},
		{"RequestTimeout", &cfg.RequestTimeout, def.RequestTimeout},
		{"HostAckTimeout", &cfg.HostAckTimeout, def.HostAckTimeout},
		{"RelayReadTimeout", &cfg.RelayReadTimeout, def.RelayReadTimeout},
		{"Backoff.Initial", &cfg.Backoff.Initial, def.Backoff.Initial},
		{"Backoff.Max", &cfg.Backoff.Max, def.Backoff.Max},
		{"Backoff.ResetAfter", &cfg.Backoff.ResetAfter, def.Backoff.ResetAfter},
	}
	for _, d := range durations {
		if *d.d < 0 {
			return badField(d.field, "negative duration %v", *d.d)
		}
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if cfg.Backoff.Max < cfg.Backoff.Initial {
		return badField("Backoff.Max", "%v is below Backoff.Initial %v", cfg.Backoff.Max, cfg.Backoff.Initial)
	}
	counts := []struct {
		field string
		n     *int
		def   int
	}{
		{"WatchErrorLimit", &cfg.WatchErrorLimit, def.WatchErrorLimit},
		{"MaxDeliveryAttempts", &cfg.MaxDeliveryAttempts, def.MaxDeliveryAttempts},
		{"SnapshotBatchSize", &cfg.SnapshotBatchSize, def.SnapshotBatchSize},
		{"CoalesceAfter", &cfg.CoalesceAfter, def.CoalesceAfter},
	}
	for _, c := range counts {
		if *c.n < 0 {
			return badField(c.field, "negative count %d", *c.n)
		}
		if *c.n == 0 {
			*c.n = c.def
		}
	}
	return nil
}

// source returns the etcd source the config chooses: Config.KeysAPI, or
// etcd's v2 API at Endpoints (snapshots decoded as they stream in; watches
// by long poll through client/v2, or by etcd's stream), and the tracker of
// the syncer's own transport's connections, which Stop closes (nil with a
// KeysAPI or a Transport of the host's). A syncer reading from Relays has
// none.
func (cfg Config) source(goroutines *sync.WaitGroup) (source.Source, *connTracker, error) {
	if len(cfg.Relays) > 0 {
		return nil, nil, nil // see relayClient
	}
	if cfg.API == APIv3 {
		return cfg.sourceV3(), nil, nil
	}
	if cfg.KeysAPI != nil {
		return etcdv2.NewKeysSource(cfg.KeysAPI, cfg.Prefix), nil, nil
	}
	transport := cfg.Transport
	var conns *connTracker
	if transport == nil {
		transport, conns = newTransport(cfg.TLS)
	}
	// One KeysHTTP: snapshots and a streaming watch stick to the same member.
	keysHTTP := &etcdv2.KeysHTTP{
		Endpoints:     cfg.Endpoints,
		Client:        &http.Client{Transport: transport},
		Username:      cfg.Username,
		Password:      cfg.Password,
		HeaderTimeout: cfg.RequestTimeout,
	}
	src := &etcdv2.Source{Snapshots: &etcdv2.HTTPSnapshotter{KeysHTTP: keysHTTP}, Prefix: cfg.Prefix}
	if cfg.WatchMode == WatchStream {
		// Its GETs too: the watcher's quorum reads then move the stream
		// off a member that has lost its quorum.
		watches := &etcdv2.StreamWatches{KeysHTTP: keysHTTP, Goroutines: goroutines}
		src.Keys, src.Watches = watches, watches
		return src, conns, nil
	}
	c, err := client.New(client.Config{
		Endpoints: cfg.Endpoints,
		Transport: transport,
		Username:  cfg.Username,
		Password:  cfg.Password,
		// Not for watches: they wait for events.
		HeaderTimeoutPerRequest: cfg.RequestTimeout,
	})
	if err != nil {
		return nil, nil, &ConfigError{Field: "Endpoints", Err: fmt.Errorf("creating the etcd client: %w", err)}
	}
	keys := client.NewKeysAPI(c)
	src.Keys, src.Watches = keys, keys
	return src, conns, nil
}

// sourceV3 returns an etcd v3 source for Endpoints. Its client is dialled
// when first needed, so that Start does not wait for etcd; Stop closes it.
func (cfg Config) sourceV3() *etcdv3.Source {
	return &etcdv3.Source{
		Config: clientv3.Config{
			Endpoints: cfg.Endpoints,
			TLS:       cfg.TLS,
			Username:  cfg.Username,
			Password:  cfg.Password,
			// Bounds the authentication clientv3.New makes with
			// credentials; without, it dials in the background.
			DialTimeout:          cfg.RequestTimeout,
			DialKeepAliveTime:    cfg.WatchStallTimeout,
			DialKeepAliveTimeout: cfg.RequestTimeout,
			PermitWithoutStream:  true,
			Logger:               zap.NewNop(), // its errors reach us as errors
			// gRPC's own reconnect backoff grows to 2 minutes: after an
			// etcd restart the syncer would stay blind that long. Ours
			// is the one the operator configured for everything else.
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  cfg.Backoff.Initial,
					Multiplier: 2,
					Jitter:     0.2,
					MaxDelay:   cfg.Backoff.Max,
				},
				MinConnectTimeout: cfg.RequestTimeout,
			})},
		},
		Prefix:           cfg.Prefix,
		RequestTimeout:   cfg.RequestTimeout,
		ProgressInterval: cfg.WatchStallTimeout / 2,
	}
}

// relayClient returns the HTTP client for Relays, and the tracker of the
// syncer's own transport's connections (nil with a Transport of the host's).
func (cfg Config) relayClient() (*http.Client, *connTracker) {
	if cfg.Transport != nil {
		return &http.Client{Transport: cfg.Transport}, nil
	}
	transport, conns := newTransport(cfg.TLS)
	return &http.Client{Transport: transport}, conns
}

var errNoCallbacks = errors.New("no callbacks and no Config.HostPID: updates would have nowhere to go")

// newMergeCore returns the merge core for the config's keys: v2's paths, or
// flat keys for etcd v3 and for relays (whose deletions name single keys,
// and whose upstream may be either API).
func (cfg Config) newMergeCore() *actors.MergeCore {
	if cfg.API == APIv3 || len(cfg.Relays) > 0 {
		return actors.NewFlatMergeCore()
	}
	return actors.NewMergeCore()
}
