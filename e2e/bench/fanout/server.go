package fanout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay"
	"github.com/etcdsync/etcdsync/relay/wire"
	"github.com/etcdsync/etcdsync/supervisor"
)

// Environment of a re-executed server process (Start, RunRole).
const (
	envRole      = "ETCDSYNC_FANOUT_ROLE"       // "relay" or "floor"
	envEtcd      = "ETCDSYNC_FANOUT_ETCD"       // relay: comma-separated etcd endpoints
	envPrefix    = "ETCDSYNC_FANOUT_PREFIX"     // relay: the prefix it syncs
	envFloorFile = "ETCDSYNC_FANOUT_FLOOR_FILE" // floor: the bytes it serves
)

// Roles a Proc runs.
const (
	RoleRelay = "relay"
	RoleFloor = "floor"
)

// Paths of a server process's own endpoints, beside the relay stream.
const (
	StatsPath = "/bench/stats" // GET: Stats as JSON
	GCPath    = "/bench/gc"    // POST: collect garbage and return memory to the OS
)

// Stats is what a relay process reports on StatsPath.
type Stats struct {
	Relay     relay.Stats
	InSync    bool
	LostSync  uint64 // times the relay's syncer left in-sync (a resync, or worse)
	HeapBytes uint64 // live heap after the last GC (runtime.MemStats.HeapAlloc)
	// StackBytes is the memory of goroutine stacks (runtime.MemStats.StackInuse).
	StackBytes uint64
}

// RunRole runs the server role named by the environment, if any, until
// the process is killed, and reports whether there was one. Call it first
// thing in TestMain and return if it reports true.
func RunRole() bool {
	role := os.Getenv(envRole)
	if role == "" {
		return false
	}
	RaiseFileLimit()
	var err error
	switch role {
	case RoleRelay:
		err = runRelay(strings.Split(os.Getenv(envEtcd), ","), os.Getenv(envPrefix))
	case RoleFloor:
		err = runFloor(os.Getenv(envFloorFile))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	fmt.Fprintf(os.Stderr, "fanout %s: %v\n", role, err)
	os.Exit(1)
	return true
}

// listen listens on a loopback port and tells the parent which: the
// first line of stdout.
func listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	return ln, nil
}

// relayHost is the relay process's syncer host: the relay server, and
// whether the syncer says in-sync.
type relayHost struct {
	*relay.Server
	inSync    atomic.Bool
	wasInSync atomic.Bool
	lostSync  atomic.Uint64
}

func (h *relayHost) OnStatusUpdated(s messages.SyncStatus) { h.OnStatusAt(s, 0) }

func (h *relayHost) OnStatusAt(s messages.SyncStatus, index uint64) {
	if s == messages.InSync {
		h.wasInSync.Store(true)
	} else if h.inSync.Load() {
		h.lostSync.Add(1)
	}
	h.inSync.Store(s == messages.InSync)
	h.Server.OnStatusAt(s, index)
}

var _ messages.StatusAtCallback = (*relayHost)(nil)

// runRelay is what `cmd/node --relay-listen --watch stream` runs, without
// the view: a syncer of etcd whose host is a relay.Server with the node's
// configuration (relay.Config's defaults), served over HTTP, plus
// StatsPath and GCPath. The header timeout is a minute, not the node's 5 s,
// because the benchmarks open their connections well before they send the
// request on them.
func runRelay(endpoints []string, prefix string) error {
	quiet := slog.New(slog.DiscardHandler)
	// WriteTimeout is the one setting not the node's: 10^4 clients in one
	// process share two cores with the relay, and a client whose socket
	// goes undrained for the default 10 s is dropped as slow, as it should
	// be in production; here it would only cut the burst short.
	rs, err := relay.New(relay.Config{Prefix: prefix, Logger: quiet, WriteTimeout: 10 * time.Minute})
	if err != nil {
		return err
	}
	host := &relayHost{Server: rs}
	system := supervisor.NewSystem(quiet)
	// The stream watch, as a relay under 1000 writes/s should run it (the
	// README says so): a long poll makes a request per event, and with the
	// clients on the same two cores it fell behind and resynced.
	_, err = supervisor.Start(system, supervisor.Config{Endpoints: endpoints, Prefix: prefix, Logger: quiet,
		WatchMode: supervisor.WatchStream}, host)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(wire.StreamPath, rs)
	mux.HandleFunc(StatsPath, func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(Stats{Relay: rs.Stats(), InSync: host.inSync.Load(),
			LostSync: host.lostSync.Load(), HeapBytes: ms.HeapAlloc, StackBytes: ms.StackInuse})
	})
	mux.HandleFunc(GCPath, func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
	})
	// For the profiles that explain a figure: go tool pprof http://<addr>/debug/pprof/profile
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	// Per-stream contention shows in the mutex profile.
	runtime.SetMutexProfileFraction(100)
	ln, err := listen()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
	return srv.Serve(ln)
}

// floorChunk is the size of the floor's writes: the relay's (its
// writeChunk). One Write of the whole buffer per connection was measured
// slower, and costlier in CPU, than the relay itself at 10^3 clients.
const floorChunk = 256 << 10

// runFloor serves the bytes of file, as they are, to every request: one
// pre-built buffer, written in floorChunk pieces with no deadline and no
// flush, under the relay's Content-Type. It is the floor of moving a
// snapshot to many clients.
func runFloor(file string) error {
	buf, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ln, err := listen()
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Transfer-Encoding", "identity") // as the relay: not chunked
		for b := buf; len(b) > 0; b = b[min(len(b), floorChunk):] {
			if _, err := w.Write(b[:min(len(b), floorChunk)]); err != nil {
				return
			}
		}
	})}
	return srv.Serve(ln)
}

// Proc is a server process started by Start.
type Proc struct {
	Addr   string // host:port it listens on
	cmd    *exec.Cmd
	exited chan error
}

// Start re-executes the test binary as a server of role (RoleRelay or
// RoleFloor) with env added to its environment ("KEY=value"), and waits
// until it listens.
func Start(role string, env ...string) (*Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, exited: make(chan error, 1)}
	line, err := bufio.NewReader(out).ReadString('\n')
	if addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening "); ok && err == nil {
		p.Addr = addr
	} else {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("fanout: %s process did not start: %q %v", role, line, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

// StartRelay starts a relay process syncing prefix from etcd endpoints.
func StartRelay(endpoints []string, prefix string) (*Proc, error) {
	return Start(RoleRelay, envEtcd+"="+strings.Join(endpoints, ","), envPrefix+"="+prefix)
}

// StartFloor starts a floor process serving the bytes of file.
func StartFloor(file string) (*Proc, error) { return Start(RoleFloor, envFloorFile+"="+file) }

// URL is the process's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Stop kills the process and waits for it.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Usage is what /proc says a process has used.
type Usage struct {
	CPU time.Duration // user plus system time
	RSS uint64        // resident set, bytes
	// WriteCalls counts the process's write syscalls (syscw of
	// /proc/<pid>/io): a stream's cost is mostly its writes.
	WriteCalls uint64
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// Usage reads the process's CPU time and resident set from /proc.
func (p *Proc) Usage() (Usage, error) { return ReadUsage(p.cmd.Process.Pid) }

// ReadUsage reads process pid's CPU time (utime+stime of /proc/<pid>/stat),
// resident set (VmRSS of /proc/<pid>/status) and write syscalls (syscw of
// /proc/<pid>/io).
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name, in brackets, may hold spaces: count from after it.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return u, errors.New("fanout: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, errors.New("fanout: short /proc stat")
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.CPU = time.Duration(utime+stime) * clockTick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return u, err
			}
			u.RSS = kb << 10
		}
	}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(io)) {
		if rest, ok := strings.CutPrefix(line, "syscw:"); ok {
			if u.WriteCalls, err = strconv.ParseUint(strings.TrimSpace(rest), 10, 64); err != nil {
				return u, err
			}
		}
	}
	return u, nil
}

// RelayStats fetches a relay process's Stats.
func RelayStats(ctx context.Context, base string) (Stats, error) {
	var s Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+StatsPath, nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// SaveProfile fetches the relay process's pprof profile name (a path
// under /debug/pprof/, with its query, e.g. "heap" or "profile?seconds=3")
// into file.
func SaveProfile(ctx context.Context, base, name, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fanout: fetching profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fanout: fetching profile %s: %s", name, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fanout: reading profile %s: %w", name, err)
	}
	return os.WriteFile(file, b, 0o644)
}

// RelayGC makes a relay process collect garbage and return what it can to
// the OS, so that its RSS is what it holds.
func RelayGC(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+GCPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// WaitRelay polls a relay process's Stats every 20 ms until ok accepts
// them or ctx ends.
func WaitRelay(ctx context.Context, base string, ok func(Stats) bool) (Stats, error) {
	for {
		s, err := RelayStats(ctx, base)
		if err == nil && ok(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("fanout: waiting for the relay (last stats %+v, %v): %w", s, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit: 10^4
// clients need as many sockets in the benchmark process, and as many in
// the relay's. Processes started later inherit it.
func RaiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// FileLimit returns the soft RLIMIT_NOFILE.
func FileLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}
