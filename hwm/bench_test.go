package hwm_test

import (
	"testing"

	"github.com/etcdsync/etcdsync/e2e/bench/hwmbench"
	"github.com/etcdsync/etcdsync/hwm"
)

// BenchmarkTracker measures the tracker on Calico-shaped keys; the seed's
// patricia-trie tracker runs the same code in e2e/seedbaseline.
func BenchmarkTracker(b *testing.B) {
	hwmbench.Run(b, func() hwmbench.Tracker { return hwm.New() })
}
