package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakePart records its starts and stops in a shared journal.
type fakePart struct {
	id       string
	journal  *[]string
	startErr error
	stopErr  error
	// cancel, if set, is called as the part starts: a signal arriving
	// while it starts.
	cancel func()
}

func (f *fakePart) name() string { return f.id }

func (f *fakePart) start(ctx context.Context) error {
	*f.journal = append(*f.journal, "start "+f.id)
	if f.cancel != nil {
		f.cancel()
		return context.Cause(ctx)
	}
	return f.startErr
}

func (f *fakePart) stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		*f.journal = append(*f.journal, "stop "+f.id+" without a deadline")
	}
	*f.journal = append(*f.journal, "stop "+f.id)
	return f.stopErr
}

func newTestComponents(journal *[]string, parts ...*fakePart) (*components, *bytes.Buffer) {
	var logs bytes.Buffer
	cs := newComponents(slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	for _, p := range parts {
		p.journal = journal
		cs.add(p)
	}
	return cs, &logs
}

func TestComponentsStartInOrderStopInReverse(t *testing.T) {
	var journal []string
	cs, logs := newTestComponents(&journal, &fakePart{id: "a"}, &fakePart{id: "b", stopErr: errors.New("stuck")}, &fakePart{id: "c"})
	ctx, cancel := context.WithCancel(context.Background())
	if err := cs.start(ctx); err != nil {
		t.Fatalf("start = %v", err)
	}
	cancel() // the node's context ends; each stop still gets a deadline of its own
	cs.stop(ctx)
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if !slices.Equal(journal, want) {
		t.Errorf("journal %q, want %q", journal, want)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="stopping the b" err=stuck`) {
		t.Errorf("a failed stop is not logged as a warning naming the part:\n%s", logs)
	}
	cs.stop(ctx)
	if len(journal) != len(want) {
		t.Errorf("a second stop stopped parts again: %q", journal)
	}
}

// A part that cannot start: those started before it stop, in reverse; those
// after it never start; its error is start's.
func TestComponentsStartFailureStopsWhatStarted(t *testing.T) {
	var journal []string
	bad := errors.New("port taken")
	cs, _ := newTestComponents(&journal, &fakePart{id: "a"}, &fakePart{id: "b"}, &fakePart{id: "c", startErr: bad}, &fakePart{id: "d"})
	if err := cs.start(context.Background()); !errors.Is(err, bad) {
		t.Errorf("start = %v, want %v", err, bad)
	}
	want := []string{"start a", "start b", "start c", "stop b", "stop a"}
	if !slices.Equal(journal, want) {
		t.Errorf("journal %q, want %q", journal, want)
	}
}

// A signal while a part starts is no failure: start says so, and logs it.
func TestComponentsStartStoppedBySignal(t *testing.T) {
	var journal []string
	ctx, cancel := context.WithCancelCause(context.Background())
	signalled := errors.New("terminated")
	cs, logs := newTestComponents(&journal, &fakePart{id: "a"}, &fakePart{id: "embedded etcd", cancel: func() { cancel(signalled) }})
	if err := cs.start(ctx); !errors.Is(err, errStoppedStarting) {
		t.Errorf("start = %v, want errStoppedStarting", err)
	}
	if want := []string{"start a", "start embedded etcd", "stop a"}; !slices.Equal(journal, want) {
		t.Errorf("journal %q, want %q", journal, want)
	}
	if !strings.Contains(logs.String(), `msg="stopped while the embedded etcd was starting" cause=terminated`) {
		t.Errorf("no line says what was starting:\n%s", logs)
	}
}

// wait ends on the first failure a running part reports; later ones, which
// are likely its consequences, are dropped, and reporting never blocks.
func TestComponentsWaitReturnsTheFirstFailure(t *testing.T) {
	var journal []string
	cs, _ := newTestComponents(&journal, &fakePart{id: "a"})
	first, second := errors.New("first"), errors.New("second")
	done := make(chan struct{})
	go func() {
		defer close(done)
		cs.fail(first)
		cs.fail(second)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("fail blocked")
	}
	if err := cs.wait(context.Background()); !errors.Is(err, first) {
		t.Errorf("wait = %v, want %v", err, first)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := cs.wait(ctx); err != nil {
		t.Errorf("wait after ctx is done = %v, want nil (the second failure is dropped)", err)
	}
}
