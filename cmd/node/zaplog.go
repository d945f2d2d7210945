package main

import (
	"context"
	"log/slog"
	"slices"

	"go.uber.org/zap/zapcore"
)

// zapToSlog is a zapcore.Core that writes through a slog.Logger, so that the
// embedded etcd's logs (zap) take the node's format and level and go to
// stderr with everything else. Entries below min are dropped before any
// field is encoded: etcd logs a lot at info.
type zapToSlog struct {
	logger *slog.Logger
	min    zapcore.Level
}

func (c zapToSlog) Enabled(l zapcore.Level) bool {
	return l >= c.min && c.logger.Enabled(context.Background(), slogLevel(l))
}

func (c zapToSlog) With(fields []zapcore.Field) zapcore.Core {
	return zapToSlog{logger: c.logger.With(zapArgs(fields)...), min: c.min}
}

func (c zapToSlog) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapToSlog) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slogLevel(e.Level)
	if level == slog.LevelWarn && expectedEtcdWarnings[e.Message] {
		level = slog.LevelDebug
	}
	c.logger.Log(context.Background(), level, e.Message, zapArgs(fields)...)
	return nil
}

// expectedEtcdWarnings are warnings the embedded etcd logs on every start or
// stop, about choices the node made on purpose (one port for HTTP and gRPC,
// no auth, the v2 API, closing its listeners); they are logged at debug so
// that the warnings left mean something.
var expectedEtcdWarnings = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
	"Flag `enable-v2` is deprecated and will get removed in etcd 3.6.":                     true,
	"stopping insecure grpc server due to error":                                           true,
	"stopped insecure grpc server due to error":                                            true,
}

func (zapToSlog) Sync() error { return nil }

var _ zapcore.Core = zapToSlog{}

// slogLevel maps a zap level to slog's; DPanic and above are errors.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// zapArgs turns zap fields into slog key-value pairs, sorted by key (zap's
// map encoder has no order).
func zapArgs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, enc.Fields[k])
	}
	return args
}
