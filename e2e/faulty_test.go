package e2e_test

import (
	"context"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

func withLogger(cfg supervisor.Config) supervisor.Config {
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	return cfg
}

// recorderThatPanics returns a recorder whose OnUpdates panics whenever
// panics (if not nil) says so.
func recorderThatPanics(panics func([]messages.Update) bool) *recorder.Recorder {
	rec := recorder.New()
	rec.Panic = panics
	return rec
}

// startSyncerWithFaultyHost starts a syncer whose host panics on its first n
// OnUpdates calls.
func startSyncerWithFaultyHost(cfg supervisor.Config, n int32) *recorder.Recorder {
	GinkgoHelper()
	var calls atomic.Int32
	rec := recorderThatPanics(func([]messages.Update) bool { return calls.Add(1) <= n })
	s, err := supervisor.Start(system, withLogger(cfg), rec)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx context.Context) {
		Expect(s.Stop(ctx)).To(Succeed())
		rec.Close()
		Expect(rec.Violation()).NotTo(HaveOccurred())
	})
	return rec
}
