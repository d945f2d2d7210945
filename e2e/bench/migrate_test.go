package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdsync/etcdsync/e2e/bench"
	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/internal/migrate"
)

// BenchmarkMigrate times `node migrate --once` copying the snapshot etcd's
// v2 prefix into its own v3 store, against the two floors of issue 24,
// measured on the same etcd in the same run:
//
//   - read-floor: the v2 recursive GET (MeasureFloor);
//   - write-floor: a bare v3 txn loader writing the same keys in the same
//     batches (128 puts a txn, one after another, as the migration does);
//   - node-once-parallel-P: the node binary with --parallel-txns P, from
//     start to its summary line, v3's range emptied (off the clock) before
//     each run, so that every key is written;
//   - node-once-ops-N: the same with --max-txn-ops N, to see which batching
//     is fastest.
//
// Both writers report the v3 revisions they used per key written.
func BenchmarkMigrate(b *testing.B) {
	endpoints := bench.SnapshotEtcd(b)
	n := bench.SnapshotKeyCount()
	keys, err := bench.KeysAPI(endpoints, 2)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	bench.WarmUp(b, endpoints[0], calico.Prefix)

	// empty deletes the v3 copy and compacts it away, so that each run
	// starts from an empty target and the store does not grow run on run.
	empty := func(b *testing.B) int64 {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := cl.Delete(ctx, calico.Prefix+"/", clientv3.WithPrefix())
		if err != nil {
			b.Fatalf("emptying v3: %v", err)
		}
		if _, err := cl.Compact(ctx, resp.Header.Revision); err != nil {
			b.Fatalf("compacting v3: %v", err)
		}
		return resp.Header.Revision
	}

	b.Run("read-floor", func(b *testing.B) {
		bench.MeasureFloor(b, keys, calico.Prefix, n)
	})

	b.Run("write-floor", func(b *testing.B) {
		kvs := calico.KVs(n)
		var revs, written int64
		for range b.N {
			b.StopTimer()
			before := empty(b)
			b.StartTimer()
			var last int64
			for start := 0; start < len(kvs); start += migrate.DefaultMaxTxnOps {
				batch := kvs[start:min(start+migrate.DefaultMaxTxnOps, len(kvs))]
				ops := make([]clientv3.Op, len(batch))
				for i, kv := range batch {
					ops[i] = clientv3.OpPut(kv.Key, kv.Value)
				}
				resp, err := cl.Txn(context.Background()).Then(ops...).Commit()
				if err != nil {
					b.Fatalf("txn: %v", err)
				}
				last = resp.Header.Revision
			}
			b.StopTimer()
			revs += last - before
			written += int64(len(kvs))
		}
		b.ReportMetric(float64(revs)/float64(written), "revisions/key")
	})

	for _, par := range []string{"1", "4", "8"} {
		b.Run("node-once-parallel-"+par, func(b *testing.B) { measureMigrateOnce(b, endpoints, n, empty, "--parallel-txns", par) })
	}
	// Smaller txns, at the default parallelism: etcd's default
	// --max-txn-ops (128) is the largest a default target takes.
	for _, ops := range []string{"32", "64"} {
		b.Run("node-once-ops-"+ops, func(b *testing.B) { measureMigrateOnce(b, endpoints, n, empty, "--max-txn-ops", ops) })
	}
}

// measureMigrateOnce times `node migrate --once` with extra flags, b.N
// times, each after empty, and reports the v3 revisions used per key.
func measureMigrateOnce(b *testing.B, endpoints []string, n int, empty func(*testing.B) int64, extra ...string) {
	bin := nodeBinary(b)
	{
		var revs, written int64
		for range b.N {
			b.StopTimer()
			before := empty(b)
			cmd := exec.Command(bin, append([]string{"migrate", "--once", "--etcd-endpoints", endpoints[0], "--prefix", calico.Prefix,
				"--listen", "127.0.0.1:0"}, extra...)...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			b.StartTimer()
			err := cmd.Run()
			b.StopTimer()
			if err != nil {
				b.Fatalf("node migrate --once: %v: %s", err, errOut.Bytes())
			}
			var s struct {
				Migrated int   `json:"migrated"`
				Revision int64 `json:"revision"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &s); err != nil || s.Migrated != n {
				b.Fatalf("node migrate --once printed %q (%v); want %d migrated", out.Bytes(), err, n)
			}
			revs += s.Revision - before
			written += int64(s.Migrated)
			// Where the time went: the copy (syncer snapshot, TTL read,
			// writes), then the verification.
			for _, l := range bytes.Split(errOut.Bytes(), []byte("\n")) {
				if bytes.Contains(l, []byte("msg=\"copied")) || bytes.Contains(l, []byte("msg=\"verified")) {
					b.Logf("%s", l)
				}
			}
		}
		b.ReportMetric(float64(revs)/float64(written), "revisions/key")
	}
}
