package etcdsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v2"
)

const (
	// DefaultClusterID is the simulation's cluster ID unless configured:
	// deliberately not etcd's default 7e27652122e8b2ae.
	DefaultClusterID = "5e1d0c1a55e7f00d"
	// DefaultStartIndex is the index of a fresh store: a fresh one-member
	// etcd 3.5 has used 1 to 3 for its own membership records.
	DefaultStartIndex = 3
	// DefaultEndpoint is the endpoint transport errors name.
	DefaultEndpoint = "http://127.0.0.1:2379"
)

// DefaultStart is the fake clock's default start time.
var DefaultStart = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a Server; the zero value means every default.
type Config struct {
	// ClusterID is reported on every response; "" means DefaultClusterID.
	ClusterID string
	// StartIndex is the index of a fresh store, and of the store after
	// Reset; 0 means DefaultStartIndex.
	StartIndex uint64
	// Seed orders unsorted directory listings (random in etcd) and derives
	// the cluster IDs Reset invents.
	Seed uint64
	// Endpoint is the address named in transport errors; "" means
	// DefaultEndpoint.
	Endpoint string
	// Start is the fake clock's start (after 2000, as etcd treats earlier
	// expiry times as none); zero means DefaultStart.
	Start time.Time
	// Park, when not nil, is called by a Watcher.Next before it waits (for
	// an event, or for held watches to be released), and must return once
	// ready() holds or ctx is done: e2e/stepper's Park, so that a
	// deterministic scheduler decides when the wait ends.
	Park func(ctx context.Context, ready func() bool, what string)
}

// Op is a kind of KeysAPI call, for Disconnect and Calls.
type Op uint8

const (
	// OpGet is KeysAPI.Get.
	OpGet Op = iota + 1
	// OpSet is KeysAPI.Set, Create, Update and CreateInOrder.
	OpSet
	// OpDelete is KeysAPI.Delete.
	OpDelete
	// OpWatch is Watcher.Next: one long-poll request each.
	OpWatch
	opEnd
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpWatch:
		return "watch"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

func allOps() []Op { return []Op{OpGet, OpSet, OpDelete, OpWatch} }

// Server is a simulated one-member etcd v2 key space, with one optional
// stale follower, and the client.KeysAPI that talks to it. All methods are
// safe for concurrent use; none starts a goroutine.
//
// Consistency, as etcd's: every write, expiry and quorum GET sees the
// current store; a non-quorum GET sees it too unless FreezeFollower is in
// force; a Watcher sees every event after its index in order, or a 401
// if that index left the 1000-event history.
type Server struct {
	cfg  Config
	addr *net.TCPAddr

	mu        sync.Mutex
	st        *store
	hub       *hub
	follower  *store // non-nil: non-quorum GETs read this
	clusterID string
	now       time.Time
	rng       *rand.Rand
	resets    uint64
	down      map[Op]bool
	held      chan struct{} // non-nil while watches are held; closed on release
	flights   map[*flight]struct{}
	calls     [opEnd]uint64
}

var _ client.KeysAPI = (*Server)(nil)

// New returns a Server with the default Config.
func New() *Server { return NewWithConfig(Config{}) }

// NewWithConfig returns a Server for cfg.
func NewWithConfig(cfg Config) *Server {
	if cfg.ClusterID == "" {
		cfg.ClusterID = DefaultClusterID
	}
	if cfg.StartIndex == 0 {
		cfg.StartIndex = DefaultStartIndex
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	s := &Server{
		cfg:       cfg,
		addr:      endpointAddr(cfg.Endpoint),
		hub:       newHub(),
		clusterID: cfg.ClusterID,
		now:       cfg.Start,
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x5e1d)),
		down:      map[Op]bool{},
		flights:   map[*flight]struct{}{},
	}
	s.st = newStore(cfg.StartIndex)
	s.st.hub = s.hub
	s.st.states = newStates(s.st)
	return s
}

// SetPark sets Config.Park: the waits of watches from now on go through
// park (nil: none).
func (s *Server) SetPark(park func(ctx context.Context, ready func() bool, what string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Park = park
}

// begin counts a call and returns the transport error it meets, if any.
// Called with s.mu held.
func (s *Server) begin(ctx context.Context, op Op, oneShot bool) error {
	s.calls[op]++
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.down[op] {
		return s.errRefused(oneShot)
	}
	return nil
}

// respond turns a store result into what client/v2 returns.
func (s *Server) respond(e *event, err error, index uint64) (*client.Response, error) {
	if err != nil {
		return nil, err
	}
	return e.response(index, s.clusterID), nil
}

// Get is client.KeysAPI.Get: the node at key, a directory with its
// children (all levels if Recursive, sorted by key if Sort). Response.Index
// is the store's index. Non-quorum reads come from the follower while
// FreezeFollower is in force.
func (s *Server) Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, OpGet, false); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &client.GetOptions{}
	}
	st := s.st
	if s.follower != nil && !opts.Quorum {
		st = s.follower
	}
	e, err := st.get(cleanKey(key), opts.Recursive, opts.Sort, s.now, s.rng)
	return s.respond(e, err, st.index)
}

// Set is client.KeysAPI.Set, with etcd's choice of operation: PrevExist
// true is an update (or a compare-and-swap with PrevValue/PrevIndex),
// PrevExist false a create, PrevValue/PrevIndex alone a compare-and-swap,
// anything else a set. As in client/v2, Dir drops value and PrevValue.
func (s *Server) Set(ctx context.Context, key, value string, opts *client.SetOptions) (*client.Response, error) {
	if opts == nil {
		opts = &client.SetOptions{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, OpSet, opts.PrevExist == client.PrevNoExist); err != nil {
		return nil, err
	}
	prevValue := opts.PrevValue
	if opts.Dir {
		value, prevValue = "", ""
	}
	var exists, existsSet bool
	switch opts.PrevExist {
	case client.PrevIgnore:
	case client.PrevExist:
		exists, existsSet = true, true
	case client.PrevNoExist:
		existsSet = true
	default:
		return nil, client.Error{Code: client.ErrorCodeInvalidField,
			Message: errorMessages[client.ErrorCodeInvalidField], Cause: "invalid value for prevExist"}
	}
	var tOpts ttlOptions
	if opts.Refresh {
		if value != "" {
			return nil, client.Error{Code: codeRefreshValue,
				Message: errorMessages[codeRefreshValue], Cause: "A value was provided on a refresh"}
		}
		if opts.TTL <= 0 {
			return nil, client.Error{Code: codeRefreshTTLRequired,
				Message: errorMessages[codeRefreshTTLRequired], Cause: "No TTL value set"}
		}
		tOpts.refresh = true
	}
	if opts.TTL > 0 {
		// client/v2 sends whole seconds, rounded down.
		tOpts.expire = s.now.Add(time.Duration(uint64(opts.TTL.Seconds())) * time.Second)
	}

	k := cleanKey(key)
	var e *event
	var err error
	switch {
	case existsSet && exists && opts.PrevIndex == 0 && prevValue == "":
		e, err = s.st.update(k, value, tOpts, s.now)
	case existsSet && exists:
		e, err = s.st.compareAndSwap(k, prevValue, opts.PrevIndex, value, tOpts, s.now)
	case existsSet:
		e, err = s.st.createNew(k, opts.Dir, value, false, tOpts, s.now)
	case opts.PrevIndex > 0 || prevValue != "":
		e, err = s.st.compareAndSwap(k, prevValue, opts.PrevIndex, value, tOpts, s.now)
	default:
		e, err = s.st.set(k, opts.Dir, value, tOpts, s.now)
	}
	resp, err := s.respond(e, s.fail(err, opts.PrevExist == client.PrevNoExist), s.st.index)
	if err == nil && opts.NoValueOnSuccess {
		resp.Node, resp.PrevNode = nil, nil
	}
	return resp, err
}

// Create is client.KeysAPI.Create: Set with PrevExist false.
func (s *Server) Create(ctx context.Context, key, value string) (*client.Response, error) {
	return s.Set(ctx, key, value, &client.SetOptions{PrevExist: client.PrevNoExist})
}

// Update is client.KeysAPI.Update: Set with PrevExist true.
func (s *Server) Update(ctx context.Context, key, value string) (*client.Response, error) {
	return s.Set(ctx, key, value, &client.SetOptions{PrevExist: client.PrevExist})
}

// CreateInOrder is client.KeysAPI.CreateInOrder: a new key in dir named
// by its zero-padded index.
func (s *Server) CreateInOrder(ctx context.Context, dir, value string, opts *client.CreateInOrderOptions) (*client.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, OpSet, false); err != nil {
		return nil, err
	}
	var tOpts ttlOptions
	if opts != nil && opts.TTL > 0 {
		tOpts.expire = s.now.Add(time.Duration(uint64(opts.TTL.Seconds())) * time.Second)
	}
	e, err := s.st.createNew(cleanKey(dir), false, value, true, tOpts, s.now)
	return s.respond(e, err, s.st.index)
}

// Delete is client.KeysAPI.Delete: a compare-and-delete if PrevValue or
// PrevIndex is set, else a delete (Dir for an empty directory, Recursive
// for a whole tree).
func (s *Server) Delete(ctx context.Context, key string, opts *client.DeleteOptions) (*client.Response, error) {
	if opts == nil {
		opts = &client.DeleteOptions{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, OpDelete, true); err != nil {
		return nil, err
	}
	k := cleanKey(key)
	var e *event
	var err error
	if opts.PrevIndex > 0 || opts.PrevValue != "" {
		e, err = s.st.compareAndDelete(k, opts.PrevValue, opts.PrevIndex, s.now)
	} else {
		e, err = s.st.delete(k, opts.Dir, opts.Recursive, s.now)
	}
	return s.respond(e, err, s.st.index)
}

// Watcher is client.KeysAPI.Watcher: AfterIndex 0 waits for the next
// event, N for the first event after N.
func (s *Server) Watcher(key string, opts *client.WatcherOptions) client.Watcher {
	w := &Watcher{s: s, key: cleanKey(key)}
	if opts != nil {
		w.recursive = opts.Recursive
		if opts.AfterIndex > 0 {
			w.waitIndex = opts.AfterIndex + 1
		}
	}
	return w
}

// Load sets every key of kv, in key order, one set event each: a quick
// way to fill the store.
func (s *Server) Load(kv map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load(kv)
}

func (s *Server) load(kv map[string]string) {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := s.st.set(cleanKey(k), false, kv[k], ttlOptions{}, s.now); err != nil {
			panic(fmt.Sprintf("etcdsim: Load %s: %v", k, err)) // a file in the way: a bug in the spec
		}
	}
}

// Map returns every key below prefix (or prefix itself, if it is a key)
// with its value, as a recursive GET would list them: hidden "_" keys and
// directories left out.
func (s *Server) Map(prefix string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]string{}
	s.st.leaves(prefix, func(k, v string) { m[k] = v })
	return m
}

// Index returns the current store index (the leader's).
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.index
}

// ClusterID returns the cluster ID responses carry now.
func (s *Server) ClusterID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clusterID
}

// Calls returns how many calls of the given kinds (all kinds if none)
// were made, failed ones included. Each Watcher.Next is one call.
func (s *Server) Calls(ops ...Op) uint64 {
	if len(ops) == 0 {
		ops = allOps()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, op := range ops {
		if op > 0 && op < opEnd {
			n += s.calls[op]
		}
	}
	return n
}

// WatchesInFlight returns how many Watcher.Next calls are waiting, so a
// spec can wait for a watch to be in place before writing.
func (s *Server) WatchesInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flights)
}

// Now returns the fake clock's time.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the fake clock forward by d (a negative d counts as 0)
// and expires every key whose TTL has run out, earliest first, each with
// an "expire" event and an index of its own, as etcd's leader does every
// 500 ms.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 {
		s.now = s.now.Add(d)
	}
	s.st.expire(s.now)
}

// FreezeFollower makes non-quorum GETs read from a follower that stops
// applying now: they keep answering with today's content and index while
// writes go on, until ReleaseFollower. Quorum GETs, writes and watches
// are served by the leader. Freezing again restarts the follower from the
// leader's present state.
func (s *Server) FreezeFollower() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.follower = s.st.clone()
}

// ReleaseFollower lets the follower catch up: non-quorum GETs are current
// again. Safe to call when not frozen.
func (s *Server) ReleaseFollower() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.follower = nil
}

// Disconnect makes every call of the given kinds (all if none) fail with
// the error client/v2 returns when the member is down ("connect:
// connection refused", in a *client.ClusterError except for Create and
// Delete), until Reconnect. Disconnecting OpWatch also cuts every watch
// in flight. Calls still count in Calls.
func (s *Server) Disconnect(ops ...Op) {
	if len(ops) == 0 {
		ops = allOps()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		s.down[op] = true
		if op == OpWatch {
			s.cutWatches()
		}
	}
}

// Reconnect ends every Disconnect.
func (s *Server) Reconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.down)
}

// CutWatches breaks the connection of every Watcher.Next in flight (a
// member restart, a proxy reset): each returns a *client.ClusterError
// holding io.ErrUnexpectedEOF, as client/v2 does. Later calls are not
// affected.
func (s *Server) CutWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutWatches()
}

func (s *Server) cutWatches() {
	for f := range s.flights {
		close(f.cut)
	}
	clear(s.flights)
}

// HoldWatches holds back every watch request and response, as a slow
// network or an overloaded client would: Watcher.Next blocks, the server
// keeps going, until ReleaseWatches. Writing more than HistorySize events
// meanwhile makes the next request after the release fail with 401.
// Holding twice is holding once.
func (s *Server) HoldWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = make(chan struct{})
	}
}

// ReleaseWatches lets held watch requests and responses through. Safe to
// call when nothing is held.
func (s *Server) ReleaseWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
}

// Reset replaces the whole cluster, as an operator rebuilding it from
// scratch would: a new cluster ID (clusterID, or one derived from the
// seed if ""), a fresh store at Config.StartIndex holding kv (loaded as by
// Load), and every watch in flight cut. The follower is released.
func (s *Server) Reset(clusterID string, kv map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resets++
	if clusterID == "" {
		clusterID = fmt.Sprintf("%016x", mix(s.cfg.Seed+s.resets))
	}
	s.clusterID = clusterID
	s.cutWatches()
	s.hub = newHub()
	s.st = newStore(s.cfg.StartIndex)
	s.st.hub = s.hub
	s.st.states = newStates(s.st)
	s.follower = nil
	s.load(kv)
}

// mix is splitmix64's finaliser: distinct seeds give distinct IDs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Restart models a restart of the member, as etcdproc.Cluster.Restart
// does to a real one: every watch in flight is cut, and the member
// publishing its attributes again takes one index (an event under etcd's
// own /0, which no watch sees). Content and cluster ID stay.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutWatches()
	s.st.internalEvent()
}

// Backup is a copy of the store taken by Server.Backup.
type Backup struct {
	st        *store
	clusterID string
}

// Index is the store index at the time of the backup.
func (b *Backup) Index() uint64 { return b.st.index }

// Backup copies the store: content, index, history and cluster ID.
func (s *Server) Backup() *Backup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Backup{st: s.st.clone(), clusterID: s.clusterID}
}

// Restore puts the store back as it was at b: the same cluster ID, the
// index going back, TTLs still counting on the fake clock (keys past
// their time expire at the next Advance). Watches in flight are kept, as
// by a proxy that held the connection: one waiting for an index beyond
// the restored head simply waits, missing the writes in between. A real
// restore also restarts the member: call Restart after Restore to get
// that too (cut watches, one more index), as the differential spec does.
// The follower is released. b can be restored more than once.
func (s *Server) Restore(b *Backup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = b.st.clone()
	s.st.hub = s.hub
	s.st.states = newStates(s.st)
	s.clusterID = b.clusterID
	s.follower = nil
}
