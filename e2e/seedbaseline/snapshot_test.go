package seedbaseline_test

import (
	"os"
	"testing"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/seedbaseline"
	"github.com/etcdsync/etcdsync/messages"
)

// TestMain only cleans up: etcd is started lazily, by the first benchmark
// that needs it.
func TestMain(m *testing.M) {
	code := m.Run()
	bench.Shutdown()
	os.Exit(code)
}

// startSeed returns a bench.StartFunc for the seed-style syncer reading
// through keys.
func startSeed(keys client.KeysAPI) bench.StartFunc {
	return func(cb messages.Callbacks) (func() error, error) {
		s := seedbaseline.NewSyncer(keys, calico.Prefix, cb)
		s.Start()
		return func() error { s.Stop(); return nil }, nil
	}
}

// BenchmarkSnapshot is e2e/bench's BenchmarkSnapshot for the seed-style
// syncer: the same floors (raw transfer, GET and walk) and the same measurement on the same etcd (the one
// ETCDSYNC_BENCH_ETCD names, when bench.sh runs it).
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
	b.Run("seed", func(b *testing.B) {
		keys, err := bench.KeysAPI(endpoints, 2)
		if err != nil {
			b.Fatal(err)
		}
		bench.MeasureSnapshot(b, want, startSeed(keys))
	})
}

// BenchmarkSnapshotSim is e2e/bench's BenchmarkSnapshotSim for the
// seed-style syncer: 10^6 keys in the simulated etcd.
func BenchmarkSnapshotSim(b *testing.B) {
	sim := bench.LoadedSim(bench.SimKeys)
	b.Run("floor", func(b *testing.B) {
		bench.MeasureFloor(b, sim, calico.Prefix, bench.SimKeys)
	})
	b.Run("seed", func(b *testing.B) {
		bench.MeasureSnapshot(b, bench.SimKeys, startSeed(sim))
	})
}
