package bench_test

import (
	"fmt"
	"testing"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/supervisor"
)

// v3Versions are the etcd releases the v3 source is measured on: 3.5, the
// last with v2 (so the two APIs can be compared on one process), and 3.7,
// the newest.
var v3Versions = []etcdproc.Version{etcdproc.V35, etcdproc.V37}

// pageChoice is one (FirstPage, MaxPage) of etcdv3.Source measured by
// BenchmarkSnapshotV3.
type pageChoice struct{ first, most int64 }

// pageChoices span fixed pages (Kubernetes-style 1000, and 10^4), the
// doubling pages with their default first page and several ceilings (the
// default 65536 among them), a larger first page, and the ceiling alone.
var pageChoices = []pageChoice{
	{1000, 1000},
	{10_000, 10_000},
	{1000, 16_384},
	{1000, 32_768},
	{1000, 65_536},
	{10_000, 65_536},
	{65_536, 65_536},
	{65_536, 131_072},
	{1000, 262_144},
}

// maxPagesOfMax returns how many pages of MaxPage keys a page choice may
// need at want keys: beyond it the choice is left out (fixed small pages
// are quadratic: 1000-key pages of 10^6 keys would take many minutes a
// round). At 10^5 keys, 100: Kubernetes-style 1000-key pages are the
// reference the doubling pages are there to beat. Above, 64: MaxPage 16384
// (61 pages at 10^6) is in, as the smallest ceiling that might meet the
// memory goal there.
func maxPagesOfMax(want int) int64 {
	if want > bench.SnapshotKeys {
		return 64
	}
	return 100
}

// BenchmarkSnapshotV3 measures the v3 source's snapshot of the
// Calico-shaped keys (10^5, or ETCDSYNC_BENCH_KEYS) on etcd 3.5 and on 3.7,
// each loaded through the v3 API (bench.SnapshotEtcdV3): the floor (one
// unpaginated clientv3 Get of the prefix, results discarded), etcdsync in
// process with APIv3 (supervisor.Start to InSync with every key delivered),
// the same with a host that keeps every key and value (held: the heap
// beyond the host's copy), the node process with --etcd-api v3 (exec to the
// first 200 from /readyz), the source's paged read alone for each of
// pageChoices, and on 3.5 the v2 syncer on the same keys of the same etcd
// (up to 10^5 keys: loading 10^6 through v2 takes minutes, and section 1b
// of bench.sh measures v2 at 10^6).
func BenchmarkSnapshotV3(b *testing.B) {
	want := bench.SnapshotKeyCount()
	for _, v := range v3Versions {
		b.Run("etcd="+v.String(), func(b *testing.B) {
			endpoints := bench.SnapshotEtcdV3(b, v)
			c, err := bench.ClientV3(endpoints)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			bench.WarmUpV3(b, c, calico.Prefix)
			v3 := supervisor.Config{Endpoints: endpoints, API: supervisor.APIv3}
			b.Run("floor", func(b *testing.B) {
				bench.MeasureFloorV3(b, c, calico.Prefix, want)
			})
			b.Run("syncer", func(b *testing.B) {
				bench.MeasureSnapshot(b, want, startSyncer(v3))
			})
			b.Run("held", func(b *testing.B) {
				bench.MeasureHeld(b, want, 0, startSyncer(v3))
			})
			if bench.LoadsV2(v, want) {
				b.Run("v2syncer", func(b *testing.B) {
					bench.MeasureSnapshot(b, want, startSyncer(supervisor.Config{Endpoints: endpoints}))
				})
			}
			b.Run("node", func(b *testing.B) {
				measureNode(b, nodeBinary(b), endpoints, "--etcd-api", "v3")
			})
			for _, p := range pageChoices {
				if int64(want) > maxPagesOfMax(want)*p.most {
					continue
				}
				b.Run(fmt.Sprintf("pages=%d-%d", p.first, p.most), func(b *testing.B) {
					bench.MeasurePages(b, c, calico.Prefix, want, p.first, p.most)
				})
			}
		})
	}
}
