package bench_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

var quiet = slog.New(slog.DiscardHandler)

// startSyncer returns a bench.StartFunc for etcdsync in process: a fresh
// actor system and syncer per call, both stopped by the returned stop.
func startSyncer(cfg supervisor.Config) bench.StartFunc {
	cfg.Logger = quiet
	return func(cb messages.Callbacks) (func() error, error) {
		system := supervisor.NewSystem(quiet)
		s, err := supervisor.Start(system, cfg, cb)
		if err != nil {
			system.Shutdown()
			return nil, err
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := s.Stop(ctx)
			system.Shutdown()
			return err
		}, nil
	}
}

// SlowHostDelay is what the slow host of BenchmarkSnapshot spends per
// update: several times what the syncer needs to decode and merge one, so
// that the host falls behind the snapshot all the way.
const SlowHostDelay = 10 * time.Microsecond

// BenchmarkSnapshot measures how long it takes to learn the Calico-shaped
// keys of a real etcd (10^5, or ETCDSYNC_BENCH_KEYS): the raw transfer (the
// recursive GET over net/http, body discarded), the floor (a bare
// client/v2 GET and walk), etcdsync in process (supervisor.Start to InSync
// with every key delivered), the same with a host that keeps every key and
// value (held), and slowly (slowhost), and the reference node process (exec
// to the first 200 from /readyz, start-up included). The seed-style syncer
// runs the same floors and measurement in e2e/seedbaseline.
func BenchmarkSnapshot(b *testing.B) {
	endpoints := bench.SnapshotEtcd(b)
	want := bench.SnapshotKeyCount()
	bench.WarmUp(b, endpoints[0], calico.Prefix)
	b.Run("raw", func(b *testing.B) {
		bench.MeasureRawFloor(b, endpoints[0], calico.Prefix)
	})
	b.Run("floor", func(b *testing.B) {
		keys, err := bench.KeysAPI(endpoints, 2)
		if err != nil {
			b.Fatal(err)
		}
		bench.MeasureFloor(b, keys, calico.Prefix, want)
	})
	b.Run("syncer", func(b *testing.B) {
		bench.MeasureSnapshot(b, want, startSyncer(supervisor.Config{Endpoints: endpoints}))
	})
	b.Run("held", func(b *testing.B) {
		bench.MeasureHeld(b, want, 0, startSyncer(supervisor.Config{Endpoints: endpoints}))
	})
	b.Run("slowhost", func(b *testing.B) {
		bench.MeasureHeld(b, want, SlowHostDelay, startSyncer(supervisor.Config{Endpoints: endpoints}))
	})
	b.Run("node", func(b *testing.B) {
		measureNode(b, nodeBinary(b), endpoints)
	})
}

// BenchmarkSnapshotSim is BenchmarkSnapshot's floor and in-process syncer
// on 10^6 keys in the simulated etcd (e2e/etcdsim), which hands over its
// answer as client.Nodes: no HTTP, no JSON.
func BenchmarkSnapshotSim(b *testing.B) {
	sim := bench.LoadedSim(bench.SimKeys)
	b.Run("floor", func(b *testing.B) {
		bench.MeasureFloor(b, sim, calico.Prefix, bench.SimKeys)
	})
	b.Run("syncer", func(b *testing.B) {
		bench.MeasureSnapshot(b, bench.SimKeys, startSyncer(supervisor.Config{KeysAPI: sim}))
	})
}

// EnvNode names the environment variable holding the node binary to
// measure; "none" skips the node benchmark. Unset, the benchmark builds
// ./cmd/node itself.
const EnvNode = "ETCDSYNC_BENCH_NODE"

var nodeBuild struct {
	once sync.Once
	path string
	err  error
}

func nodeBinary(b *testing.B) string {
	nodeBuild.once.Do(func() {
		if p := os.Getenv(EnvNode); p != "" {
			if p == "none" {
				nodeBuild.err = errors.New(EnvNode + "=none")
			}
			nodeBuild.path = p
			return
		}
		dir, err := os.MkdirTemp("", "etcdsync-bench-node-*")
		if err != nil {
			nodeBuild.err = err
			return
		}
		nodeBuild.path = filepath.Join(dir, "node")
		out, err := exec.Command("go", "build", "-o", nodeBuild.path, "github.com/etcdsync/etcdsync/cmd/node").CombinedOutput()
		if err != nil {
			nodeBuild.err = fmt.Errorf("go build ./cmd/node: %v: %s", err, out)
		}
	})
	if nodeBuild.err != nil {
		b.Skipf("no node binary: %v", nodeBuild.err)
	}
	return nodeBuild.path
}

// measureNode times the node binary, given extra flags after its own, from
// exec to the first 200 from /readyz, polled every 2 ms, b.N times. It
// reports the process's peak resident set at that moment ("peak-rss-MB").
// The SIGTERM and the wait for the exit are off the clock.
func measureNode(b *testing.B, bin string, endpoints []string, extra ...string) {
	hc := &http.Client{Timeout: time.Second}
	var rss float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		var stderr tail
		args := append([]string{"--etcd-endpoints", strings.Join(endpoints, ","), "--output", "none",
			"--listen", "127.0.0.1:" + port}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		exited := make(chan error, 1)
		ready := "http://127.0.0.1:" + port + "/readyz"
		deadline := time.Now().Add(bench.SnapshotTimeout)
		b.StartTimer()
		if err := cmd.Start(); err != nil {
			b.Fatalf("starting %s: %v", bin, err)
		}
		go func() { exited <- cmd.Wait() }()
		tick := time.NewTicker(2 * time.Millisecond)
		var failure error
	poll:
		for {
			if isOK(hc, ready) {
				break
			}
			select {
			case <-tick.C:
				if time.Now().After(deadline) {
					failure = fmt.Errorf("no 200 from /readyz within %v", bench.SnapshotTimeout)
					break poll
				}
			case err := <-exited:
				failure = fmt.Errorf("node exited before it was ready: %v", err)
				exited <- err
				break poll
			}
		}
		b.StopTimer()
		tick.Stop()
		rss = max(rss, peakRSS(cmd.Process.Pid))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil && failure == nil {
				failure = fmt.Errorf("node exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			if failure == nil {
				failure = errors.New("node did not exit within 30 s of SIGTERM")
			}
		}
		if failure != nil {
			b.Fatalf("%v; its stderr ends with:\n%s", failure, stderr.String())
		}
	}
	b.ReportMetric(rss, "peak-rss-MB")
}

func isOK(hc *http.Client, url string) bool {
	resp, err := hc.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// peakRSS returns the peak resident set of process pid in MiB (VmHWM), or
// 0 if it cannot be read.
func peakRSS(pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}

// tail keeps the last 4 KiB written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 4096; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
