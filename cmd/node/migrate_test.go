package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// node migrate's usage promises exit 0 for a mirror stopped by a signal,
// and exit 1 for a --once stopped before it verified: also when the signal
// comes while it is still checking the source.
func TestRunMigrateStoppedWhileStarting(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("terminated"))
	for _, tc := range []struct {
		once bool
		code int
		say  string
	}{
		{false, exitOK, `msg="stopped while the v2 source was starting" cmd=migrate cause=terminated`},
		{true, exitFailed, "stopped (terminated) before the copy was verified"},
	} {
		args := []string{"--etcd-endpoints", "http://127.0.0.1:1", "--listen", "127.0.0.1:0"}
		if tc.once {
			args = append(args, "--once")
		}
		var stdout, stderr syncBuffer
		if code := runMigrate(ctx, args, env(nil), &stdout, &stderr); code != tc.code {
			t.Errorf("--once=%v: exit %d, want %d; stderr:\n%s", tc.once, code, tc.code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.say) || stdout.String() != "" {
			t.Errorf("--once=%v: stderr does not say %q, or stdout is not empty:\nstdout %q\nstderr %s",
				tc.once, tc.say, stdout.String(), stderr.String())
		}
	}
}
