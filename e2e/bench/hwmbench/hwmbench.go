// Package hwmbench measures a high-water-mark tracker on Calico-shaped keys.
// hwm's own benchmarks and the seed baseline module (e2e/seedbaseline) both
// call Run, so that the two trackers are measured by the same code on the
// same keys and their figures compare row for row.
//
// It is benchmark support only: it lives under e2e/ so that no production
// package can depend on it (.ci/layering.sh checks).
package hwmbench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/e2e/calico"
)

// Tracker is the part of a high-water-mark tracker the benchmarks use.
type Tracker interface {
	StoreUpdate(key string, modIdx uint64) (oldModIdx uint64)
	StoreDeletion(key string, modIdx uint64) (deletedKeys []string)
	DeleteOldKeys(limit uint64) (deletedKeys []string)
}

// Sizes are the key counts every benchmark runs at.
var Sizes = []int{10_000, 100_000, 1_000_000}

// vanishing is the share of keys a resync finds gone (one in vanishing).
const vanishing = 100

// Run runs every tracker benchmark at every size, each on a fresh tracker
// from newTracker.
func Run(b *testing.B, newTracker func() Tracker) {
	for _, n := range Sizes {
		keys := calico.Keys(n)
		hosts := hostKeys(keys)
		fill := func() Tracker {
			t := newTracker()
			for _, k := range keys {
				t.StoreUpdate(k, 1)
			}
			return t
		}
		size := fmt.Sprintf("keys=%d", n)

		b.Run("StoreUpdate/new/"+size, func(b *testing.B) {
			var t Tracker
			b.ReportAllocs()
			for i := range b.N {
				j := i % n
				if j == 0 {
					b.StopTimer()
					t = newTracker()
					b.StartTimer()
				}
				t.StoreUpdate(keys[j], 1)
			}
		})

		b.Run("StoreUpdate/existing/"+size, func(b *testing.B) {
			t := fill()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				t.StoreUpdate(keys[i%n], uint64(2+i))
			}
		})

		// One op deletes one host's directory (about 100 keys); the host is
		// put back, off the clock, before its next turn.
		b.Run("StoreDeletion/host/"+size, func(b *testing.B) {
			t := fill()
			idx := uint64(2)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h := hosts[i%len(hosts)]
				idx++
				if got := t.StoreDeletion(h.dir, idx); len(got) != len(h.keys) {
					b.Fatalf("deleting %s removed %d keys, want %d", h.dir, len(got), len(h.keys))
				}
				b.StopTimer()
				idx++
				for _, k := range h.keys {
					t.StoreUpdate(k, idx)
				}
				b.StartTimer()
			}
		})

		// One op is the sweep after a resync at which every key but one in
		// vanishing was refreshed; the refresh is off the clock.
		b.Run("DeleteOldKeys/resync/"+size, func(b *testing.B) {
			t := fill()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				snap := uint64(2 + i)
				for j, k := range keys {
					if j%vanishing != i%vanishing {
						t.StoreUpdate(k, snap)
					}
				}
				b.StartTimer()
				t.DeleteOldKeys(snap)
			}
		})

		// Heap held by a tracker of n keys, beyond the key strings the caller
		// already holds.
		b.Run("Memory/"+size, func(b *testing.B) {
			var perKey float64
			for range b.N {
				before := heapInUse()
				t := fill()
				perKey = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(t)
			}
			b.ReportMetric(perKey, "B/key")
		})
	}
}

type host struct {
	dir  string
	keys []string
}

// hostKeys groups the keys below each host directory.
func hostKeys(keys []string) []host {
	byDir := map[string][]string{}
	var dirs []string
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, calico.Prefix+"/host/")
		if !ok {
			continue
		}
		dir := calico.Prefix + "/host/" + rest[:strings.IndexByte(rest, '/')]
		if _, seen := byDir[dir]; !seen {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], k)
	}
	hosts := make([]host, len(dirs))
	for i, d := range dirs {
		hosts[i] = host{d, byDir[d]}
	}
	return hosts
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
