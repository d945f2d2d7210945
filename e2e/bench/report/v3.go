package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The goals of issue 23 section 5 for the v3 source, as ratios to its
// floor (one unpaginated clientv3 Get of the prefix, results discarded, on
// the same etcd in the same round); the memory goal is beyondGoal.
const (
	v3InProcessGoal = 1.15   // etcdsync in process with APIv3 to in-sync, × the floor
	v3NodeGoal      = 1.3    // node process with --etcd-api v3, start-up included, × the floor
	smallKeys       = 100000 // the snapshot etcd's key count without BENCH_LARGE
)

// v3Versions are the etcd releases BenchmarkSnapshotV3 and
// BenchmarkWatchV3 run on, as their sub-benchmarks name them.
var v3Versions = []string{"3.5", "3.7"}

// v3Name returns the result name of candidate on etcd version v in
// benchmark bench ("SnapshotV3" or "WatchV3").
func v3Name(bench, v, candidate string) string {
	return bench + "/etcd=" + v + "/" + candidate
}

// pagesPrefix starts the names of the page-size results, followed by
// "<FirstPage>-<MaxPage>".
const pagesPrefix = "pages="

// pageChoice is one (FirstPage, MaxPage) measured, as its name says it.
type pageChoice struct {
	name        string // "1000-65536"
	first, most int64
}

// pageChoices returns the page choices measured in r on any version,
// ordered by MaxPage, then FirstPage.
func pageChoices(r Results) []pageChoice {
	seen := map[string]bool{}
	var out []pageChoice
	for _, v := range v3Versions {
		for _, s := range suffixes(r, v3Name("SnapshotV3", v, pagesPrefix)) {
			if seen[s] {
				continue
			}
			seen[s] = true
			f, m, _ := strings.Cut(s, "-")
			first, _ := strconv.ParseInt(f, 10, 64)
			most, _ := strconv.ParseInt(m, 10, 64)
			out = append(out, pageChoice{s, first, most})
		}
	}
	slices.SortFunc(out, func(a, b pageChoice) int {
		return cmp.Or(cmp.Compare(a.most, b.most), cmp.Compare(a.first, b.first))
	})
	return out
}

// v3Ratio returns the median over rounds of candidate's time over the
// floor's on version v, NaN if either is missing.
func v3Ratio(r Results, v, candidate string) float64 {
	s := r.Paired(v3Name("SnapshotV3", v, candidate), v3Name("SnapshotV3", v, "floor"), "ns/op")
	if s.N == 0 {
		return math.NaN()
	}
	return s.Median
}

// v3Goals adds the v3 rows to the goals table.
func v3Goals(d *doc, run *Run) {
	small, large := run.Results[secV3], run.Results[secV3Large]
	worst := func(a, b float64) float64 {
		switch {
		case math.IsNaN(a):
			return b
		case math.IsNaN(b):
			return a
		}
		return math.Max(a, b)
	}
	for _, v := range v3Versions {
		in5, in6 := v3Ratio(small, v, "syncer"), v3Ratio(large, v, "syncer")
		d.row(fmt.Sprintf("v3, etcd %s: in process to in-sync ≤ %.2f× one unpaginated Get", v, v3InProcessGoal),
			ratio(in5), ratio(in6), met(worst(in5, in6), v3InProcessGoal, false))
	}
	for _, v := range v3Versions {
		n5, n6 := v3Ratio(small, v, "node"), v3Ratio(large, v, "node")
		d.row(fmt.Sprintf("v3, etcd %s: node process, start-up included, ≤ %.2f× one unpaginated Get", v, v3NodeGoal),
			ratio(n5), ratio(n6), met(worst(n5, n6), v3NodeGoal, false))
	}
	for _, v := range v3Versions {
		name := v3Name("SnapshotV3", v, "held")
		b5, b6 := small.Get(name, "beyond-host-B/key"), large.Get(name, "beyond-host-B/key")
		d.row(fmt.Sprintf("v3, etcd %s: peak heap beyond the host's copy ≤ %d B/key at 10^6 keys", v, beyondGoal),
			b5.Format(one, num)+" B/key", b6.Format(one, num)+" B/key", met(median(large, name, "beyond-host-B/key"), beyondGoal, false))
	}
	w := run.Results[secWatchV3]
	for _, v := range v3Versions {
		name := v3Name("WatchV3", v, "rate=max/syncer")
		rate, lost := w.Get(name, "writes/s"), w.Get(name, "lost-sync")
		verdict := "not measured"
		if lost.N > 0 {
			verdict = met(lost.Max, 0, false)
		}
		d.row(fmt.Sprintf("v3, etcd %s: watch, writes/s sustained with 0 resyncs (as fast as 32 writers go)", v),
			rate.Format(one, num)+" writes/s, "+lost.Format(one, num)+" resyncs", "—", verdict)
	}
}

// v3Section renders section 6: the v3 source.
func v3Section(d *doc, run *Run) {
	d.p("## 6. The etcd v3 source")
	d.p("")
	d.p("`internal/etcdv3` through `supervisor.Config{API: supervisor.APIv3}` (and `cmd/node --etcd-api v3`), on")
	d.p("etcd 3.5 and 3.7, one member each, holding the same Calico-shaped keys loaded through the v3 API (in")
	d.p("transactions of 100 puts, 32 writers). At 10^5 keys the 3.5 member holds them through v2 as well (the")
	d.p("two APIs keep separate stores), so that the v2 syncer reads the same keys from the same process. Each round is one")
	d.p("process measuring both versions, the floor first; each ratio is taken within the round, against the")
	d.p("floor of the same etcd, and the table gives the median of the rounds, with their range.")
	d.p("")
	d.p("- **floor**: one unpaginated `clientv3` `Get` of the prefix's range, results discarded: the fastest")
	d.p("  etcd serves a prefix, holding the whole answer in memory at once (which no syncer may do).")
	d.p("- **etcdsync in process**: `supervisor.Start` with `APIv3` to the host's callbacks holding every key")
	d.p("  and `in-sync`, the client's dial included; **host keeps its view**: the same with a host that keeps")
	d.p("  every key and value, for the heap beyond the host's copy (as in section 1).")
	d.p("- **node process**: exec of `cmd/node --etcd-api v3 --output none` to the first 200 from `/readyz`,")
	d.p("  start-up included; its memory is the process's peak RSS.")
	d.p("- **v2 syncer, same keys** (3.5 only, 10^5 keys only): the default v2 syncer in process on the same")
	d.p("  member's v2 store.")
	d.p("- **pages F–M**: the source's snapshot read alone (`etcdv3.Source.Snapshot`, pages of F keys doubling up")
	d.p("  to M, each key handed to a leaf that counts it), without the merge and the host: what the page sizes")
	d.p("  cost. The defaults are 1000–65536. Choices needing more than 100 pages of M keys (64 above 10^5")
	d.p("  keys) are left out.")
	d.p("")
	d.commands(append(run.Commands[secV3], run.Commands[secV3Large]...))
	v3Snapshot(d, "10^5 keys", smallKeys, run.Results[secV3])
	if len(run.Commands[secV3Large]) > 0 {
		v3Snapshot(d, "10^6 keys (`BENCH_LARGE=1`)", largeKeys, run.Results[secV3Large])
	}
	v3Watch(d, run)
}

// v3Snapshot renders the snapshot and page tables of one key count, keys.
func v3Snapshot(d *doc, title string, keys int, r Results) {
	d.p("### Snapshot to in-sync, %s", title)
	d.p("")
	cols := []string{""}
	for _, v := range v3Versions {
		cols = append(cols, "etcd "+v+", ms", "× floor, per round", "peak heap above start, MB")
	}
	d.header(cols...)
	row := func(label, candidate, mem string) {
		cells := []string{label}
		for _, v := range v3Versions {
			name := v3Name("SnapshotV3", v, candidate)
			m := r.Get(name, mem).Format(one, num)
			if mem == "peak-rss-MB" && r.Get(name, mem).N > 0 {
				m += " (RSS)"
			}
			cells = append(cells, r.Get(name, "ns/op").Format(nsPerMs, num),
				r.Paired(name, v3Name("SnapshotV3", v, "floor"), "ns/op").Format(one, func(v float64) string { return ratio(v) }), m)
		}
		d.row(cells...)
	}
	row("floor: one unpaginated Get", "floor", "peak-heap-MB")
	row("etcdsync v3 in process", "syncer", "peak-heap-MB")
	row("etcdsync v3, host keeps its view", "held", "peak-heap-MB")
	row("node process, --etcd-api v3", "node", "peak-rss-MB")
	row("v2 syncer, same keys", "v2syncer", "peak-heap-MB")
	d.p("")
	d.header("etcd", "peak heap above start, MB", "host's copy, MB", "beyond the host's copy, B/key", "v3 in process × v2 in process, per round")
	for _, v := range v3Versions {
		held := v3Name("SnapshotV3", v, "held")
		vs2 := "—"
		if s := r.Paired(v3Name("SnapshotV3", v, "syncer"), v3Name("SnapshotV3", v, "v2syncer"), "ns/op"); s.N > 0 {
			vs2 = s.Format(one, func(v float64) string { return ratio(v) })
		}
		d.row(v, r.Get(held, "peak-heap-MB").Format(one, num), r.Get(held, "host-MB").Format(one, num),
			r.Get(held, "beyond-host-B/key").Format(one, num), vs2)
	}
	d.p("")
	choices := pageChoices(r)
	if len(choices) == 0 {
		return
	}
	d.p("Page sizes, the source's read alone (`FirstPage`–`MaxPage`); _peak heap_ is above the start of the")
	d.p("read: the pages in flight, decoded, and the garbage of the leaves' copies not yet collected.")
	d.p("")
	cols = []string{"pages (first–max)", "pages read"}
	for _, v := range v3Versions {
		cols = append(cols, "etcd "+v+", ms", "× floor", "peak heap, MB")
	}
	d.header(cols...)
	budget := float64(beyondGoal) * largeKeys / (1 << 20)
	type judged struct {
		name   string
		worst  float64      // the worse of the versions' median ratios to the floor
		ranges [][2]float64 // per version, the rounds' lowest and highest ratio
	}
	var fits []judged
	unfilled := false
	for _, p := range choices {
		cells := []string{p.name, "—"}
		j := judged{name: p.name, worst: math.NaN()}
		worstHeap := math.NaN()
		for _, v := range v3Versions {
			name := v3Name("SnapshotV3", v, pagesPrefix+p.name)
			if s := r.Get(name, "pages"); s.N > 0 {
				cells[1] = s.Format(one, num)
			}
			pr := r.Paired(name, v3Name("SnapshotV3", v, "floor"), "ns/op")
			cells = append(cells, r.Get(name, "ns/op").Format(nsPerMs, num),
				pr.Format(one, func(v float64) string { return ratio(v) }), r.Get(name, "peak-heap-MB").Format(one, num))
			if pr.N > 0 {
				j.worst = math.Max(pr.Median, nanTo(j.worst, pr.Median))
				j.ranges = append(j.ranges, [2]float64{pr.Min, pr.Max})
			}
			if h := median(r, name, "peak-heap-MB"); !math.IsNaN(h) {
				worstHeap = math.Max(h, nanTo(worstHeap, h))
			}
		}
		if p.first == 1000 && p.most == 65536 {
			cells[0] += " (default)"
		}
		filled := fillsMaxPage(keys, p.first, p.most)
		if !filled {
			cells[0] += " †"
			unfilled = true
		}
		d.row(cells...)
		if filled && !math.IsNaN(j.worst) && worstHeap <= budget && len(j.ranges) == len(v3Versions) {
			fits = append(fits, j)
		}
	}
	d.p("")
	if unfilled {
		d.p("† Its largest page is never filled at this key count (the smaller pages before it hold most of the")
		d.p("keys), so its heap here says little of its heap on a larger prefix.")
		d.p("")
	}
	if len(fits) == 0 {
		return
	}
	best := fits[0]
	for _, j := range fits[1:] {
		if j.worst < best.worst {
			best = j
		}
	}
	var alike []string
	for _, j := range fits {
		overlap := j.name != best.name
		for i := range j.ranges {
			overlap = overlap && j.ranges[i][0] <= best.ranges[i][1] && best.ranges[i][0] <= j.ranges[i][1]
		}
		if overlap {
			alike = append(alike, j.name)
		}
	}
	d.p("Fastest on both versions (the worse of the two median ratios) among the choices that fill their")
	d.p("largest page and whose read alone peaks under the whole 10^6-key budget (%d B/key × 10^6 = %s MiB;", beyondGoal, num(budget))
	d.p("necessary, not sufficient, since the syncer needs memory besides the pages): **%s**, at %s the floor.", best.name, ratio(best.worst))
	if len(alike) > 0 {
		d.p("The rounds' ranges of %s overlap its own on both versions: in this run they cannot be told apart", strings.Join(alike, ", "))
		d.p("from it.")
	}
	d.p("")
}

// fillsMaxPage reports whether a read of n keys in pages of first keys,
// each next twice the one before up to most, reads at least one full page
// of most keys: only then does its peak heap show what most costs.
func fillsMaxPage(n int, first, most int64) bool {
	left, limit := int64(n), first
	for limit < most {
		left -= limit
		limit = min(2*limit, most)
	}
	return left >= most
}

// nanTo returns v, or instead if v is NaN.
func nanTo(v, instead float64) float64 {
	if math.IsNaN(v) {
		return instead
	}
	return v
}

// v3Watch renders the v3 watch table.
func v3Watch(d *doc, run *Run) {
	res := run.Results[secWatchV3]
	d.p("### Watch throughput and lag")
	d.p("")
	d.p("As in section 2, on an etcd member of each version of its own, written through `clientv3` `Put` by 32")
	d.p("writers. **etcdsync v3** is the in-process syncer with `APIv3`, in sync before the writes start;")
	d.p("**floor** a bare `clientv3` watch of the prefix's range from the revision after etcd's current one,")
	d.p("started again from the compaction revision if its revision is compacted. _Lost sync_ counts")
	d.p("etcdsync's resyncs after its first in-sync and the floor's compactions. A watch event usually reaches")
	d.p("the consumer before the writer's `Put` returns, hence the lags of 0.")
	d.p("")
	d.commands(run.Commands[secWatchV3])
	d.header("etcd", "rate", "consumer", "writes/s achieved", "lag p50, ms", "lag p99, ms", "lag max, ms", "lost sync", "not delivered", "p99 vs floor")
	for _, v := range v3Versions {
		for _, rate := range []string{"1000", "2000", "max"} {
			floor := v3Name("WatchV3", v, "rate="+rate+"/floor")
			for _, c := range [][2]string{{v3Name("WatchV3", v, "rate="+rate+"/syncer"), "etcdsync v3"}, {floor, "floor"}} {
				vs := "—"
				if c[0] != floor {
					vs = ratio(res.Get(c[0], "lag-p99-ms").Ratio(res.Get(floor, "lag-p99-ms")))
				}
				d.row(v, rate, c[1],
					res.Get(c[0], "writes/s").Format(one, num),
					res.Get(c[0], "lag-p50-ms").Format(one, num),
					res.Get(c[0], "lag-p99-ms").Format(one, num),
					res.Get(c[0], "lag-max-ms").Format(one, num),
					res.Get(c[0], "lost-sync").Format(one, num),
					res.Get(c[0], "missed").Format(one, num),
					vs)
			}
		}
	}
	d.p("")
}
