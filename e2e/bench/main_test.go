package bench_test

import (
	"os"
	"testing"

	"github.com/etcdsync/etcdsync/e2e/bench"
)

// TestMain only cleans up: etcd is started lazily, by the first benchmark
// that needs it, so that `go test ./...` starts none.
func TestMain(m *testing.M) {
	code := m.Run()
	bench.Shutdown()
	os.Exit(code)
}
