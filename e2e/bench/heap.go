package bench

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// heapObjects is the runtime metric sampled: bytes of heap memory occupied
// by objects, live or not yet swept.
const heapObjects = "/memory/classes/heap/objects:bytes"

// HeapSampler records the peak of the heap above a baseline, sampling every
// millisecond from its own goroutine. Start it, run the work, Stop it.
type HeapSampler struct {
	base uint64
	stop chan struct{}
	peak chan uint64
}

// StartHeapSampler collects garbage, takes the baseline, and starts
// sampling.
func StartHeapSampler() *HeapSampler {
	runtime.GC()
	h := &HeapSampler{stop: make(chan struct{}), peak: make(chan uint64, 1)}
	sample := []metrics.Sample{{Name: heapObjects}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	h.base = read()
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		peak := h.base
		for {
			select {
			case <-tick.C:
				peak = max(peak, read())
			case <-h.stop:
				h.peak <- max(peak, read())
				return
			}
		}
	}()
	return h
}

// Stop ends sampling and returns the peak in bytes above the baseline.
// Call it once.
func (h *HeapSampler) Stop() uint64 {
	close(h.stop)
	return <-h.peak - h.base
}

// LiveHeap collects garbage and returns the bytes of heap objects left:
// what is live.
func LiveHeap() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// Base returns the heap level the sampler's peak is measured above.
func (h *HeapSampler) Base() uint64 { return h.base }
