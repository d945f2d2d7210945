package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/bench/fanout"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
	"github.com/etcdsync/etcdsync/supervisor"
)

// TestMain serves instead of testing when Start re-executed the binary as
// a server process; otherwise it raises the file limit (10^4 clients hold
// as many sockets) and cleans up the etcds after the benchmarks.
func TestMain(m *testing.M) {
	if fanout.RunRole() {
		return
	}
	fanout.RaiseFileLimit()
	code := m.Run()
	stopServers()
	bench.Shutdown()
	os.Exit(code)
}

// The figures; each can be scaled down by its environment variable
// for a smoke run.
var (
	// Keys the relay of the lightweight clients holds.
	fanoutKeys = envInt("ETCDSYNC_FANOUT_KEYS", 100_000)
	// Lightweight clients asking for the snapshot at once.
	burstSizes = envInts("ETCDSYNC_FANOUT_CLIENTS", []int{1, 100, 1000, 10_000})
	// Idle clients held at once, and how long their idle CPU is measured.
	idleClients = envInt("ETCDSYNC_FANOUT_IDLE_CLIENTS", 10_000)
	idleFor     = envDuration("ETCDSYNC_FANOUT_IDLE_FOR", 20*time.Second)
	// Lightweight clients following writes, the write rate, for how long.
	latencyClients = envInt("ETCDSYNC_FANOUT_LATENCY_CLIENTS", 1000)
	latencyRate    = envInt("ETCDSYNC_FANOUT_RATE", 1000)
	writeFor       = envDuration("ETCDSYNC_FANOUT_FOR", 3*time.Second)
	// Full clients (each a syncer holding its view in a map): the keys
	// of their etcd, how many behind the relay and straight at etcd, and
	// their write rate. 10^4 keys, not 10^5: a thousand full views of
	// 10^5 keys would not fit in memory.
	fullKeys    = envInt("ETCDSYNC_FANOUT_FULL_KEYS", 10_000)
	fullClients = envInt("ETCDSYNC_FANOUT_FULL_CLIENTS", 1000)
	directFull  = envInt("ETCDSYNC_FANOUT_DIRECT_CLIENTS", 1000)
	fullRate    = envInt("ETCDSYNC_FANOUT_FULL_RATE", 50)
	// Where to save the relay process's profiles (none if empty): CPU,
	// mutex and allocations over the writes of latency/light, heap and
	// goroutines of idle, for what explains a figure.
	profileDir = os.Getenv("ETCDSYNC_FANOUT_PROFILES")
)

// Timeouts: a burst of 10^4 clients moves 330 GB on loopback.
const (
	burstTimeout = 15 * time.Minute
	drainTimeout = 10 * time.Second // after the last write, for deliveries
	dialers      = 64               // connections opened at once, off the clock
	// shareWait outlasts relay.Config.SnapshotShare's default (1 s), so that
	// a burst cannot be handed the snapshot built for the one before.
	shareWait = 1200 * time.Millisecond
)

var quiet = slog.New(slog.DiscardHandler)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envInts(name string, def []int) []int {
	var ns []int
	for f := range strings.SplitSeq(os.Getenv(name), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return def
	}
	return ns
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// setup is an etcd loaded with Calico-shaped keys and a relay process in
// sync with it, started on first use and kept for the process.
type setup struct {
	once      sync.Once
	keys      int
	endpoints []string
	relay     *fanout.Proc
	floorFile string // the relay's stream up to the end of its snapshot
	err       error
}

var light, full = &setup{keys: fanoutKeys}, &setup{keys: fullKeys}

func (s *setup) get(b *testing.B) *setup {
	s.once.Do(func() {
		c, took, err := bench.StartLoadedEtcd(s.keys)
		if err != nil {
			s.err = err
			return
		}
		bench.Track(c)
		s.endpoints = c.Endpoints()
		fmt.Fprintf(os.Stderr, "fanout: loaded %d keys into %v in %v\n", s.keys, s.endpoints, took.Round(time.Millisecond))
		if s.relay, s.err = fanout.StartRelay(s.endpoints, calico.Prefix); s.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, s.err = fanout.WaitRelay(ctx, s.relay.URL(), func(st fanout.Stats) bool { return st.InSync })
	})
	if s.err != nil {
		b.Fatalf("fanout setup (%d keys): %v", s.keys, s.err)
	}
	return s
}

// stopServers stops the relay and floor processes, from TestMain once the
// benchmarks are done (they would die with the test process anyway).
func stopServers() {
	for _, s := range []*setup{light, full} {
		if s.relay != nil {
			s.relay.Stop()
		}
	}
	if floorProc.proc != nil {
		floorProc.proc.Stop()
	}
}

// BenchmarkFanout measures a relay process (a syncer of etcd whose host is
// a relay.Server, as `cmd/node --relay-listen` runs it) against floors
// measured in the same run:
//
//   - snapshot/{floor,relay}/clients=N: N lightweight clients ask at once
//     (their connections opened beforehand) for the snapshot of 10^5 keys;
//     the time until every one has read it to snapshot-end, the server
//     process's CPU, and for the relay the snapshots it built. The floor is
//     a process writing the relay's own stream bytes from one buffer.
//   - wire/{identity,zstd}: the bytes of one snapshot stream.
//   - idle/clients=N: N clients held at once, idle after their snapshot:
//     the relay's RSS, heap and CPU per client.
//   - latency/light/clients=N/rate=R: etcd write acknowledgement to the
//     last lightweight client's sight of it.
//   - full/{relay,direct}/clients=N: N full clients (supervisor.Start, each
//     holding its view in a map) behind the relay, or straight at etcd:
//     time until all are in sync, the latency of writes at 50/s, and
//     etcd's watchers and watch requests.
func BenchmarkFanout(b *testing.B) {
	b.Run("snapshot", func(b *testing.B) {
		for _, n := range burstSizes {
			b.Run("floor/clients="+strconv.Itoa(n), func(b *testing.B) { measureBurst(b, n, true) })
			b.Run("relay/clients="+strconv.Itoa(n), func(b *testing.B) { measureBurst(b, n, false) })
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.Run("identity", func(b *testing.B) { measureWire(b, false) })
		b.Run("zstd", func(b *testing.B) { measureWire(b, true) })
	})
	b.Run("idle/clients="+strconv.Itoa(idleClients), measureIdle)
	// One client first: the lag of etcd's watch and the relay alone, the
	// baseline of the fan-out's.
	for _, n := range []int{1, latencyClients} {
		b.Run(fmt.Sprintf("latency/light/clients=%d/rate=%d", n, latencyRate), func(b *testing.B) { measureLightLatency(b, n) })
	}
	b.Run(fmt.Sprintf("full/relay/clients=%d", fullClients), func(b *testing.B) { measureFull(b, fullClients, true) })
	b.Run(fmt.Sprintf("full/direct/clients=%d", directFull), func(b *testing.B) { measureFull(b, directFull, false) })
}

// floorProc is the floor process, serving the light relay's stream bytes
// up to the end of its snapshot; started on first use.
var floorProc struct {
	once sync.Once
	proc *fanout.Proc
	err  error
}

func startFloor(b *testing.B, s *setup) *fanout.Proc {
	floorProc.once.Do(func() {
		var buf bytes.Buffer
		if _, err := readOne(s.relay.Addr, false, &buf); err != nil {
			floorProc.err = err
			return
		}
		file := filepath.Join(os.TempDir(), fmt.Sprintf("etcdsync-fanout-floor-%d", os.Getpid()))
		if floorProc.err = os.WriteFile(file, buf.Bytes(), 0o644); floorProc.err != nil {
			return
		}
		floorProc.proc, floorProc.err = fanout.StartFloor(file)
		_ = os.Remove(file) // read at start-up
	})
	if floorProc.err != nil {
		b.Fatalf("floor server: %v", floorProc.err)
	}
	return floorProc.proc
}

// readOne reads one snapshot from addr with one client; tee, if not nil,
// receives the stream's bytes.
func readOne(addr string, zstd bool, tee io.Writer) (fanout.Snapshot, error) {
	c, err := fanout.Dial(addr)
	if err != nil {
		return fanout.Snapshot{}, err
	}
	defer c.Close()
	if err := c.Request(fanout.Request{Prefix: calico.Prefix, Zstd: zstd, Tee: tee}); err != nil {
		return fanout.Snapshot{}, err
	}
	return c.ReadSnapshot()
}

// dialAll opens n client connections to addr, dialers at a time.
func dialAll(addr string, n int) ([]*fanout.Client, error) {
	clients := make([]*fanout.Client, n)
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for d := range dialers {
		wg.Go(func() {
			for i := d; i < n; i += dialers {
				c, err := fanout.Dial(addr)
				if err != nil {
					errs <- err
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(clients)
		return nil, fmt.Errorf("dialing %d clients to %s: %w", n, addr, err)
	}
	return clients, nil
}

func closeAll(clients []*fanout.Client) {
	for _, c := range clients {
		if c != nil {
			_ = c.Close()
		}
	}
}

func checkFiles(b *testing.B, n int) {
	if need := uint64(n + 200); fanout.FileLimit() < need {
		b.Fatalf("RLIMIT_NOFILE is %d, %d clients need about %d (raise the hard limit)", fanout.FileLimit(), n, need)
	}
}

// measureBurst times n lightweight clients reading the snapshot at once
// from the floor (floor) or the relay.
func measureBurst(b *testing.B, n int, floor bool) {
	s := light.get(b)
	checkFiles(b, n)
	proc := s.relay
	if floor {
		proc = startFloor(b, s)
	}
	ctx := context.Background()
	if err := warmUp(proc.Addr, n); err != nil {
		b.Fatalf("warming the server up: %v", err)
	}
	var cpu, clientCPU, spread time.Duration
	var built, shared uint64
	var perClient float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := fanout.WaitRelay(ctx, s.relay.URL(), func(st fanout.Stats) bool { return st.Relay.Clients == 0 }); err != nil {
			b.Fatal(err)
		}
		time.Sleep(shareWait)
		clients, err := dialAll(proc.Addr, n)
		if err != nil {
			b.Fatal(err)
		}
		before, err := fanout.RelayStats(ctx, s.relay.URL())
		if err != nil {
			b.Fatal(err)
		}
		u0, err := proc.Usage()
		if err != nil {
			b.Fatal(err)
		}
		c0, _ := fanout.ReadUsage(os.Getpid())
		start := make(chan struct{})
		errs := make(chan error, n)
		snaps := make([]fanout.Snapshot, n)
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				<-start
				defer c.Close()
				if err := c.ReadHeader(); err != nil {
					errs <- err
					return
				}
				sn, err := c.ReadSnapshot()
				if err != nil {
					errs <- err
					return
				}
				snaps[i] = sn
			})
		}
		done := make(chan struct{})
		// One goroutine sends every request before any client reads, so
		// that they leave at once: 10^4 goroutines, each sending its own,
		// took over a second to, busy reading the first answers.
		b.StartTimer()
		t0 := time.Now()
		for _, c := range clients {
			if err := c.Send(fanout.Request{Prefix: calico.Prefix}); err != nil {
				b.Fatalf("sending a request: %v", err)
			}
		}
		close(start)
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(burstTimeout):
			b.Fatalf("%d clients did not all read the snapshot within %v", n, burstTimeout)
		}
		b.StopTimer()
		u1, _ := proc.Usage()
		c1, _ := fanout.ReadUsage(os.Getpid())
		close(errs)
		if err := <-errs; err != nil {
			b.Fatalf("a client failed: %v (%d failed)", err, len(errs)+1)
		}
		for i, sn := range snaps {
			if sn.Keys != s.keys {
				b.Fatalf("client %d read %d keys, want %d", i, sn.Keys, s.keys)
			}
		}
		after, err := fanout.RelayStats(ctx, s.relay.URL())
		if err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for _, c := range clients {
			if c.Sent.After(last) {
				last = c.Sent
			}
		}
		spread = last.Sub(t0)
		cpu, clientCPU = u1.CPU-u0.CPU, c1.CPU-c0.CPU
		built, shared = after.Relay.SnapshotsBuilt-before.Relay.SnapshotsBuilt, after.Relay.SnapshotsShared-before.Relay.SnapshotsShared
		perClient = float64(snaps[0].Bytes)
	}
	b.ReportMetric(cpu.Seconds(), "server-cpu-s")
	b.ReportMetric(clientCPU.Seconds(), "client-cpu-s")
	b.ReportMetric(perClient/1e6, "MB/client")
	b.ReportMetric(float64(n), "clients")
	b.ReportMetric(float64(spread)/float64(time.Millisecond), "last-request-ms")
	if !floor {
		b.ReportMetric(float64(built), "snapshots-built")
		b.ReportMetric(float64(shared), "snapshots-shared")
	}
}

// warmUp has n clients ask addr at once and hang up after the hello
// frame: the server process grows its goroutines, buffers and sockets to n
// off the clock, so that a first burst of n does not pay for it (measured:
// at 10^3 clients a fresh floor process took 2.6 s of CPU, 1.0 s the next
// time).
func warmUp(addr string, n int) error {
	clients, err := dialAll(addr, n)
	if err != nil {
		return err
	}
	defer closeAll(clients)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			err := c.Request(fanout.Request{Prefix: calico.Prefix})
			if err == nil {
				_, err = c.ReadHello()
			}
			if err != nil {
				errs <- err
			}
			_ = c.Close()
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// measureWire reads one snapshot stream, with or without zstd, and reports
// its size on the wire.
func measureWire(b *testing.B, zstd bool) {
	s := light.get(b)
	var sn fanout.Snapshot
	b.ResetTimer()
	for range b.N {
		var err error
		if sn, err = readOne(s.relay.Addr, zstd, nil); err != nil {
			b.Fatal(err)
		}
		if sn.Keys != s.keys {
			b.Fatalf("read %d keys, want %d", sn.Keys, s.keys)
		}
	}
	b.ReportMetric(float64(sn.Wire), "wire-bytes")
	b.ReportMetric(float64(sn.Wire)/float64(s.keys), "wire-B/key")
	b.ReportMetric(float64(sn.Bytes)/float64(sn.Wire), "ratio")
}

// position returns the relay's resume position now: the one on the
// snapshot-begin frame of a fresh stream.
func position(b *testing.B, addr string) wire.Position {
	var buf bytes.Buffer
	if _, err := readOne(addr, false, &buf); err != nil {
		b.Fatal(err)
	}
	dec := wire.NewDecoder(&buf, 0)
	for {
		f, err := dec.Next()
		if err != nil {
			b.Fatalf("no snapshot-begin frame in the stream: %v", err)
		}
		if f.Type == wire.TypeSnapshotBegin {
			if f.ClusterID == "" {
				b.Fatal("the relay's snapshot has no resume position")
			}
			return wire.Position{ClusterID: f.ClusterID, Revision: f.Revision, Digest: f.Digest}
		}
	}
}

// connect opens n clients to the relay at addr, with the ping feature, and
// has each read its snapshot, or resume from resume if it is set; each
// then follows the stream in its own goroutine, reporting writes to
// seen(i) (nil: none), until closed.
func connect(b *testing.B, addr string, n, keys int, resume *fanout.Request, seen func(i int) func(int, time.Time)) (clients []*fanout.Client, wait func()) {
	clients, err := dialAll(addr, n)
	if err != nil {
		b.Fatal(err)
	}
	req := fanout.Request{Prefix: calico.Prefix, Features: wire.FeaturePing}
	if resume != nil {
		req.ClusterID, req.Revision, req.Digest = resume.ClusterID, resume.Revision, resume.Digest
	}
	errs := make(chan error, n)
	var got, follow sync.WaitGroup
	got.Add(n)
	for i, c := range clients {
		follow.Go(func() {
			err := c.Request(req)
			if err == nil && resume != nil {
				var ok bool
				if ok, err = c.ReadHello(); err == nil && !ok {
					err = fmt.Errorf("the relay did not resume %s@%d", req.ClusterID, req.Revision)
				}
			} else if err == nil {
				var sn fanout.Snapshot
				if sn, err = c.ReadSnapshot(); err == nil && sn.Keys != keys {
					err = fmt.Errorf("read %d keys, want %d", sn.Keys, keys)
				}
			}
			got.Done()
			if err != nil {
				errs <- err
				return
			}
			f := func(int, time.Time) {}
			if seen != nil {
				f = seen(i)
			}
			_ = c.Follow(f)
		})
	}
	got.Wait()
	select {
	case err := <-errs:
		closeAll(clients)
		follow.Wait()
		b.Fatalf("a client failed: %v", err)
	default:
	}
	return clients, follow.Wait
}

// measureIdle holds idleClients clients at once, idle, and reports what
// each costs the relay beyond the first: its resident set and heap (after
// a GC), and CPU while idle (pings included). The first client reads a
// snapshot; the others resume from its position, as a client that
// reconnects does, so that the measurement does not move 10^4 snapshots:
// once written, a snapshot leaves nothing behind per client.
func measureIdle(b *testing.B) {
	s := light.get(b)
	n := max(2, idleClients)
	checkFiles(b, n)
	ctx := context.Background()
	url := s.relay.URL()
	for range b.N {
		b.StopTimer()
		var pos fanout.Request
		p := position(b, s.relay.Addr)
		pos.ClusterID, pos.Revision, pos.Digest = p.ClusterID, p.Revision, p.Digest
		if _, err := fanout.WaitRelay(ctx, url, func(st fanout.Stats) bool { return st.Relay.Clients == 0 }); err != nil {
			b.Fatal(err)
		}
		// The shared state: the view, the log, and a snapshot built. Then
		// n-1 more: n in all, the relay's default MaxClients at 10^4.
		one, waitOne := connect(b, s.relay.Addr, 1, s.keys, nil, nil)
		base := settle(b, url, 1)
		before, err := fanout.RelayStats(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		clients, wait := connect(b, s.relay.Addr, n-1, s.keys, &pos, nil)
		held := settle(b, url, n)
		saveProfiles(b, url, fmt.Sprintf("idle-%d", n), "heap", "goroutine")
		u0, _ := s.relay.Usage()
		time.Sleep(idleFor)
		u1, _ := s.relay.Usage()
		closeAll(clients)
		closeAll(one)
		wait()
		waitOne()
		extra := float64(max(1, n-1))
		b.ReportMetric(float64(n), "clients")
		b.ReportMetric(float64(held.rss-min(held.rss, base.rss))/extra/1024, "rss-KB/client")
		b.ReportMetric(float64(held.heap-min(held.heap, base.heap))/extra/1024, "heap-KB/client")
		b.ReportMetric(float64(held.stack-min(held.stack, base.stack))/extra/1024, "stack-KB/client")
		b.ReportMetric(float64(base.rss)/(1<<20), "base-rss-MB")
		b.ReportMetric(float64((u1.CPU-u0.CPU).Microseconds())/float64(n)/idleFor.Seconds(), "idle-cpu-us/client/s")
		b.ReportMetric(float64(fanout.FileLimit()), "nofile")
		after, err := fanout.RelayStats(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(after.Relay.Resumes-before.Relay.Resumes), "resumes")
	}
}

type memory struct{ rss, heap, stack uint64 }

// settle waits until the relay holds clients streams, lets it be idle for
// a moment, collects its garbage and returns its RSS and heap.
func settle(b *testing.B, url string, clients int) memory {
	ctx := context.Background()
	if _, err := fanout.WaitRelay(ctx, url, func(st fanout.Stats) bool { return st.Relay.Clients == clients }); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := fanout.RelayGC(ctx, url); err != nil {
		b.Fatal(err)
	}
	st, err := fanout.RelayStats(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	u, err := light.relay.Usage()
	if err != nil {
		b.Fatal(err)
	}
	return memory{rss: u.RSS, heap: st.HeapBytes, stack: st.StackBytes}
}

// writeKeys returns the keys the latency writes cycle through: 1000 of
// those already loaded, so that the key count does not change.
func writeKeys(n int) []string {
	kvs := calico.KVs(n)
	keys := make([]string, 0, 1000)
	for i := 0; i < len(kvs) && len(keys) < 1000; i += max(1, len(kvs)/1000) {
		keys = append(keys, kvs[i].Key)
	}
	return keys
}

// measureLightLatency connects n lightweight clients, writes at
// latencyRate for writeFor, and reports the time from each write's
// acknowledgement to the last client's sight of it.
func measureLightLatency(b *testing.B, n int) {
	s := light.get(b)
	checkFiles(b, n)
	api, err := bench.KeysAPI(s.endpoints, fanout.Writers)
	if err != nil {
		b.Fatal(err)
	}
	keys := writeKeys(s.keys)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		writes := latencyRate * int(writeFor/time.Millisecond) / 1000
		d := fanout.NewDeliveries(writes)
		s0, err := fanout.RelayStats(ctx, s.relay.URL())
		if err != nil {
			b.Fatal(err)
		}
		clients, wait := connect(b, s.relay.Addr, n, s.keys, nil, func(int) func(int, time.Time) { return d.Seen() })
		// A stream counts its snapshot sent once the flush returns, which
		// may be after the client has read it.
		before, err := fanout.WaitRelay(ctx, s.relay.URL(), func(st fanout.Stats) bool {
			return st.Relay.SnapshotsSent >= s0.Relay.SnapshotsSent+uint64(n)
		})
		if err != nil {
			b.Fatal(err)
		}
		u0, _ := s.relay.Usage()
		c0, _ := fanout.ReadUsage(os.Getpid())
		profiled := profileDuring(b, s.relay.URL(), fmt.Sprintf("latency-%d", n), writeFor)
		acks, rate := fanout.Write(ctx, api, keys, writes, latencyRate)
		drain(d, acks, n)
		profiled()
		u1, _ := s.relay.Usage()
		c1, _ := fanout.ReadUsage(os.Getpid())
		after, err := fanout.RelayStats(ctx, s.relay.URL())
		if err != nil {
			b.Fatal(err)
		}
		closeAll(clients)
		wait()
		reportLags(b, d, acks, n, rate)
		// Why writes go missing: the relay's watch fell out of etcd's
		// event window (lost sync, then a resync that delivers only each
		// key's latest value), or clients fell behind the log's start
		// (sent a fresh snapshot).
		b.ReportMetric(float64(after.LostSync-before.LostSync), "relay-lost-sync")
		b.ReportMetric(float64(after.Relay.SnapshotsSent-before.Relay.SnapshotsSent), "snapshots-resent")
		b.ReportMetric((u1.CPU - u0.CPU).Seconds(), "relay-cpu-s")
		// The clients and writers share the relay's cores: what they took.
		b.ReportMetric((c1.CPU - c0.CPU).Seconds(), "client-cpu-s")
		// Per write and client: the syscalls delivering one write to one
		// client (below 1 when a wake carries several writes).
		b.ReportMetric(float64(u1.WriteCalls-u0.WriteCalls)/float64(writes)/float64(n), "relay-syscw/write/client")
	}
}

// saveProfiles saves the relay's profiles names now into profileDir, as
// <prefix>-<name>.pprof, if profileDir is set.
func saveProfiles(b *testing.B, url, prefix string, names ...string) {
	if profileDir == "" {
		return
	}
	for _, name := range names {
		file := filepath.Join(profileDir, prefix+"-"+name+".pprof")
		if err := fanout.SaveProfile(context.Background(), url, name, file); err != nil {
			b.Fatal(err)
		}
	}
}

// profileDuring starts the relay's CPU, mutex and allocation profiles over
// the next d, if profileDir is set; the function it returns waits for
// them.
func profileDuring(b *testing.B, url, prefix string, d time.Duration) func() {
	if profileDir == "" {
		return func() {}
	}
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	errs := make(chan error, 3)
	for _, name := range []string{"profile", "mutex", "allocs"} {
		go func() {
			file := filepath.Join(profileDir, prefix+"-"+name+".pprof")
			errs <- fanout.SaveProfile(context.Background(), url, name+"?seconds="+secs, file)
		}()
	}
	return func() {
		for range 3 {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
}

// drain waits up to drainTimeout for every acknowledged write to reach
// every client.
func drain(d *fanout.Deliveries, acks []time.Time, clients int) {
	acked := 0
	for _, a := range acks {
		if !a.IsZero() {
			acked++
		}
	}
	deadline := time.Now().Add(drainTimeout)
	for d.Complete(len(acks), clients) < acked && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func reportLags(b *testing.B, d *fanout.Deliveries, acks []time.Time, clients int, rate float64) {
	lags, missed := d.Lags(acks, clients)
	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(rate, "writes/s")
	b.ReportMetric(float64(len(acks)), "writes")
	b.ReportMetric(ms(fanout.Quantile(lags, 0.5)), "lag-p50-ms")
	b.ReportMetric(ms(fanout.Quantile(lags, 0.99)), "lag-p99-ms")
	b.ReportMetric(ms(fanout.Quantile(lags, 1)), "lag-max-ms")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(float64(clients), "clients")
}

// fullHost is a full client's host: it keeps its view in a map, as a real
// host does, and, once armed, reports the writes it is given to seen (not
// before: its snapshot may hold an earlier run's writes). The syncer calls
// it one call at a time.
type fullHost struct {
	want int

	mu     sync.Mutex
	seen   func(int, time.Time) // nil until armed
	view   map[string]string
	inSync bool
	done   chan struct{}
	once   sync.Once
}

func newFullHost(want int) *fullHost {
	return &fullHost{want: want, view: make(map[string]string, want), done: make(chan struct{})}
}

// arm makes the host report writes to seen from now on.
func (h *fullHost) arm(seen func(int, time.Time)) {
	h.mu.Lock()
	h.seen = seen
	h.mu.Unlock()
}

func (h *fullHost) OnUpdates(updates []messages.Update) {
	now := time.Now()
	h.mu.Lock()
	for _, u := range updates {
		if u.Type == messages.UpdateTypeDeleted {
			delete(h.view, u.Key)
			continue
		}
		h.view[u.Key] = u.Value
		if rest, ok := strings.CutPrefix(u.Value, fanout.SeqMarker); ok && h.seen != nil {
			if seq, err := strconv.Atoi(rest); err == nil {
				h.seen(seq, now)
			}
		}
	}
	h.check()
	h.mu.Unlock()
}

func (h *fullHost) OnStatusUpdated(s messages.SyncStatus) {
	h.mu.Lock()
	h.inSync = s == messages.InSync
	h.check()
	h.mu.Unlock()
}

func (h *fullHost) check() {
	if h.inSync && len(h.view) >= h.want {
		h.once.Do(func() { close(h.done) })
	}
}

var _ messages.Callbacks = (*fullHost)(nil)

// Names of etcd's v2 store metrics.
const (
	etcdWatchers      = "etcd_debugging_store_watchers"
	etcdWatchRequests = "etcd_debugging_store_watch_requests_total"
)

// measureFull starts n full clients behind the relay (viaRelay) or straight
// at etcd, times them until all are in sync, then writes at fullRate for
// writeFor and reports the latency of the writes to the last client and
// what etcd saw: its watchers, and its watch requests over the writes.
func measureFull(b *testing.B, n int, viaRelay bool) {
	s := full.get(b)
	checkFiles(b, n)
	api, err := bench.KeysAPI(s.endpoints, fanout.Writers)
	if err != nil {
		b.Fatal(err)
	}
	keys := writeKeys(s.keys)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		writes := fullRate * int(writeFor/time.Millisecond) / 1000
		d := fanout.NewDeliveries(writes)
		cfg := supervisor.Config{Endpoints: s.endpoints, Prefix: calico.Prefix, Logger: quiet}
		if viaRelay {
			cfg = supervisor.Config{Relays: []string{s.relay.URL()}, Prefix: calico.Prefix, Logger: quiet}
		}
		system := supervisor.NewSystem(quiet)
		syncers := make([]*supervisor.Syncer, n)
		hosts := make([]*fullHost, n)
		start := time.Now()
		var startErr error
		for i := range n {
			hosts[i] = newFullHost(s.keys)
			if syncers[i], err = supervisor.Start(system, cfg, hosts[i]); err != nil {
				startErr = err
				break
			}
		}
		timeout := time.After(burstTimeout)
		inSync := 0
		if startErr == nil {
		wait:
			for _, h := range hosts {
				select {
				case <-h.done:
					inSync++
				case <-timeout:
					break wait
				}
			}
		}
		took := time.Since(start)
		m0, err0 := fanout.EtcdMetrics(ctx, s.endpoints[0], etcdWatchers, etcdWatchRequests)
		var acks []time.Time
		var rate float64
		var m1 map[string]float64
		var err1 error
		if startErr == nil && inSync == n {
			for _, h := range hosts {
				h.arm(d.Seen())
			}
			acks, rate = fanout.Write(ctx, api, keys, writes, fullRate)
			drain(d, acks, n)
			m1, err1 = fanout.EtcdMetrics(ctx, s.endpoints[0], etcdWatchers, etcdWatchRequests)
		}
		stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
		var wg sync.WaitGroup
		for _, sy := range syncers {
			if sy != nil {
				wg.Go(func() { _ = sy.Stop(stopCtx) })
			}
		}
		wg.Wait()
		cancel()
		system.Shutdown()
		switch {
		case startErr != nil:
			b.Fatalf("starting full client: %v", startErr)
		case inSync < n:
			b.Fatalf("%d of %d full clients in sync within %v", inSync, n, burstTimeout)
		case errors.Join(err0, err1) != nil:
			b.Fatalf("etcd metrics: %v", errors.Join(err0, err1))
		}
		b.ReportMetric(float64(took)/float64(time.Millisecond), "sync-ms")
		b.ReportMetric(m0[etcdWatchers], "etcd-watchers")
		b.ReportMetric(m1[etcdWatchRequests]-m0[etcdWatchRequests], "etcd-watch-requests")
		reportLags(b, d, acks, n, rate)
	}
}
