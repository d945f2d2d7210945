package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lg := zap.New(zapToSlog{logger: logger, min: zapcore.WarnLevel}).With(zap.String("member", "m0"))
	lg.Info("chatty")
	lg.Warn("disk slow", zap.Duration("took", 1500000000), zap.Int("n", 3))
	lg.Warn("simple token is not cryptographically signed") // expected: demoted to debug
	lg.Error("failed", zap.Error(errString("boom")))
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="disk slow" member=m0 n=3 took=1.5s`,
		`level=DEBUG msg="simple token is not cryptographically signed" member=m0`,
		`level=ERROR msg=failed member=m0 error=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatty") {
		t.Errorf("an info entry got through:\n%s", out)
	}

	buf.Reset()
	quiet := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	zap.New(zapToSlog{logger: quiet, min: zapcore.WarnLevel}).Warn("disk slow")
	if buf.Len() != 0 {
		t.Errorf("--log-level error let a warning through: %s", buf.String())
	}
}

type errString string

func (e errString) Error() string { return string(e) }
