package etcdproc

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/v2"
)

var (
	// ErrStopped is returned by every method called after Stop.
	ErrStopped = errors.New("etcdproc: cluster stopped")
	// ErrNoLeader is returned by Leader when no running member leads.
	ErrNoLeader = errors.New("etcdproc: no leader")
)

// Options configures a cluster. The zero value is usable.
type Options struct {
	// Version is the etcd the cluster runs: V35 (the zero value) serves
	// both APIs, V37 the v3 API only. It decides the binary (unless
	// Binary is set) and how the harness talks to the members.
	Version Version
	// Binary is the etcd executable, which must be of Version; empty
	// means BinaryOf(Version).
	Binary string
	// Output receives every member's stdout and stderr, each line
	// prefixed with "[mN] "; nil discards it. Specs pass GinkgoWriter.
	Output io.Writer
	// Dir holds the members' data directories and backups; empty means a
	// new temporary directory, removed by Stop.
	Dir string
	// ReadyTimeout bounds each wait for a member to serve; zero means 30 s.
	ReadyTimeout time.Duration
	// Args are extra etcd flags for every member, e.g. "--snapshot-count=100".
	// They come last, so they override the harness's own, among which
	// loopback timings: --heartbeat-interval 50 --election-timeout 500.
	Args []string
	// PeerProxies puts a proxy in front of every member's peer listener, so
	// that Partition can cut a member off from the others while it keeps
	// serving clients.
	PeerProxies bool
	// ClientTLS, when set, makes the members serve clients over https
	// only.
	ClientTLS *ClientTLS
}

// ClientTLS is the TLS of the members' client listeners.
type ClientTLS struct {
	CertFile, KeyFile string // the members' certificate (valid for 127.0.0.1)
	// TrustedCAFile, with ClientCertAuth, is the CA that must have signed
	// a client's certificate (etcd's --client-cert-auth).
	TrustedCAFile  string
	ClientCertAuth bool
	// Harness is what the harness itself, and KeysAPI, connect with: the
	// CA that signed CertFile, and a client certificate if ClientCertAuth.
	Harness *tls.Config
}

// Cluster is a set of etcd processes forming one etcd cluster on
// loopback. Its methods are safe for concurrent use and serialised.
type Cluster struct {
	opts   Options
	bin    string
	dir    string
	ownDir bool
	outMu  sync.Mutex // one output line at a time across members

	mu      sync.Mutex
	token   string
	gen     int // bumped by Rebuild and Restore: fresh data directory names
	backups int
	members []*member
	stopped bool
}

type member struct {
	name       string
	clientURL  string
	peerURL    string     // advertised to the other members
	peerListen string     // where etcd listens for peers: peerURL, or behind proxy
	proxy      *peerProxy // with Options.PeerProxies
	dataDir    string
	proc       *process // nil or exited when not running
}

func (m *member) running() bool { return m.proc != nil && !m.proc.exited() }

// StartMember starts a one-member cluster and waits until it serves.
func StartMember(opts Options) (*Cluster, error) {
	return StartCluster(1, opts)
}

// StartCluster starts an n-member cluster on free loopback ports with a
// fresh --initial-cluster-token (so its cluster ID is its own), and waits
// until every member serves (v2 requests on 3.5, GET /health on 3.7). On
// error nothing is left running.
func StartCluster(n int, opts Options) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdproc: cluster size %d: must be at least 1", n)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = BinaryOf(opts.Version); err != nil {
			return nil, err
		}
	}
	c := &Cluster{opts: opts, bin: bin, dir: opts.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "etcdproc-*")
		if err != nil {
			return nil, fmt.Errorf("etcdproc: data directory: %w", err)
		}
		c.dir, c.ownDir = d, true
	}
	c.members = make([]*member, n)
	for i := range c.members {
		c.members[i] = &member{name: "m" + strconv.Itoa(i)}
		if opts.PeerProxies {
			px, err := newPeerProxy()
			if err != nil {
				_ = c.Stop()
				return nil, fmt.Errorf("etcdproc: peer proxy: %w", err)
			}
			c.members[i].proxy, c.members[i].peerURL = px, px.url()
		}
	}
	// A free port can be taken between our probe and etcd's bind: retry
	// with new ports when a member fails with "address already in use".
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.assignPorts(); err != nil {
			break
		}
		if err = c.bootstrap(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

var errAddrInUse = errors.New("address already in use")

// assignPorts gives every member a client and a peer port that were free
// a moment ago: all listeners are held open together so no two collide.
func (c *Cluster) assignPorts() error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	next := func() (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("etcdproc: free port: %w", err)
		}
		ls = append(ls, l)
		return "http://" + l.Addr().String(), nil
	}
	for _, m := range c.members {
		var err error
		if m.clientURL, err = next(); err != nil {
			return err
		}
		if c.opts.ClientTLS != nil {
			m.clientURL = "https://" + strings.TrimPrefix(m.clientURL, "http://")
		}
		if m.peerListen, err = next(); err != nil {
			return err
		}
		if m.proxy == nil {
			m.peerURL = m.peerListen
		} else {
			m.proxy.setTarget(strings.TrimPrefix(m.peerListen, "http://"))
		}
	}
	return nil
}

// bootstrap starts every member of a new cluster (new token, empty data
// directories) and waits until all serve. Called with c.mu held or before
// c is shared.
func (c *Cluster) bootstrap() error {
	c.token = newToken()
	c.gen++
	var initial []string
	for i, m := range c.members {
		m.dataDir = filepath.Join(c.dir, fmt.Sprintf("g%d-%s", c.gen, m.name))
		initial = append(initial, m.name+"="+c.members[i].peerURL)
	}
	for _, m := range c.members {
		args := []string{"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new"}
		if err := c.launch(m, args); err != nil {
			c.killAll()
			return err
		}
	}
	for _, m := range c.members {
		if err := c.waitReady(m); err != nil {
			c.killAll()
			return err
		}
	}
	return nil
}

func newToken() string {
	return fmt.Sprintf("etcdproc-%d-%s", os.Getpid(), strings.ToLower(rand.Text()[:10]))
}

// launch starts member m's process; extra are flags for a first start.
func (c *Cluster) launch(m *member, extra []string) error {
	if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
		return fmt.Errorf("etcdproc: %s data directory: %w", m.name, err)
	}
	args := []string{
		// Loopback timings: a restarted member elects itself in about
		// half a second instead of over one. Options.Args may override.
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--name", m.name,
		"--data-dir", m.dataDir,
	}
	if c.opts.Version.ServesV2() {
		// 3.6 removed the flag: etcd 3.7 refuses to start with it.
		args = append(args, "--enable-v2")
	}
	args = append(args,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerListen,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster-token", c.token,
	)
	if len(extra) == 0 {
		// Flags for a member whose data directory exists are ignored by
		// etcd, but --initial-cluster must still name the member itself.
		extra = []string{"--initial-cluster", m.name + "=" + m.peerURL}
	}
	if t := c.opts.ClientTLS; t != nil {
		args = append(args, "--cert-file", t.CertFile, "--key-file", t.KeyFile)
		if t.ClientCertAuth {
			args = append(args, "--client-cert-auth", "--trusted-ca-file", t.TrustedCAFile)
		}
	}
	args = append(args, extra...)
	args = append(args, c.opts.Args...)
	p, err := startProcess(c.bin, args, newMemberOutput(m.name, c.opts.Output, &c.outMu))
	if err != nil {
		return err
	}
	m.proc = p
	return nil
}

// waitReady polls member m until a v2 GET of the root succeeds on 3.5,
// or GET /health on 3.7. etcd serves its client port only once the
// member has published itself through raft, so on 3.5 any answer means a
// quorum was there; /health also needs a leader, and reads through it.
func (c *Cluster) waitReady(m *member) error {
	deadline := time.Now().Add(c.opts.ReadyTimeout)
	hc := c.httpClient(time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	probe := "/v2/keys/"
	if !c.opts.Version.ServesV2() {
		probe = "/health"
	}
	for {
		resp, err := hc.Get(m.clientURL + probe)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-m.proc.done:
			tail := m.proc.out.Tail()
			err := fmt.Errorf("etcdproc: %s exited before serving: %v; output ends:\n%s", m.name, m.proc.err, tail)
			if strings.Contains(tail, "address already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return err
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcdproc: %s not serving at %s after %v; output ends:\n%s",
				m.name, m.clientURL, c.opts.ReadyTimeout, m.proc.out.Tail())
		}
	}
}

func (c *Cluster) killAll() {
	for _, m := range c.members {
		if m.proc != nil {
			_ = m.proc.signal(syscall.SIGKILL, 0)
		}
	}
}

func (c *Cluster) member(i int) (*member, error) {
	if c.stopped {
		return nil, ErrStopped
	}
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("etcdproc: member %d: out of range [0,%d)", i, len(c.members))
	}
	return c.members[i], nil
}

// Version returns the etcd the cluster runs (Options.Version).
func (c *Cluster) Version() Version { return c.opts.Version }

// Size returns the number of members.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

// Endpoints returns every member's client URL, running or not, in member
// order. They stay the same across Restart, Rebuild and Restore.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Running reports whether member i's process is alive.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	return err == nil && m.running()
}

// Pid returns member i's process id, or 0 if it is not running.
func (c *Cluster) Pid(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil || !m.running() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Stop stops every member (SIGTERM, and SIGKILL for one still running
// 2 s later: etcd's graceful stop waits seconds for open watch requests,
// so stop their clients first) and removes the data directory if
// StartCluster created it. The cluster cannot be used afterwards. Safe to
// call more than once and from DeferCleanup.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	errs := []error{c.stopAll(c.members, finalGrace)}
	for _, m := range c.members {
		if m.proxy != nil {
			m.proxy.close()
		}
	}
	if c.ownDir {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("etcdproc: remove %s: %w", c.dir, err))
		}
	}
	return errors.Join(errs...)
}

// stopAll stops the running members of ms gracefully: the followers
// together, then the leader. A leader stopped while its followers are up
// first tries to hand its leadership over, which stopping followers never
// take: that would cost the whole grace period.
func (c *Cluster) stopAll(ms []*member, grace time.Duration) error {
	leader, _ := c.leader()
	var followers, leaders []*member
	for i, m := range c.members {
		if !slices.Contains(ms, m) || !m.running() {
			continue
		}
		if i == leader {
			leaders = append(leaders, m)
		} else {
			followers = append(followers, m)
		}
	}
	var errs []error
	for _, group := range [][]*member{followers, leaders} {
		for _, m := range group {
			if err := m.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, fmt.Errorf("etcdproc: stop %s: %w", m.name, err))
			}
		}
		for _, m := range group {
			m.proc.wait(grace)
		}
	}
	return errors.Join(errs...)
}

// StopMember stops member i gracefully (SIGTERM) and waits for it to
// exit, which takes seconds while clients have watch requests open. A
// member that is not running is left alone.
func (c *Cluster) StopMember(i int) error {
	return c.signal(i, syscall.SIGTERM, memberGrace)
}

// Kill kills member i (SIGKILL) and waits for it to exit: a crash, no
// goodbye to its peers or clients. A member that is not running is left
// alone.
func (c *Cluster) Kill(i int) error {
	return c.signal(i, syscall.SIGKILL, 0)
}

// Freeze stops member i in its tracks (SIGSTOP) without a word to its
// peers or clients: its connections stay open and nothing answers on them,
// as with a member black-holed by the network, while the others elect a
// leader among themselves and go on. Thaw, Stop, Kill and Restart all work
// on a frozen member.
func (c *Cluster) Freeze(i int) error { return c.pause(i, syscall.SIGSTOP) }

// Thaw lets a frozen member go on (SIGCONT).
func (c *Cluster) Thaw(i int) error { return c.pause(i, syscall.SIGCONT) }

func (c *Cluster) pause(i int, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.proc == nil || m.proc.exited() {
		return fmt.Errorf("etcdproc: %s is not running", m.name)
	}
	if err := m.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("etcdproc: signal %v to %s: %w", sig, m.name, err)
	}
	if sig == syscall.SIGSTOP {
		// A signal is delivered when the process next runs; on a busy
		// machine a thread may still answer a request after Signal
		// returned. Frozen means every thread stopped.
		return waitStopped(m.proc.cmd.Process.Pid, 5*time.Second)
	}
	return nil
}

// waitStopped waits until every thread of pid is stopped (state T in
// /proc/pid/task/*/stat).
func waitStopped(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(stats) > 0
		for _, f := range stats {
			b, err := os.ReadFile(f)
			// The state follows the command name's closing parenthesis.
			i := strings.LastIndexByte(string(b), ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcdproc: process %d not stopped within %v of SIGSTOP", pid, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// signal sends member i sig, if it runs, and waits for it to exit (see
// process.signal for grace).
func (c *Cluster) signal(i int, sig syscall.Signal, grace time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.proc == nil {
		return nil
	}
	return m.proc.signal(sig, grace)
}

// Restart stops member i if it runs (gracefully, as StopMember does; Kill
// it first for a quick crash-restart), starts it again on the same ports
// with the same data directory, and waits until it serves (which needs a
// quorum of the cluster to be up).
func (c *Cluster) Restart(i int) error {
	return c.RestartAll(i)
}

// RestartAll restarts the given members (every member if none is named)
// together and waits until each serves. Members that lost quorum can only
// serve once enough of them are back, so they must start together.
func (c *Cluster) RestartAll(members ...int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(members) == 0 {
		for i := range c.members {
			members = append(members, i)
		}
	}
	var ms []*member
	for _, i := range members {
		m, err := c.member(i)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if _, err := os.Stat(m.dataDir); err != nil {
			return fmt.Errorf("etcdproc: restart of %s (wiped? use Rebuild): %w", m.name, err)
		}
		if m.proc != nil {
			if err := m.proc.signal(syscall.SIGTERM, memberGrace); err != nil {
				return err
			}
		}
		if err := c.launch(m, nil); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if err := c.waitReady(m); err != nil {
			return err
		}
	}
	return nil
}

// Leader returns the index of the member that currently leads, asked of
// every running member through GET /v2/stats/self on 3.5, through the v3
// Status RPC on 3.7. The error wraps ErrNoLeader while an election is in
// progress or quorum is lost.
func (c *Cluster) Leader() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return -1, ErrStopped
	}
	return c.leader()
}

func (c *Cluster) leader() (int, error) {
	if !c.opts.Version.ServesV2() {
		return c.v3Leader()
	}
	hc := c.httpClient(time.Second)
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		var self struct {
			State string `json:"state"`
		}
		if err := getJSON(hc, m.clientURL+"/v2/stats/self", &self); err != nil {
			continue // a member that can't answer is not a usable leader
		}
		if self.State == "StateLeader" {
			return i, nil
		}
	}
	return -1, ErrNoLeader
}

func getJSON(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Wipe kills every member (SIGKILL: the data goes anyway) and deletes
// their data directories: the cluster is gone until Rebuild.
func (c *Cluster) Wipe() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	return c.wipe()
}

func (c *Cluster) wipe() error {
	var errs []error
	for _, m := range c.members {
		if m.proc != nil {
			errs = append(errs, m.proc.signal(syscall.SIGKILL, 0))
		}
		if m.dataDir != "" {
			if err := os.RemoveAll(m.dataDir); err != nil {
				errs = append(errs, fmt.Errorf("etcdproc: remove %s data: %w", m.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Rebuild wipes the cluster and bootstraps a new one of the same size on
// the same ports with a new --initial-cluster-token: a new cluster ID and
// a fresh, small v2 index, as after an operator's disaster recovery.
func (c *Cluster) Rebuild() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	if err := c.wipe(); err != nil {
		return err
	}
	return c.bootstrap()
}

// KeysAPI returns a client/v2 KeysAPI for every member's endpoint, as a
// writer or a checker in a spec would use. Call it again after Rebuild or
// Restore: the endpoints stay, but a client keeps no state worth keeping.
// On a cluster that serves no v2 API (3.7) the error wraps ErrNoV2.
func (c *Cluster) KeysAPI() (client.KeysAPI, error) {
	return c.keysAPI(c.Endpoints())
}

// KeysAPIOf is KeysAPI for the given members only, such as the ones not
// frozen.
func (c *Cluster) KeysAPIOf(members ...int) (client.KeysAPI, error) {
	all := c.Endpoints()
	var eps []string
	for _, i := range members {
		if i < 0 || i >= len(all) {
			return nil, fmt.Errorf("etcdproc: no member %d in a cluster of %d", i, len(all))
		}
		eps = append(eps, all[i])
	}
	return c.keysAPI(eps)
}

// httpClient returns a client for the members' client URLs.
func (c *Cluster) httpClient(timeout time.Duration) *http.Client {
	hc := &http.Client{Timeout: timeout}
	if t := c.opts.ClientTLS; t != nil {
		hc.Transport = &http.Transport{TLSClientConfig: t.Harness}
	}
	return hc
}

func (c *Cluster) keysAPI(endpoints []string) (client.KeysAPI, error) {
	if !c.opts.Version.ServesV2() {
		return nil, fmt.Errorf("%w: etcd %v; use Client", ErrNoV2, c.opts.Version)
	}
	cfg := client.Config{Endpoints: endpoints}
	if t := c.opts.ClientTLS; t != nil {
		cfg.Transport = &http.Transport{TLSClientConfig: t.Harness}
	}
	cl, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdproc: client for %v: %w", endpoints, err)
	}
	return client.NewKeysAPI(cl), nil
}

// Partition cuts member i off from every other member, in both directions,
// while it keeps running and serving clients: it answers non-quorum reads
// from its store as it was, and its watches see nothing new. It needs
// Options.PeerProxies. Heal undoes it.
func (c *Cluster) Partition(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.proxy == nil {
		return errors.New("etcdproc: Partition needs Options.PeerProxies")
	}
	id, err := c.memberID(m)
	if err != nil {
		return err
	}
	m.proxy.block(true, "")
	for _, o := range c.members {
		if o != m {
			o.proxy.block(false, id)
		}
	}
	return nil
}

// Heal lets every member reach every other again.
func (c *Cluster) Heal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	for _, m := range c.members {
		if m.proxy != nil {
			m.proxy.unblock()
		}
	}
	return nil
}

// memberID asks m for its own member ID (hex, as rafthttp's X-Server-From
// carries it): through GET /v2/stats/self on 3.5, the v3 Status RPC on
// 3.7.
func (c *Cluster) memberID(m *member) (string, error) {
	if !c.opts.Version.ServesV2() {
		st, err := c.v3Status(m, time.Second)
		if err != nil {
			return "", fmt.Errorf("etcdproc: %s's member ID: %w", m.name, err)
		}
		return strconv.FormatUint(st.Header.MemberId, 16), nil
	}
	var self struct {
		ID string `json:"id"`
	}
	if err := getJSON(c.httpClient(time.Second), m.clientURL+"/v2/stats/self", &self); err != nil {
		return "", fmt.Errorf("etcdproc: %s's member ID: %w", m.name, err)
	}
	return self.ID, nil
}
