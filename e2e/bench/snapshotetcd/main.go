// Command snapshotetcd starts one etcd member, loads 10^5 Calico-shaped keys
// into it (bench.StartLoadedEtcd), writes its client URL to the file named
// by -ready, and keeps it running until SIGINT or SIGTERM. bench.sh runs it
// so that every snapshot benchmark process of one `make bench`, in either
// module, reads the same etcd (through ETCDSYNC_BENCH_ETCD) and the keys are
// loaded once.
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
)

func main() {
	ready := flag.String("ready", "", "file to write the etcd client URLs to once the keys are loaded")
	keys := flag.Int("keys", bench.SnapshotKeyCount(), "how many Calico-shaped keys to load")
	flag.Parse()
	if *ready == "" {
		fmt.Fprintln(os.Stderr, "snapshotetcd: -ready is required")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	c, took, err := bench.StartLoadedEtcd(*keys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshotetcd:", err)
		os.Exit(1)
	}
	defer c.Stop()
	endpoints := strings.Join(c.Endpoints(), ",")
	fmt.Fprintf(os.Stderr, "snapshotetcd: %d keys loaded into %s in %v (%.0f writes/s, %d writers)\n",
		*keys, endpoints, took.Round(time.Millisecond), float64(*keys)/took.Seconds(), bench.LoadWriters)
	// Write, then rename: a reader never sees half a line.
	tmp := *ready + ".tmp"
	if err := os.WriteFile(tmp, []byte(endpoints+"\n"), 0o644); err != nil || os.Rename(tmp, *ready) != nil {
		fmt.Fprintln(os.Stderr, "snapshotetcd: writing", *ready, err)
		return
	}
	<-stop
}
