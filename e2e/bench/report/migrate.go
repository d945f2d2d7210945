package main

import (
	"fmt"
	"math"
)

// secMigrate is e2e/bench BenchmarkMigrate: `node migrate --once` on the
// snapshot etcd, against the v2 read floor and a bare v3 txn loader.
const secMigrate = "migrate"

// The goals of issue 24, as ratios of --once's time to each floor's.
const (
	migrateReadGoal  = 3.0
	migrateWriteGoal = 1.3
)

// migrateRuns are BenchmarkMigrate's node sub-benchmarks, by --parallel-txns.
var migrateRuns = []struct{ name, flags string }{
	{"Migrate/node-once-parallel-1", "--parallel-txns 1"},
	{"Migrate/node-once-parallel-4", "(defaults: --parallel-txns 4, --max-txn-ops 128)"},
	{"Migrate/node-once-parallel-8", "--parallel-txns 8"},
	{"Migrate/node-once-ops-32", "--max-txn-ops 32"},
	{"Migrate/node-once-ops-64", "--max-txn-ops 64"},
}

const nsPerSec = 1e9

func secs(v float64) string { return num(v) + " s" }

// migration renders section 7: the time to --once success on 10^5 keys
// against its two floors, and the revisions used per key written.
func migration(d *doc, run *Run) {
	res := run.Results[secMigrate]
	d.p("## 7. `node migrate --once`, v2 to v3")
	d.p("")
	d.p("Time from exec to the summary line, copying the 10^5 keys of the snapshot etcd's v2 store into its")
	d.p("own v3 store (emptied and compacted off the clock before each run), against two floors measured in")
	d.p("the same process: the v2 recursive GET (**read floor**, as in section 1) and a bare clientv3 loader")
	d.p("writing the same keys in the same 128-put txns one after another (**write floor**). `--once` also")
	d.p("reads both sides in full twice (the TTLs when it copies, and the final verification).")
	d.p("")
	d.commands(run.Commands[secMigrate])
	readFloor, writeFloor := res.Get("Migrate/read-floor", "ns/op"), res.Get("Migrate/write-floor", "ns/op")
	d.header("", "time", "vs read floor", "vs write floor", "v3 revisions per key")
	d.row("read floor", readFloor.Format(nsPerSec, secs), "1×", "—", "—")
	d.row("write floor", writeFloor.Format(nsPerSec, secs), ratio(writeFloor.Ratio(readFloor)), "1×",
		res.Get("Migrate/write-floor", "revisions/key").Format(one, num))
	best, bestName := math.NaN(), ""
	for _, r := range migrateRuns {
		t := res.Get(r.name, "ns/op")
		d.row(fmt.Sprintf("`--once` %s", r.flags), t.Format(nsPerSec, secs),
			ratio(t.Ratio(readFloor)), ratio(t.Ratio(writeFloor)), res.Get(r.name, "revisions/key").Format(one, num))
		if t.N > 0 && (math.IsNaN(best) || t.Median < best) {
			best, bestName = t.Median, r.name
		}
	}
	d.p("")
	if bestName == "" {
		return
	}
	t := res.Get(bestName, "ns/op")
	r, w := t.Ratio(readFloor), t.Ratio(writeFloor)
	d.p("Goals (issue 24), with the fastest setting: ≤ %s× the read floor: %s (%s); ≤ %s× the write floor: %s (%s).",
		num(migrateReadGoal), ratio(r), met(r, migrateReadGoal, false), num(migrateWriteGoal), ratio(w), met(w, migrateWriteGoal, false))
	d.p("")
}
