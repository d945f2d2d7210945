package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The bar the project sets for the node process against the snapshot floor.
const nodeBar = 1.25

// The goals of the issue "Snapshots at the speed of the wire", as ratios
// to the raw transfer measured in the same run, and absolute for the rest.
const (
	inProcessGoal = 1.25    // etcdsync in process to in-sync, × raw transfer
	nodeGoal      = 1.35    // node process, start-up included, × raw transfer
	mergeGoal     = 2e6     // Merge/watch events/s
	beyondGoal    = 150     // peak heap beyond the host's copy at 10^6 keys, B/key
	largeKeys     = 1000000 // BENCH_LARGE's key count
)

// num prints v with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func ratio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

const (
	nsPerMs = 1e6
	one     = 1
)

type doc struct{ strings.Builder }

// p writes one line: format with args, or format as it is if there are none.
func (d *doc) p(format string, args ...any) {
	if len(args) == 0 {
		d.WriteString(format + "\n")
		return
	}
	fmt.Fprintf(&d.Builder, format+"\n", args...)
}

func (d *doc) row(cells ...string) { d.p("| %s |", strings.Join(cells, " | ")) }

func (d *doc) header(cells ...string) {
	d.row(cells...)
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	d.row(seps...)
}

func (d *doc) commands(cmds []string) {
	if len(cmds) == 0 {
		d.p("_(not run)_")
		d.p("")
		return
	}
	d.p("```sh")
	for _, c := range cmds {
		d.p("%s", c)
	}
	d.p("```")
	d.p("")
}

// Render returns BENCHMARKS.md for run.
func Render(run *Run) string {
	var d doc
	m := run.Meta
	d.p("# Benchmarks")
	d.p("")
	d.p("Written by `make bench` (`e2e/bench/bench.sh`, then `go run ./e2e/bench/report`); do not edit by hand.")
	d.p("Every figure below comes from one run on one machine. Each cell is the median of the runs, with")
	d.p("the minimum and maximum in brackets; each ratio divides one median by the median of the floor")
	d.p("measured in the same run. On shared machines absolute times drift from run to run: read the ratios.")
	d.p("")
	d.header("run", "")
	for _, kv := range [][2]string{
		{"date", m["date"]},
		{"CPUs (`nproc`)", m["nproc"]},
		{"CPU", m["cpu"]},
		{"Go", m["go"]},
		{"etcd", m["etcd"]},
		{"etcd 3.7 (section 6)", orNot(m["etcd37"])},
		{"load average at start (1, 5, 15 min)", m["load-start"]},
		{"load average at end", m["load-end"]},
		{"snapshot etcd, 10^5 keys", orNot(m["snapshot-etcd-100000"])},
		{"snapshot etcd, 10^6 keys (`BENCH_LARGE=1`)", orNot(m["snapshot-etcd-1000000"])},
		{"v3 snapshot etcd 3.5, 10^5 keys", orNot(m["snapshot-etcd-100000-v3.5"])},
		{"v3 snapshot etcd 3.7, 10^5 keys", orNot(m["snapshot-etcd-100000-v3.7"])},
		{"v3 snapshot etcd 3.5, 10^6 keys (`BENCH_LARGE=1`)", orNot(m["snapshot-etcd-1000000-v3.5"])},
		{"v3 snapshot etcd 3.7, 10^6 keys (`BENCH_LARGE=1`)", orNot(m["snapshot-etcd-1000000-v3.7"])},
		{"sections run (`BENCH_SECTIONS`)", orNot(m["sections"])},
		{"`make bench` took", m["duration"]},
	} {
		d.row(kv[0], kv[1])
	}
	d.p("")
	if load, err := strconv.ParseFloat(strings.Fields(m["load-start"] + " x")[0], 64); err == nil && load >= 0.5 {
		d.p("> The machine was already busy when the run started (1-minute load %s on %s CPUs): other work", num(load), m["nproc"])
		d.p("> shared the CPUs with the benchmarks, so expect wider min–max ranges than on an idle machine.")
		d.p("")
	}
	if load, err := strconv.ParseFloat(strings.Fields(m["load-end"] + " x")[0], 64); err == nil && load >= 2*nprocOr(m["nproc"], 1) {
		d.p("> **The machine was loaded during the run**: the 1-minute load was %s at its end on %s CPUs, so", num(load), m["nproc"])
		d.p("> the benchmarks got a fraction of the CPUs, unevenly; take the ratios, not the times, and only")
		d.p("> the differences well outside the min–max ranges.")
		d.p("")
	}
	if secs := strings.Fields(m["sections"]); len(secs) > 0 {
		var left []string
		for _, s := range []string{"snapshot", "sim", "watch", "merge", "hwm", "fanout", "v3"} {
			if !slices.Contains(secs, s) {
				left = append(left, s)
			}
		}
		if len(left) > 0 {
			d.p("> Not run this time (`BENCH_SECTIONS`, `BENCH_FANOUT=0`): %s. Their cells show \"—\".", strings.Join(left, ", "))
			d.p("")
		}
	}
	if f := m["failed"]; f != "" {
		d.p("> **Some measurements failed in this run** (%s): their cells show \"—\" or fewer runs.", f)
		d.p("")
	}
	goals(&d, run)
	snapshots(&d, run)
	simSnapshot(&d, run)
	watch(&d, run)
	merge(&d, run)
	hwm(&d, run)
	fanout(&d, run)
	v3Section(&d, run)
	migration(&d, run)
	return d.String()
}

// nprocOr returns s as a number of CPUs, or def if it is not one.
func nprocOr(s string, def float64) float64 {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 {
		return n
	}
	return def
}

func orNot(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

// met says whether v is within goal (at most, or at least if atLeast).
func met(v, goal float64, atLeast bool) string {
	switch {
	case math.IsNaN(v):
		return "not measured"
	case atLeast && v >= goal, !atLeast && v <= goal:
		return "**met**"
	}
	return "**missed**"
}

// goals summarises the goals with this run's figures.
func goals(d *doc, run *Run) {
	d.p("## Goals")
	d.p("")
	d.p("Each ratio is the median over rounds of the candidate's time divided by the raw transfer's (the")
	d.p("recursive GET over `net/http`, body discarded) measured in the same round; the v3 rows (section 6)")
	d.p("divide by one unpaginated `clientv3` `Get` of the prefix from the same etcd in the same round.")
	d.p("")
	d.header("goal", "10^5 keys", "10^6 keys", "verdict")
	small, large := run.Results[secSnapshot], run.Results[secLarge]
	rawRatio := func(r Results, name string) float64 {
		s := r.Paired(name, "Snapshot/raw", "ns/op")
		if s.N == 0 {
			return math.NaN()
		}
		return s.Median
	}
	worst := func(a, b float64) float64 {
		switch {
		case math.IsNaN(a):
			return b
		case math.IsNaN(b):
			return a
		}
		return math.Max(a, b)
	}
	in5, in6 := rawRatio(small, "Snapshot/syncer"), rawRatio(large, "Snapshot/syncer")
	d.row(fmt.Sprintf("in process to in-sync ≤ %.2f× raw transfer", inProcessGoal), ratio(in5), ratio(in6), met(worst(in5, in6), inProcessGoal, false))
	n5, n6 := rawRatio(small, "Snapshot/node"), rawRatio(large, "Snapshot/node")
	d.row(fmt.Sprintf("node process, start-up included, ≤ %.2f× raw transfer", nodeGoal), ratio(n5), ratio(n6), met(worst(n5, n6), nodeGoal, false))
	mw := run.Results[secMerge].Get("Merge/watch", "events/s")
	mwv := math.NaN()
	if mw.N > 0 {
		mwv = mw.Median
	}
	mwText := "not measured"
	if mw.N > 0 {
		mwText = fmt.Sprintf("%s events/s: %s", num(mwv), met(mwv, mergeGoal, true))
	}
	d.row("Merge/watch ≥ 2 M events/s", "—", "—", mwText)
	b5, b6 := small.Get("Snapshot/held", "beyond-host-B/key"), large.Get("Snapshot/held", "beyond-host-B/key")
	b6v := math.NaN()
	if b6.N > 0 {
		b6v = b6.Median
	}
	d.row(fmt.Sprintf("peak heap beyond the host's copy ≤ %d B/key at 10^6 keys", beyondGoal), b5.Format(one, num)+" B/key", b6.Format(one, num)+" B/key", met(b6v, beyondGoal, false))
	fanoutGoals(d, run.Results[secFanout])
	v3Goals(d, run)
	d.p("")
}

func snapshots(d *doc, run *Run) {
	d.p("## 1. Snapshot to in-sync")
	d.p("")
	d.p("### 10^5 Calico-shaped keys, one real etcd member")
	d.p("")
	d.p("The keys (`calico.KVs(100000)`) are loaded once, with 32 writers, into an etcd that every process")
	d.p("below reads. Each round measures the floors, then the candidates, in one process per module, the two")
	d.p("modules alternating; a candidate's ratio is taken within each round (so that a busy spell of the")
	d.p("machine hits both sides of it), and the table gives the median of the rounds, with their range.")
	d.p("")
	d.commands(append(run.Commands[secSnapshot], run.Commands[secSnapshotSeed]...))
	d.p("- **raw transfer**: the same recursive GET over Go's `net/http`, its body read into `io.Discard`,")
	d.p("  nothing decoded: the physical floor (etcd's own work to answer, and the bytes on the wire).")
	d.p("- **floor**: a bare client/v2 recursive GET of `/calico/v1` and a walk of its nodes counting leaves.")
	d.p("- **etcdsync in process**: `supervisor.Start` to the host's callbacks holding every key and `in-sync`;")
	d.p("  a fresh actor system per run, stopped (off the clock) after it. The host only counts.")
	d.p("- **etcdsync, host keeps its view**: the same with a host that keeps every key and value in a map;")
	d.p("  **slow host** the same host sleeping 10 µs per update, so that it falls behind the snapshot.")
	d.p("- **node process**: exec of `cmd/node --output none` to the first 200 from `/readyz` (polled every")
	d.p("  2 ms), start-up included; its memory is the process's peak RSS, not heap.")
	d.p("- **seed-style syncer**: `seedbaseline.Syncer`, the seed's four goroutines and channels, its patricia")
	d.p("  tracker and one host call per key, measured by the same code; its floors are measured next to it.")
	d.p("")
	realSnapshot(d, run.Results[secSnapshot], run.Results[secSnapshotSeed], true)
	if run.NodeBuild != "" {
		d.p("`go build ./cmd/node` failed:")
		d.p("")
		d.p("```")
		d.p("%s", run.NodeBuild)
		d.p("```")
		d.p("")
	}

	d.p("### 10^6 Calico-shaped keys, one real etcd member (`BENCH_LARGE=1`)")
	d.p("")
	if len(run.Commands[secLarge]) == 0 && len(run.Results[secLarge]) == 0 {
		d.p("_(not run: `BENCH_LARGE=1 make bench` runs it, about 10 minutes more)_")
		d.p("")
	} else {
		d.p("The same benchmarks on `calico.KVs(1000000)` (about 600 MB of JSON), loaded once into a second etcd")
		d.p("(its own snapshots put off until the load is done), in fewer rounds.")
		d.p("")
		d.commands(run.Commands[secLarge])
		realSnapshot(d, run.Results[secLarge], run.Results[secLargeSeed], false)
	}
}

// realSnapshot writes the tables of one key count on real etcd.
func realSnapshot(d *doc, main, seed Results, bar bool) {
	floor := main.Get("Snapshot/floor", "ns/op")
	seedFloor := seed.Get("Snapshot/floor", "ns/op")
	// Each round measured the floors next to every candidate: divide within
	// the round, then take the median of the rounds.
	paired := func(r Results, name, base string) string {
		return r.Paired(name, base, "ns/op").Format(one, func(v float64) string { return ratio(v) })
	}
	heap := func(r Results, name string) string { return r.Get(name, "peak-heap-MB").Format(one, num) }
	calls := func(r Results, name string) string { return r.Get(name, "calls").Format(one, num) }
	d.header("", "time to in-sync, ms", "× raw transfer, per round", "× floor, per round", "host calls (OnUpdates)", "peak heap above start, MB")
	row := func(r Results, label, name, mem string) {
		d.row(label, r.Get(name, "ns/op").Format(nsPerMs, num), paired(r, name, "Snapshot/raw"), paired(r, name, "Snapshot/floor"), calls(r, name), mem)
	}
	d.row("raw transfer", main.Get("Snapshot/raw", "ns/op").Format(nsPerMs, num), "1×", paired(main, "Snapshot/raw", "Snapshot/floor"), "—",
		heap(main, "Snapshot/raw")+" ("+main.Get("Snapshot/raw", "body-MB").Format(one, num)+" MB body)")
	d.row("floor", floor.Format(nsPerMs, num), paired(main, "Snapshot/floor", "Snapshot/raw"), "1×", "—", heap(main, "Snapshot/floor"))
	row(main, "etcdsync in process", "Snapshot/syncer", heap(main, "Snapshot/syncer"))
	row(main, "etcdsync, host keeps its view", "Snapshot/held", heap(main, "Snapshot/held"))
	row(main, "etcdsync, slow host", "Snapshot/slowhost", heap(main, "Snapshot/slowhost"))
	nodeHeap := "—"
	if s := main.Get("Snapshot/node", "peak-rss-MB"); s.N > 0 {
		nodeHeap = s.Format(one, num) + " (RSS)"
	}
	row(main, "node process", "Snapshot/node", nodeHeap)
	d.row("raw transfer, beside the seed", seed.Get("Snapshot/raw", "ns/op").Format(nsPerMs, num), "1×", paired(seed, "Snapshot/raw", "Snapshot/floor"), "—", heap(seed, "Snapshot/raw"))
	d.row("floor, beside the seed", seedFloor.Format(nsPerMs, num), paired(seed, "Snapshot/floor", "Snapshot/raw"), "1×", "—", heap(seed, "Snapshot/floor"))
	row(seed, "seed-style syncer", "Snapshot/seed", heap(seed, "Snapshot/seed"))
	d.p("")
	d.p("Memory with a host that keeps its view: _host's copy_ is the live heap left once the syncer is stopped")
	d.p("(the host's map, keys and values); _beyond_ is the peak heap above start less the host's copy, per key:")
	d.p("what the syncer needs on top of what the host holds anyway (its tracker, batches in flight, garbage")
	d.p("not yet collected).")
	d.p("")
	d.header("host", "peak heap above start, MB", "host's copy, MB", "beyond the host's copy, B/key")
	for _, c := range [][2]string{{"keeps its view", "Snapshot/held"}, {"slow (10 µs per update)", "Snapshot/slowhost"}} {
		d.row(c[0], heap(main, c[1]), main.Get(c[1], "host-MB").Format(one, num), main.Get(c[1], "beyond-host-B/key").Format(one, num))
	}
	d.p("")
	syncerRatio := main.Paired("Snapshot/syncer", "Snapshot/raw", "ns/op")
	seedRatio := seed.Paired("Snapshot/seed", "Snapshot/raw", "ns/op")
	if syncerRatio.N > 0 && seedRatio.N > 0 {
		d.p("In process, etcdsync reaches in-sync in %s the raw transfer's time (%s the floor's) with %s host calls and",
			ratio(syncerRatio.Median), ratio(main.Paired("Snapshot/syncer", "Snapshot/floor", "ns/op").Median),
			num(main.Get("Snapshot/syncer", "calls").Median))
		d.p("%s the seed-style syncer's peak heap; the seed-style syncer takes %s the raw transfer's time (measured",
			ratio(main.Get("Snapshot/syncer", "peak-heap-MB").Ratio(seed.Get("Snapshot/seed", "peak-heap-MB"))), ratio(seedRatio.Median))
		d.p("beside it) and calls the host once per key, plus once for the (empty) sweep.")
		d.p("")
	}
	node := main.Get("Snapshot/node", "ns/op")
	switch r := main.Paired("Snapshot/node", "Snapshot/floor", "ns/op").Median; {
	case node.N == 0:
		d.p("The node process was not measured.")
	case !bar:
	case r <= nodeBar:
		d.p("The node process, start-up included, is within the project's bar of %.2f× the floor (%s).", nodeBar, ratio(r))
	default:
		d.p("The node process, start-up included, is **above** the project's bar of %.2f× the floor (%s).", nodeBar, ratio(r))
	}
	d.p("")
}

func simSnapshot(d *doc, run *Run) {
	heap := func(r Results, name string) string { return r.Get(name, "peak-heap-MB").Format(one, num) }
	calls := func(r Results, name string) string { return r.Get(name, "calls").Format(one, num) }
	sim, simSeed := run.Results[secSim], run.Results[secSimSeed]
	d.p("### 10^6 keys, simulated etcd")
	d.p("")
	d.p("The same measurement on `calico.KVs(1000000)` in `e2e/etcdsim`, passed as `Config.KeysAPI`: no HTTP")
	d.p("and no JSON, so the GET hands over a ready tree and the syncer reads it with `KeysSnapshotter`")
	d.p("(the streaming decoder is for real etcd only). The floor is the sim's recursive GET and the walk.")
	d.p("")
	d.commands(append(run.Commands[secSim], run.Commands[secSimSeed]...))
	simFloor, simSeedFloor := sim.Get("SnapshotSim/floor", "ns/op"), simSeed.Get("SnapshotSim/floor", "ns/op")
	d.header("", "time to in-sync, ms", "ratio to floor", "host calls (OnUpdates)", "peak heap above start, MB")
	d.row("floor", simFloor.Format(nsPerMs, num), ratio(simFloor.Ratio(simFloor)), "—", heap(sim, "SnapshotSim/floor"))
	d.row("etcdsync in process", sim.Get("SnapshotSim/syncer", "ns/op").Format(nsPerMs, num),
		ratio(sim.Get("SnapshotSim/syncer", "ns/op").Ratio(simFloor)), calls(sim, "SnapshotSim/syncer"), heap(sim, "SnapshotSim/syncer"))
	d.row("floor, beside the seed", simSeedFloor.Format(nsPerMs, num), ratio(simSeedFloor.Ratio(simSeedFloor)), "—", heap(simSeed, "SnapshotSim/floor"))
	d.row("seed-style syncer", simSeed.Get("SnapshotSim/seed", "ns/op").Format(nsPerMs, num),
		ratio(simSeed.Get("SnapshotSim/seed", "ns/op").Ratio(simSeedFloor)), calls(simSeed, "SnapshotSim/seed"), heap(simSeed, "SnapshotSim/seed"))
	d.p("")
}

func watch(d *doc, run *Run) {
	res := run.Results[secWatch]
	d.p("## 2. Watch throughput and lag, one real etcd member")
	d.p("")
	d.p("32 writers set 1000 keys in turn at a fixed rate for 3 s (`max`: as fast as they go), each value")
	d.p("carrying a sequence number. Lag is from a write's acknowledgement to the delivery of that key and")
	d.p("value to the consumer (a delivery that beats the acknowledgement counts as 0). **etcdsync** is the")
	d.p("in-process syncer with the default long-poll watch, in sync before the writes start; **etcdsync")
	d.p("stream** the same with `WatchMode: WatchStream` (etcd's streaming watch); **floor** is a bare client/v2 watcher loop")
	d.p("(`Watcher(prefix, AfterIndex, Recursive)`, `Next` in a loop) that restarts at etcd's current index")
	d.p("after a 401, as the seed did. _Lost sync_ counts etcdsync's resyncs after its first in-sync and the")
	d.p("floor's 401s; _not delivered_ counts acknowledged values never delivered (a resync delivers only a")
	d.p("key's latest value; a 401 skips events). Each run also waits up to 1 s for stragglers.")
	d.p("")
	d.commands(run.Commands[secWatch])
	d.header("rate", "consumer", "writes/s achieved", "lag p50, ms", "lag p99, ms", "lag max, ms", "lost sync", "not delivered", "p99 vs floor")
	for _, rate := range []string{"250", "500", "1000", "2000", "max"} {
		ours, stream, floor := "Watch/rate="+rate+"/syncer", "Watch/rate="+rate+"/stream", "Watch/rate="+rate+"/floor"
		for _, c := range []struct{ name, label, lost string }{
			{ours, "etcdsync", " resyncs"}, {stream, "etcdsync stream", " resyncs"}, {floor, "floor", " × 401"},
		} {
			vs := "—"
			if c.name != floor {
				vs = ratio(res.Get(c.name, "lag-p99-ms").Ratio(res.Get(floor, "lag-p99-ms")))
			}
			lost := res.Get(c.name, "lost-sync")
			lostText := lost.Format(one, num)
			if lost.N > 0 {
				lostText += c.lost
			}
			d.row(rate, c.label,
				res.Get(c.name, "writes/s").Format(one, num),
				res.Get(c.name, "lag-p50-ms").Format(one, num),
				res.Get(c.name, "lag-p99-ms").Format(one, num),
				res.Get(c.name, "lag-max-ms").Format(one, num),
				lostText,
				res.Get(c.name, "missed").Format(one, num),
				vs)
		}
	}
	d.p("")
}

func merge(d *doc, run *Run) {
	res := run.Results[secMerge]
	d.p("## 3. Merge core")
	d.p("")
	d.p("- **Merge/watch**: one watch event through `actors.Merge.Step` on an in-sync merge of 10^5 Calico keys")
	d.p("  (80 % updates, 10 % deletions, 10 % re-creations); no actors, no I/O.")
	d.p("- **Merge/snapshot**: one key of a 10^5-key snapshot merged into a fresh merge, in batches of 1000,")
	d.p("  request and final sweep included.")
	d.p("- **Pipeline**: one write into the simulated etcd delivered to the host, the writer at most 500 events")
	d.p("  ahead: through etcdsync's watcher, merger and consumer actors (**syncer**), or a bare watcher loop on")
	d.p("  the same sim (**floor**). allocs/op counts the whole process, the sim's share included.")
	d.p("")
	d.commands(run.Commands[secMerge])
	d.header("", "ns/op", "events/s", "B/op", "allocs/op", "ns/op vs floor")
	floor := res.Get("Pipeline/floor", "ns/op")
	for _, name := range []string{"Merge/watch", "Merge/snapshot", "Pipeline/floor", "Pipeline/syncer"} {
		vs := "—"
		if strings.HasPrefix(name, "Pipeline/") {
			vs = ratio(res.Get(name, "ns/op").Ratio(floor))
		}
		d.row(name, res.Get(name, "ns/op").Format(one, num), res.Get(name, "events/s").Format(one, num),
			res.Get(name, "B/op").Format(one, num), res.Get(name, "allocs/op").Format(one, num), vs)
	}
	d.p("")
}

func hwm(d *doc, run *Run) {
	ours, seed := run.Results[secHwm], run.Results[secHwmSeed]
	d.p("## 4. hwm tracker against the seed's")
	d.p("")
	d.p("`hwmbench.Run` on both trackers, Calico-shaped keys. StoreUpdate/new: insert into a tracker refilled")
	d.p("from empty every n ops; existing: raise the mark of a present key; StoreDeletion/host: delete one host's")
	d.p("directory (about 100 keys; put back off the clock); DeleteOldKeys/resync: the sweep after a resync")
	d.p("that refreshed all but 1 % of the keys. _ours/seed_ below 1 means ours is faster or smaller.")
	d.p("")
	d.commands(append(run.Commands[secHwm], run.Commands[secHwmSeed]...))
	d.header("op", "keys", "ours ns/op", "seed ns/op", "ours/seed", "ours B/op, allocs/op", "seed B/op, allocs/op")
	sizes := []string{"10000", "100000", "1000000"}
	for _, op := range []string{"StoreUpdate/new", "StoreUpdate/existing", "StoreDeletion/host", "DeleteOldKeys/resync"} {
		for _, n := range sizes {
			name := "Tracker/" + op + "/keys=" + n
			o, s := ours.Get(name, "ns/op"), seed.Get(name, "ns/op")
			mem := func(r Results) string {
				return r.Get(name, "B/op").Format(one, num) + ", " + r.Get(name, "allocs/op").Format(one, num)
			}
			d.row(op, n, o.Format(one, num), s.Format(one, num), ratio(o.Ratio(s)), mem(ours), mem(seed))
		}
	}
	d.p("")
	d.p("Heap held per key by a filled tracker, beyond the key strings the caller holds:")
	d.p("")
	d.header("keys", "ours B/key", "seed B/key", "ours/seed")
	for _, n := range sizes {
		name := "Tracker/Memory/keys=" + n
		o, s := ours.Get(name, "B/key"), seed.Get(name, "B/key")
		d.row(n, o.Format(one, num), s.Format(one, num), ratio(o.Ratio(s)))
	}
	d.p("")
}

// The goals of issue 13 item 8 (fan-out), against floors measured in the
// same run where there is one.
const (
	fanoutFloorGoal = 1.5  // snapshot to N clients, × the byte-moving floor, at every N
	fanoutP99Goal   = 50   // ms, write acknowledgement to the last of 1000 lightweight clients, 1000 writes/s
	fanoutIdleGoal  = 20.0 // KB of relay memory per idle client, beyond the shared state
	fanoutBuilt     = 1    // snapshots built per burst
)

// Names of BenchmarkFanout's results (e2e/bench/fanout).
const (
	fanoutFloor  = "Fanout/snapshot/floor/clients="
	fanoutRelay  = "Fanout/snapshot/relay/clients="
	fanoutIdle   = "Fanout/idle/clients="
	fanoutLight  = "Fanout/latency/light/clients="
	fanoutFull   = "Fanout/full/relay/clients="
	fanoutDirect = "Fanout/full/direct/clients="
)

// suffixes returns the rest of every result name that starts with prefix,
// ordered by its leading number (the client count), then as text.
func suffixes(r Results, prefix string) []string {
	var out []string
	for name := range r {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			out = append(out, rest)
		}
	}
	lead := func(s string) int {
		n, _ := strconv.Atoi(strings.SplitN(s, "/", 2)[0])
		return n
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := lead(a) - lead(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// median returns the median of name's samples in unit, NaN if none.
func median(r Results, name, unit string) float64 {
	if s := r.Get(name, unit); s.N > 0 {
		return s.Median
	}
	return math.NaN()
}

// worstBurst returns the highest relay/floor time ratio over the burst
// sizes, the size it was at, and the most snapshots built by one burst.
func worstBurst(r Results) (worst float64, at string, built float64) {
	worst, built = math.NaN(), math.NaN()
	for _, n := range suffixes(r, fanoutRelay) {
		v := r.Paired(fanoutRelay+n, fanoutFloor+n, "ns/op")
		if v.N > 0 && (math.IsNaN(worst) || v.Median > worst) {
			worst, at = v.Median, n
		}
		if b := r.Get(fanoutRelay+n, "snapshots-built"); b.N > 0 && (math.IsNaN(built) || b.Max > built) {
			built = b.Max
		}
	}
	return worst, at, built
}

// lightAt returns the name of the latency result for the most lightweight
// clients.
func lightAt(r Results) string {
	names := suffixes(r, fanoutLight)
	if len(names) == 0 {
		return ""
	}
	return fanoutLight + names[len(names)-1]
}

// fanoutGoals adds the fan-out rows to the goals table.
func fanoutGoals(d *doc, r Results) {
	worst, at, built := worstBurst(r)
	worstText := ratio(worst)
	if at != "" {
		worstText += " (worst, N = " + at + ")"
	}
	d.row(fmt.Sprintf("relay snapshot to N lightweight clients ≤ %.1f× the byte-moving floor, every N", fanoutFloorGoal),
		worstText, "—", met(worst, fanoutFloorGoal, false))
	d.row("one snapshot built per burst of clients", "at most "+num0(built)+" per burst", "—", met(built, fanoutBuilt, false))
	light := lightAt(r)
	p99 := median(r, light, "lag-p99-ms")
	d.row(fmt.Sprintf("fan-out p99 ≤ %d ms, 1000 writes/s, 1000 lightweight clients", fanoutP99Goal),
		r.Get(light, "lag-p99-ms").Format(one, num)+" ms"+clientsNote(light), "—", met(p99, fanoutP99Goal, false))
	idle := ""
	if names := suffixes(r, fanoutIdle); len(names) > 0 {
		idle = fanoutIdle + names[len(names)-1]
	}
	rss := median(r, idle, "rss-KB/client")
	d.row(fmt.Sprintf("relay memory ≤ %.0f KB per idle client beyond the shared state", fanoutIdleGoal),
		r.Get(idle, "rss-KB/client").Format(one, num)+" KB RSS"+clientsNote(idle), "—", met(rss, fanoutIdleGoal, false))
}

// clientsNote names the client count of a result if it is not the issue's.
func clientsNote(name string) string {
	i := strings.Index(name, "clients=")
	if i < 0 {
		return ""
	}
	n := strings.SplitN(name[i+len("clients="):], "/", 2)[0]
	switch {
	case strings.HasPrefix(name, fanoutIdle) && n == "10000", strings.HasPrefix(name, fanoutLight) && n == "1000":
		return ""
	}
	return " (" + n + " clients)"
}

func num0(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return num(v)
}

func fanout(d *doc, run *Run) {
	r := run.Results[secFanout]
	d.p("## 5. Fan-out: relays")
	d.p("")
	d.p("`e2e/bench/fanout`. The relay is a process of its own (the benchmark binary re-executed): a syncer of")
	d.p("a real etcd holding 10^5 Calico-shaped keys, watching it by stream, whose host is a `relay.Server`")
	d.p("as `cmd/node --relay-listen --watch stream` runs it, plus a stats endpoint (`relay.Stats`). Its one")
	d.p("setting not the node's is a `WriteTimeout` of 10 minutes, not 10 s: 10^4 clients in one process share")
	d.p("the two cores with it, and a client left undrained for 10 s would be dropped as slow, as it should be")
	d.p("in production. Its CPU is read from `/proc/<pid>/stat` (utime + stime, 10 ms ticks) apart from the")
	d.p("clients'. The test binary raises its `RLIMIT_NOFILE` to the hard limit (`syscall.Setrlimit`) so that")
	d.p("it, and the server processes it starts, can hold 10^4 sockets each.")
	d.p("")
	d.commands(run.Commands[secFanout])
	if w, k := median(r, "Fanout/wire/identity", "wire-bytes"), median(r, "Fanout/wire/identity", "wire-B/key"); k > 0 {
		d.p("In this run the relay of the lightweight clients held %s keys.", num(math.Round(w/k)))
		d.p("")
	}
	d.p("- **Lightweight clients**: a raw TCP connection that sends the stream request and counts what it")
	d.p("  reads: keys of the kvs frames (by their `{\"k\":`), frames, bytes; it decodes no JSON. Each checks it")
	d.p("  counted every key. Connections are opened before the clock starts; then all send their request at once.")
	d.p("- **Byte-moving floor**: a process of its own that writes the relay's own stream bytes (hello to")
	d.p("  snapshot-end, captured once) from one pre-built buffer, in the relay's 256 KiB writes, over")
	d.p("  `net/http`, to the same clients. Before each burst, off the clock, N clients ask the server and hang")
	d.p("  up after hello (so that neither process's first burst of N pays for growing to N connections), and")
	d.p("  the relay is left over its `SnapshotShare` (1 s), so that every burst builds its own snapshot.")
	d.p("- **Full clients**: `supervisor.Start` with `Config.Relays` (or `Endpoints`, straight at etcd), each")
	d.p("  host keeping its view in a map, on a second etcd of 10^4 keys (a thousand views of 10^5 keys would")
	d.p("  not fit in memory) with a relay process of its own.")
	d.p("")

	d.p("### Snapshot to N clients at once")
	d.p("")
	d.p("Time until every client has read the whole snapshot; CPU of the server process during it, and of")
	d.p("the benchmark process (the clients). _× floor_ divides the relay's time by the floor's, run by run.")
	d.p("")
	d.p("At one client the relay's time is mostly building the snapshot (copying and encoding its view), which")
	d.p("the floor has pre-built; from a burst of many on, that one build is shared by the burst.")
	d.p("_Last request_ is when the last client had sent its request, after the start. A client shares the")
	d.p("last snapshot built if it asked at most `SnapshotShare` (1 s) before the build, or since.")
	d.p("")
	d.header("clients", "floor, ms", "relay, ms", "relay × floor", "floor CPU, s", "relay CPU, s", "snapshots built", "snapshots shared", "clients' CPU (floor / relay), s", "MB per client", "last request (relay), ms")
	for _, n := range suffixes(r, fanoutRelay) {
		fl, re := fanoutFloor+n, fanoutRelay+n
		d.row(n, r.Get(fl, "ns/op").Format(nsPerMs, num), r.Get(re, "ns/op").Format(nsPerMs, num),
			r.Paired(re, fl, "ns/op").Format(one, func(v float64) string { return ratio(v) }),
			r.Get(fl, "server-cpu-s").Format(one, num), r.Get(re, "server-cpu-s").Format(one, num),
			r.Get(re, "snapshots-built").Format(one, num), r.Get(re, "snapshots-shared").Format(one, num),
			r.Get(fl, "client-cpu-s").Format(one, num)+" / "+r.Get(re, "client-cpu-s").Format(one, num),
			r.Get(re, "MB/client").Format(one, num), r.Get(re, "last-request-ms").Format(one, num))
	}
	d.p("")

	d.p("### Wire size of one snapshot")
	d.p("")
	d.p("The stream from hello to snapshot-end as the relay sends it (the HTTP body, before any decompression).")
	d.p("")
	d.header("encoding", "bytes", "bytes per key", "compression ratio")
	for _, enc := range []string{"identity", "zstd"} {
		name := "Fanout/wire/" + enc
		d.row(enc, r.Get(name, "wire-bytes").Format(one, num), r.Get(name, "wire-B/key").Format(one, num), r.Get(name, "ratio").Format(one, num))
	}
	d.p("")

	d.p("### Cost per idle client")
	d.p("")
	d.p("N clients (with the ping feature) held at once: one reads a snapshot, the other N−1 resume from its")
	d.p("position, so nothing but the stream itself is theirs (N = 10^4 is the relay's default `MaxClients`).")
	d.p("RSS and heap are the relay's after a GC (`runtime.GC`, `debug.FreeOSMemory`) with the N connected, less")
	d.p("the same with the first alone, per added client; CPU is the relay's over 20 s of idling (pings every")
	d.p("10 s), per client.")
	d.p("")
	d.header("clients held at once", "RSS per client, KB", "heap per client, KB", "relay RSS with one client, MB", "idle CPU, µs per client per s", "resumed", "RLIMIT_NOFILE")
	for _, n := range suffixes(r, fanoutIdle) {
		name := fanoutIdle + n
		d.row(n, r.Get(name, "rss-KB/client").Format(one, num), r.Get(name, "heap-KB/client").Format(one, num),
			r.Get(name, "base-rss-MB").Format(one, num), r.Get(name, "idle-cpu-us/client/s").Format(one, num),
			r.Get(name, "resumes").Format(one, num), r.Get(name, "nofile").Format(one, num))
	}
	d.p("")

	d.p("### Fan-out latency")
	d.p("")
	d.p("32 writers set 1000 of the loaded keys in turn at a fixed rate for 3 s, each value carrying a sequence")
	d.p("number. Lag is from a write's acknowledgement by etcd to its delivery to the **last** client (its first")
	d.p("sight in a delta frame for a lightweight client, the host's `OnUpdates` for a full one); a delivery that")
	d.p("beats the acknowledgement counts as 0. _Not delivered_: acknowledged writes some client never saw")
	d.p("within 10 s. One lightweight client is the baseline: etcd's watch and the relay, without the fan-out.")
	d.p("")
	d.p("_Relay lost sync_ counts the relay's syncer leaving `in-sync` during the writes (its watch fell out of")
	d.p("etcd's event window; the resync that follows delivers only each key's latest value), _snapshots resent_")
	d.p("the clients moved to a fresh snapshot for falling behind the log's start: the two ways a write is lost.")
	d.p("")
	d.header("clients", "writes/s achieved", "lag p50, ms", "lag p99, ms", "lag max, ms", "not delivered", "relay lost sync", "snapshots resent", "relay CPU, s")
	latency := func(label, name string) {
		d.row(label, r.Get(name, "writes/s").Format(one, num), r.Get(name, "lag-p50-ms").Format(one, num),
			r.Get(name, "lag-p99-ms").Format(one, num), r.Get(name, "lag-max-ms").Format(one, num), r.Get(name, "missed").Format(one, num),
			r.Get(name, "relay-lost-sync").Format(one, num), r.Get(name, "snapshots-resent").Format(one, num), r.Get(name, "relay-cpu-s").Format(one, num))
	}
	for _, n := range suffixes(r, fanoutLight) {
		c, rate, _ := strings.Cut(n, "/rate=")
		latency(c+" lightweight, "+rate+" writes/s", fanoutLight+n)
	}
	for _, n := range suffixes(r, fanoutFull) {
		latency(n+" full, behind the relay, 50 writes/s", fanoutFull+n)
	}
	for _, n := range suffixes(r, fanoutDirect) {
		latency(n+" full, straight at etcd, 50 writes/s", fanoutDirect+n)
	}
	d.p("")

	d.p("### etcd's view")
	d.p("")
	d.p("The same full clients behind one relay, then straight at etcd (10^4 keys). _Watchers_ is etcd's")
	d.p("`etcd_debugging_store_watchers` once all are in sync; _watch requests_ the rise of")
	d.p("`etcd_debugging_store_watch_requests_total` over the 3 s of writes at 50/s. The relay process stays up")
	d.p("in both runs: its one watcher and its watch requests are in both rows.")
	d.p("")
	d.header("clients", "time until all in sync, ms", "etcd watchers", "etcd watch requests", "watch requests per write")
	view := func(label, name string) {
		per := "—"
		if w, n := median(r, name, "etcd-watch-requests"), median(r, name, "writes"); n > 0 {
			per = num(w / n)
		}
		d.row(label, r.Get(name, "sync-ms").Format(one, num), r.Get(name, "etcd-watchers").Format(one, num),
			r.Get(name, "etcd-watch-requests").Format(one, num), per)
	}
	for _, n := range suffixes(r, fanoutFull) {
		view(n+" behind the relay", fanoutFull+n)
	}
	for _, n := range suffixes(r, fanoutDirect) {
		view(n+" straight at etcd", fanoutDirect+n)
	}
	d.p("")
}
