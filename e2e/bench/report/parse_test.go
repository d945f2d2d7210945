package main

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	out := `goos: linux
pkg: github.com/etcdsync/etcdsync/e2e/bench
BenchmarkSnapshot/floor-2         	       1	 958182502 ns/op	       230.6 peak-heap-MB	241764560 B/op	 1140683 allocs/op
BenchmarkSnapshot/floor-2         	       1	 824602662 ns/op	       147.2 peak-heap-MB	241732936 B/op	 1140144 allocs/op
BenchmarkTracker/Memory/keys=10000-2  	     159	   7088761 ns/op	        74.90 B/key	 1081336 B/op	   12816 allocs/op
BenchmarkSnapshot/floor-2         	       1	 900000000 ns/op	       150.0 peak-heap-MB	241732936 B/op	 1140144 allocs/op
--- BENCH: BenchmarkX
PASS
ok  	github.com/etcdsync/etcdsync/e2e/bench	11.622s
`
	res, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	floor := res.Get("Snapshot/floor", "ns/op")
	if floor.N != 3 || floor.Median != 900000000 || floor.Min != 824602662 || floor.Max != 958182502 {
		t.Errorf("floor = %+v", floor)
	}
	if got := res.Get("Tracker/Memory/keys=10000", "B/key"); got.Median != 74.90 {
		t.Errorf("B/key = %+v", got)
	}
	if got := res.Get("Snapshot/none", "ns/op"); got.N != 0 || !math.IsNaN(got.Ratio(floor)) {
		t.Errorf("missing = %+v", got)
	}
	if got := res.Get("Snapshot/floor", "peak-heap-MB").Ratio(Stat{Median: 75, N: 1}); got != 2 {
		t.Errorf("ratio = %v", got)
	}
}
