package relay

import (
	"testing"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// BenchmarkOnUpdates measures the write path a relay pays for every batch
// its syncer delivers in sync: apply to the view, encode once, append to
// the log. Each op is one batch of 100 Calico-shaped updates to keys the
// view holds (of 10^4), so the view keeps its size.
func BenchmarkOnUpdates(b *testing.B) {
	const keys, batch = 10_000, 100
	s := loaded(b, keys)
	kvs := calico.KVs(keys)
	rev := uint64(keys)
	updates := make([]messages.Update, batch)
	i := 0
	for b.Loop() {
		for j := range updates {
			kv := kvs[i%keys]
			rev++
			i++
			updates[j] = messages.Update{Key: kv.Key, Value: kv.Value, Revision: rev, Type: messages.UpdateTypeUpdated}
		}
		s.OnUpdates(updates)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/update")
}

// BenchmarkDigestPut measures what the view digest adds to each update the
// relay applies (and each change a leaf applies): two KeyHash calls, the
// old value out and the new one in, on Calico-shaped keys and values.
func BenchmarkDigestPut(b *testing.B) {
	kvs := calico.KVs(1000)
	var d wire.Digest
	i := 0
	for b.Loop() {
		kv := kvs[i%len(kvs)]
		d = d.Put(kv.Key, kv.Value, kv.Value, true)
		i++
	}
	n := 0
	for _, kv := range kvs {
		n += len(kv.Key) + len(kv.Value)
	}
	b.ReportMetric(float64(n)/float64(len(kvs)), "bytes/kv")
}
