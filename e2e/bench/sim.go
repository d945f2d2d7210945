package bench

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

// SimKeys is how many Calico-shaped keys the simulated etcd holds for the
// large snapshot benchmarks.
const SimKeys = 1_000_000

var sims struct {
	mu  sync.Mutex
	byN map[int]*etcdsim.Server
}

// LoadedSim returns a simulated etcd holding calico.KVs(n) under
// calico.Prefix, loading it on first use and sharing it with every later
// caller in the process that asks for the same n. Readers only: a caller
// that writes into it must use its own (etcdsim.New plus Load).
func LoadedSim(n int) *etcdsim.Server {
	sims.mu.Lock()
	defer sims.mu.Unlock()
	if s, ok := sims.byN[n]; ok {
		return s
	}
	start := time.Now()
	kvs := calico.KVs(n)
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	s := etcdsim.New()
	s.Load(m)
	if sims.byN == nil {
		sims.byN = map[int]*etcdsim.Server{}
	}
	sims.byN[n] = s
	fmt.Fprintf(os.Stderr, "bench: loaded %d keys into the simulated etcd in %v\n", n, time.Since(start).Round(time.Millisecond))
	return s
}
