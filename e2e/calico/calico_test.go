package calico_test

import (
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/e2e/calico"
)

func TestKVsAreExactDistinctAndStable(t *testing.T) {
	for _, n := range []int{1, 7, 100, 1000, 12345} {
		kvs := calico.KVs(n)
		if len(kvs) != n {
			t.Fatalf("KVs(%d) gave %d pairs", n, len(kvs))
		}
		seen := map[string]bool{}
		for _, kv := range kvs {
			if seen[kv.Key] {
				t.Fatalf("KVs(%d) repeats %q", n, kv.Key)
			}
			seen[kv.Key] = true
			if !strings.HasPrefix(kv.Key, calico.Prefix+"/") || kv.Value == "" {
				t.Fatalf("KVs(%d) gave %q=%q", n, kv.Key, kv.Value)
			}
		}
		if again := calico.KVs(n); again[0] != kvs[0] || again[n-1] != kvs[n-1] {
			t.Fatalf("KVs(%d) is not deterministic", n)
		}
	}
}

func TestWorkloadEndpointsDominate(t *testing.T) {
	keys := calico.Keys(100000)
	workloads, underHost0 := 0, 0
	for _, k := range keys {
		if strings.Contains(k, "/workload/") {
			workloads++
		}
		if strings.HasPrefix(k, calico.HostDir(0)+"/") {
			underHost0++
		}
	}
	if workloads < 80000 {
		t.Fatalf("only %d of 100000 keys are workload endpoints", workloads)
	}
	if underHost0 < 50 || underHost0 > 200 {
		t.Fatalf("host 0 holds %d keys; want about 100", underHost0)
	}
}
