package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/etcdsync/etcdsync/internal/redact"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// RelayClientConfig configures a relay client actor.
type RelayClientConfig struct {
	// Relays are the base URLs of relay servers (http(s)://host:port); the
	// client starts at a random one and moves to the next whenever a
	// stream fails.
	Relays []string
	Client *http.Client
	// Cluster judges the cluster ID of every resume position, as the
	// watcher judges etcd's responses, before the merger hears of it.
	Cluster *SharedClusterIDCheck
	// ReadTimeout is how long a stream may stay silent before the client
	// drops it and moves on: the relay pings every 10 s by default, so
	// silence means a dead or black-holed connection.
	ReadTimeout time.Duration
	// StaleTimeout, BatchSize: see RelayFeed.
	StaleTimeout time.Duration
	BatchSize    int
	// StaleRetry is how often a snapshot request that waits for a relay
	// behind the merger is judged again.
	StaleRetry time.Duration
	// Identity asks the relay not to compress; by default the client
	// accepts zstd.
	Identity bool
	// Observer, when not nil, hears about streams, for metrics.
	Observer RelayObserver
}

// RelayObserver hears what a relay client does. Its methods are called
// from actor goroutines; they must be quick and must not block. A relay is
// named by its URL without its password (redact.URL).
type RelayObserver interface {
	// RelayStream reports a stream accepted by relay, and whether it
	// resumed (no snapshot) or began with a snapshot.
	RelayStream(relay string, resumed bool)
	// RelayDisconnected reports a stream that failed or was refused.
	RelayDisconnected(relay string, err error)
}

// RelayBind gives a relay client the merger it feeds; the root sends it
// once both are spawned (each needs the other's PID).
type RelayBind struct{ Merger *actor.PID }

// relayShared is what outlives one incarnation of the relay client.
type relayShared struct {
	merger  *actor.PID
	feed    *RelayFeed
	next    int     // index in Relays of the relay to try next
	backoff Delayer // between attempts; reset once a stream is accepted
}

// NewRelayClientProps returns the props of a relay client actor: it takes the
// place of the watcher and the snapshot reader for a syncer that reads from
// relays (relay) instead of etcd. It keeps one stream open to one
// relay, resuming from its position when it reconnects, and feeds what comes
// to the merger through a RelayFeed, which serves the merger's
// SnapshotRequests from the relay's view. A stream that fails, is refused or
// stays silent for ReadTimeout is replaced, after a jittered backoff, by one
// to the next relay. It fails (panics) only when the relay's datastore was
// reset, or went back in time, or changed cluster: the supervisor applies
// the host's reset policy.
func NewRelayClientProps(env *Env, cfg RelayClientConfig) *actor.Props {
	return shellProps(env, &relayShared{}, 2, func(shared *relayShared, tasks []*task) lifecycle {
		return &relayClient{env: env, cfg: cfg, shared: shared, stream: tasks[0], tick: tasks[1]}
	})
}

// relayClient is the relay client actor; see NewRelayClientProps.
type relayClient struct {
	env     *Env
	cfg     RelayClientConfig
	shared  *relayShared
	stream  *task // the stream being read, or the wait before the next
	tick    *task // judges a request waiting for a relay behind
	ticking bool  // tick is waiting to post a relayTick
}

// What a stream posts to its actor. A relay is named by its redacted URL:
// the names go into logs, errors and the observer.
type (
	relayAccepted struct{} // the relay answered 200; frames follow
	relayFrame    struct {
		relay   string
		f       *wire.Frame
		credits chan struct{} // the stream's window: take one out once taken
	}
	relayEnded struct {
		relay      string
		err        error
		retryAfter time.Duration
	}
	relayTick struct{}
)

func (r *relayClient) started(c actor.Context) {
	sh := r.shared
	if sh.feed == nil {
		sh.feed = NewRelayFeed(r.cfg.BatchSize, r.cfg.StaleTimeout)
		sh.backoff = r.env.NewBackoff()
		sh.next = int(r.env.Rand(int64(len(r.cfg.Relays))))
	}
	if sh.merger != nil {
		// A restart: what the last incarnation's stream posted since is
		// dropped, so the merger no longer has every change; resume
		// from the position the feed has applied.
		r.send(c, sh.feed.Disconnected(errors.New("the relay client restarted")), nil)
		r.connect(c, 0)
	}
}

func (r *relayClient) received(c actor.Context, msg any) {
	switch m := msg.(type) {
	case RelayBind:
		r.shared.merger = m.Merger
		r.connect(c, 0)
	case messages.SnapshotRequest:
		ins, err := r.shared.feed.Request(m, r.env.Clock.Now())
		r.send(c, ins, err)
	}
}

func (r *relayClient) posted(c actor.Context, t *task, msg any) {
	sh := r.shared
	if t == r.tick {
		if _, ok := msg.(relayTick); ok {
			r.ticking = false
			ins, err := sh.feed.Tick(r.env.Clock.Now())
			r.send(c, ins, err)
		}
		return
	}
	switch m := msg.(type) {
	case relayAccepted:
		sh.feed.Connected()
	case relayFrame:
		r.frame(c, m)
	case relayEnded:
		r.reconnect(c, m.relay, m.err, m.retryAfter)
	}
}

// frame hands one frame of the stream to the feed.
func (r *relayClient) frame(c actor.Context, m relayFrame) {
	sh := r.shared
	select {
	case <-m.credits: // the reader may decode one more
	default:
	}
	if m.f.Type == wire.TypeHello {
		sh.backoff.Reset()
		r.env.Logger.Info("relay stream accepted", "relay", m.relay, "resumed", m.f.Resume,
			"relayStatus", m.f.Status, "relayRevision", m.f.Revision)
		if r.cfg.Observer != nil {
			r.cfg.Observer.RelayStream(m.relay, m.f.Resume)
		}
	}
	if m.f.ClusterID != "" {
		if err := r.cfg.Cluster.Check(m.f.ClusterID, r.env.Logger); err != nil {
			r.send(c, sh.feed.Disconnected(err), err)
		}
	}
	ins, err := sh.feed.Frame(m.f, r.env.Clock.Now(), r.env.Prefix)
	if err != nil && !resetError(err) {
		// The stream is out of step: drop it and reconnect.
		r.send(c, ins, nil)
		r.reconnect(c, m.relay, err, 0)
		return
	}
	r.send(c, ins, err)
}

// resetError reports whether err is the relay's datastore reset or gone
// back in time, which only the supervisor's reset policy can answer.
func resetError(err error) bool {
	return errors.Is(err, messages.ErrUpstreamReset) || errors.Is(err, messages.ErrIndexRegressed) ||
		errors.Is(err, messages.ErrClusterIDChanged)
}

// send sends the merger what the feed returned, then fails with err, if
// any: the merger must hear that sync was lost before the supervisor acts.
func (r *relayClient) send(c actor.Context, ins []messages.MergeInput, err error) {
	for _, in := range ins {
		c.Send(r.shared.merger, in)
	}
	if err != nil {
		panic(err) // Restarting stops the tasks
	}
	r.scheduleTick(c)
}

// scheduleTick keeps a request that waits for a relay behind judged, even
// if the relay stays quiet.
func (r *relayClient) scheduleTick(c actor.Context) {
	if !r.shared.feed.Waiting() || r.ticking {
		return
	}
	r.ticking = true
	d := r.cfg.StaleRetry
	r.tick.start(c, r.env, r.env.Goroutines, func(ctx context.Context, post func(any)) {
		if r.env.sleep(ctx, d) {
			post(relayTick{})
		}
	})
}

// reconnect ends the stream and opens the next, to the next relay, after a
// backoff (and at least retryAfter).
func (r *relayClient) reconnect(c actor.Context, relay string, err error, retryAfter time.Duration) {
	sh := r.shared
	r.send(c, sh.feed.Disconnected(err), nil)
	if r.cfg.Observer != nil {
		r.cfg.Observer.RelayDisconnected(relay, err)
	}
	delay := sh.backoff.Next()
	if retryAfter > 0 {
		// Spread the clients a refusal sent away over a second past it.
		delay = max(delay, retryAfter+time.Duration(r.env.Rand(int64(time.Second))))
	}
	r.env.Logger.Warn("relay stream failed; reconnecting", "relay", relay, "err", err, "after", delay)
	r.connect(c, delay)
}

// connect opens a stream to the next relay after delay, with the feed's
// resume position.
func (r *relayClient) connect(c actor.Context, delay time.Duration) {
	sh := r.shared
	base := r.cfg.Relays[sh.next%len(r.cfg.Relays)]
	sh.next = (sh.next + 1) % len(r.cfg.Relays)
	pos := sh.feed.Position()
	r.stream.start(c, r.env, r.env.Goroutines, func(ctx context.Context, post func(any)) {
		if delay > 0 && !r.env.sleep(ctx, delay) {
			return
		}
		relay := redact.URL(base) // what logs and errors may say
		err, retryAfter := r.read(ctx, post, base, relay, pos)
		if ctx.Err() == nil {
			post(relayEnded{relay: relay, err: err, retryAfter: retryAfter})
		}
	})
}

// errSilent: the stream stayed silent for ReadTimeout.
var errSilent = errors.New("relay stream silent")

// framesInFlight bounds the frames a stream's reader has decoded and the
// actor has not yet taken. Past it the reader stops reading, so TCP
// back-pressure reaches the relay, which drops the leaf after its
// WriteTimeout if the actor stays behind that long; the leaf then resumes.
// Without it, a relay faster than the actor would fill the actor's mailbox
// without bound. A frame is at most wire.DefaultMaxFrame (8 MiB) and
// usually under 1 MiB, which bounds what waits; a window of frames, not of
// one, keeps the reader decoding while the actor applies.
const framesInFlight = 16

// read opens one stream to base, and posts its frames until it ends, at
// most framesInFlight ahead of the actor, and returns why it ended and, for a refusal, how long the relay asked to wait.
// relay is base without its password, for the error text: base is never in
// it (net/http strips the password from its errors too).
func (r *relayClient) read(ctx context.Context, post func(any), base, relay string, pos wire.Position) (error, time.Duration) {
	q := url.Values{wire.ParamPrefix: {r.env.Prefix}, wire.ParamFeatures: {wire.FeaturePing}}
	pos.AddTo(q)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimSuffix(base, "/")+wire.StreamPath+"?"+q.Encode(), nil)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the URL it quotes
		}
		return fmt.Errorf("relay %s: %w", relay, err), 0
	}
	if !r.cfg.Identity {
		req.Header.Set("Accept-Encoding", wire.EncodingZstd)
	}
	// The read deadline covers the wait for the answer's headers too.
	silent := r.env.Clock.AfterFunc(r.cfg.ReadTimeout, func() { cancel(errSilent) })
	defer silent.Stop()
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("relay %s: %w", relay, orCause(ctx, err)), 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		return refusal(relay, resp)
	}
	post(relayAccepted{})
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == wire.EncodingZstd {
		zr, err := wire.NewZstdReader(resp.Body)
		if err != nil {
			return fmt.Errorf("relay %s: %w", relay, err), 0
		}
		defer zr.Close()
		body = zr
	}
	dec := wire.NewDecoder(body, 0)
	credits := make(chan struct{}, framesInFlight)
	for {
		f, err := dec.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // a relay ends a stream with an error frame
			}
			return fmt.Errorf("relay %s: %w", relay, orCause(ctx, err)), 0
		}
		silent.Reset(r.cfg.ReadTimeout)
		if f.Type == wire.TypeError {
			return fmt.Errorf("relay %s: %s: %s", relay, f.Code, f.Message), time.Duration(f.RetryAfter) * time.Second
		}
		select {
		case credits <- struct{}{}:
		default:
			// The actor is behind: wait for it, without counting the wait
			// as the relay's silence.
			silent.Stop()
			select {
			case credits <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("relay %s: %w", relay, context.Cause(ctx)), 0
			}
			silent.Reset(r.cfg.ReadTimeout)
		}
		post(relayFrame{relay, f, credits})
	}
}

// orCause returns why ctx was cancelled, if it was by the read deadline,
// else err.
func orCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errSilent) {
		return cause
	}
	return err
}

// refusal reads a refused stream's answer: an error frame from a relay, or
// anything from a server that is not one.
func refusal(relay string, resp *http.Response) (error, time.Duration) {
	retryAfter := time.Duration(0)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		if f, err := wire.NewDecoder(io.LimitReader(resp.Body, 64<<10), 64<<10).Next(); err == nil && f.Type == wire.TypeError {
			return fmt.Errorf("relay %s refused the stream (%d): %s, field %q: %s",
				relay, resp.StatusCode, f.Code, f.Field, f.Message), retryAfter
		}
	}
	return fmt.Errorf("relay %s answered %s (%s), not a relay stream: is it an etcdsync relay?",
		relay, resp.Status, resp.Header.Get("Content-Type")), retryAfter
}

var _ lifecycle = (*relayClient)(nil)
