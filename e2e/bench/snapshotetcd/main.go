// Command snapshotetcd starts one etcd member, loads 10^5 Calico-shaped keys
// into it (bench.StartLoadedEtcd), writes its client URL to the file named
// by -ready, and keeps it running until SIGINT or SIGTERM. bench.sh runs it
// so that every snapshot benchmark process of one `make bench`, in either
// module, reads the same etcd (through ETCDSYNC_BENCH_ETCD) and the keys are
// loaded once.
//
// With -version 3.5 or 3.7 it starts that etcd and loads the keys through
// the v3 API instead (bench.StartLoadedEtcdV3; on 3.5 up to 10^5 keys
// through v2 as well),
// for the v3 benchmarks (ETCDSYNC_BENCH_ETCD35, ETCDSYNC_BENCH_ETCD37).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

func main() {
	ready := flag.String("ready", "", "file to write the etcd client URLs to once the keys are loaded")
	keys := flag.Int("keys", bench.SnapshotKeyCount(), "how many Calico-shaped keys to load")
	version := flag.String("version", "", "etcd 3.5 or 3.7, loaded through the v3 API (3.5: and v2); empty: etcd 3.5 through v2 only")
	flag.Parse()
	if *ready == "" {
		fmt.Fprintln(os.Stderr, "snapshotetcd: -ready is required")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	var (
		c    *etcdproc.Cluster
		took time.Duration
		err  error
	)
	switch *version {
	case "":
		c, took, err = bench.StartLoadedEtcd(*keys)
	case etcdproc.V35.String():
		c, took, err = bench.StartLoadedEtcdV3(etcdproc.V35, *keys)
	case etcdproc.V37.String():
		c, took, err = bench.StartLoadedEtcdV3(etcdproc.V37, *keys)
	default:
		fmt.Fprintf(os.Stderr, "snapshotetcd: -version %q: want 3.5 or 3.7\n", *version)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshotetcd:", err)
		os.Exit(1)
	}
	defer c.Stop()
	endpoints := strings.Join(c.Endpoints(), ",")
	switch *version {
	case "":
		fmt.Fprintf(os.Stderr, "snapshotetcd: %d keys loaded into %s in %v (%.0f writes/s, %d writers)\n",
			*keys, endpoints, took.Round(time.Millisecond), float64(*keys)/took.Seconds(), bench.LoadWriters)
	default:
		how := "v3"
		if bench.LoadsV2(c.Version(), *keys) {
			how = "v3, then v2"
		}
		fmt.Fprintf(os.Stderr, "snapshotetcd: %d keys loaded into %s (etcd %s) in %v (through %s; %d writers, v3 in txns of %d)\n",
			*keys, endpoints, c.Version(), took.Round(time.Millisecond), how, bench.LoadWriters, bench.LoadTxnOps)
	}
	// Write, then rename: a reader never sees half a line.
	tmp := *ready + ".tmp"
	if err := os.WriteFile(tmp, []byte(endpoints+"\n"), 0o644); err != nil || os.Rename(tmp, *ready) != nil {
		fmt.Fprintln(os.Stderr, "snapshotetcd: writing", *ready, err)
		return
	}
	<-stop
}
