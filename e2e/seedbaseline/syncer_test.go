package seedbaseline_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/e2e/etcdsim"
	"github.com/etcdsync/etcdsync/e2e/recorder"
	"github.com/etcdsync/etcdsync/e2e/seedbaseline"
)

// TestSyncerConverges guards the restatement: on the simulated etcd, the
// seed-style syncer must deliver a snapshot, then watch updates, deletions
// and a directory deletion, ending with the host's map equal to etcd's.
func TestSyncerConverges(t *testing.T) {
	ctx := context.Background()
	sim := etcdsim.New()
	initial := map[string]string{}
	for _, kv := range calico.KVs(500) {
		initial[kv.Key] = kv.Value
	}
	sim.Load(initial)
	rec := recorder.New()
	s := seedbaseline.NewSyncer(sim, calico.Prefix, rec)
	s.Start()
	defer s.Stop()

	waitFor(t, "the snapshot", func() bool { return maps.Equal(rec.InSyncMap(), sim.Map(calico.Prefix)) })
	must := func(_ *client.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sim.Set(ctx, calico.Prefix+"/config/Extra", "1", nil))
	must(sim.Set(ctx, calico.Prefix+"/config/Setting00", "changed", nil))
	must(sim.Delete(ctx, calico.Prefix+"/config/Setting01", nil))
	must(sim.Delete(ctx, calico.HostDir(0), &client.DeleteOptions{Recursive: true, Dir: true}))
	waitFor(t, "the watch", func() bool { return maps.Equal(rec.InSyncMap(), sim.Map(calico.Prefix)) })
	if err := rec.Violation(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no convergence after %s within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
