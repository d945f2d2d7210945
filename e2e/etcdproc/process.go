package etcdproc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Grace periods before a SIGTERM'd etcd is killed: a graceful stop of
// etcd 3.5 waits up to about 7 s for open watch requests.
const (
	memberGrace = 10 * time.Second // StopMember, Restart, Backup: the data lives on
	finalGrace  = 2 * time.Second  // Stop: the data is thrown away or left
)

// process is one running etcd.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result; read only after done is closed
	out  *memberOutput
}

// spawnReq asks the spawner goroutine to start a command.
type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// startCmd starts cmd from one OS thread that lives as long as the test
// process. Pdeathsig fires when the *thread* that forked the child exits,
// not the process (golang/go#27505); the Go runtime retires threads whose
// locked goroutine ends, so forking from an arbitrary goroutine could kill
// etcd in the middle of a spec.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for r := range spawnCh {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}

// startProcess runs the etcd binary with args, its output going to out.
func startProcess(bin string, args []string, out *memberOutput) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = etcdEnv()
	// One writer for both streams: exec then uses a single pipe, so the
	// lines keep their order.
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startCmd(cmd); err != nil {
		return nil, fmt.Errorf("etcdproc: start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// etcdEnv is the test process's environment without ETCD_* variables,
// which etcd would read as flags.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits for the process to exit, escalating to
// SIGKILL after grace.
func (p *process) signal(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("etcdproc: signal %v to pid %d: %w", sig, p.cmd.Process.Pid, err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen member handles sig only once it runs
	p.wait(grace)
	return nil
}

// wait waits for the process to exit, killing it after grace.
func (p *process) wait(grace time.Duration) {
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// memberOutput copies a member's output to the caller's writer, each line
// prefixed with the member's name, and keeps the tail for error messages.
type memberOutput struct {
	prefix string
	mu     *sync.Mutex // shared by every member of a cluster: one line at a time
	w      io.Writer
	atBOL  bool

	tailMu sync.Mutex
	tail   []byte
}

const tailSize = 4096

func newMemberOutput(name string, w io.Writer, mu *sync.Mutex) *memberOutput {
	if w == nil {
		w = io.Discard
	}
	return &memberOutput{prefix: "[" + name + "] ", mu: mu, w: w, atBOL: true}
}

func (o *memberOutput) Write(p []byte) (int, error) {
	o.tailMu.Lock()
	o.tail = append(o.tail, p...)
	if len(o.tail) > tailSize {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-tailSize:]...)
	}
	o.tailMu.Unlock()

	o.mu.Lock()
	defer o.mu.Unlock()
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if o.atBOL {
			buf.WriteString(o.prefix)
		}
		buf.Write(line)
		o.atBOL = line[len(line)-1] == '\n'
	}
	// A failing test writer must not stop etcd: report success to exec.
	_, _ = o.w.Write(buf.Bytes())
	return len(p), nil
}

// Tail returns the last few kilobytes the member wrote.
func (o *memberOutput) Tail() string {
	o.tailMu.Lock()
	defer o.tailMu.Unlock()
	return string(o.tail)
}
