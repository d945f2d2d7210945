package seedbaseline_test

import (
	"testing"

	"github.com/etcdsync/etcdsync/e2e/bench/hwmbench"
	"github.com/etcdsync/etcdsync/e2e/seedbaseline"
)

// BenchmarkTracker runs hwm's tracker benchmarks on the seed's tracker.
func BenchmarkTracker(b *testing.B) {
	hwmbench.Run(b, func() hwmbench.Tracker { return seedbaseline.NewTracker() })
}

// TestTrackerAgreesOnBasics guards the restatement: the benchmarks only
// compare like with like if the baseline does the same work.
func TestTrackerAgreesOnBasics(t *testing.T) {
	tr := seedbaseline.NewTracker()
	tr.StoreUpdate("/foo/bar", 100)
	tr.StoreUpdate("/foobar/baz", 110)
	if got := tr.StoreDeletion("/foo", 130); len(got) != 1 || got[0] != "/foo/bar" {
		t.Fatalf("StoreDeletion(/foo) = %v", got)
	}
	tr.StartTrackingDeletions()
	tr.StoreDeletion("/x", 200)
	if got := tr.StoreUpdate("/x/y", 150); got != 200 {
		t.Fatalf("update below a tracked deletion returned %d, want 200", got)
	}
	tr.StopTrackingDeletions()
	if got := tr.DeleteOldKeys(111); len(got) != 1 || got[0] != "/foobar/baz" {
		t.Fatalf("DeleteOldKeys = %v", got)
	}
}
