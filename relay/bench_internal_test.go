package relay

import (
	"bytes"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/e2e/calico"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// loaded returns a server holding n Calico-shaped keys.
func loaded(b testing.TB, n int) *Server {
	s, err := New(Config{Prefix: "/calico/v1"})
	if err != nil {
		b.Fatal(err)
	}
	kvs := calico.KVs(n)
	updates := make([]messages.Update, len(kvs))
	for i, kv := range kvs {
		updates[i] = messages.Update{Key: kv.Key, Value: kv.Value, Revision: uint64(i + 1), Type: messages.UpdateTypeNew}
	}
	s.OnUpdates(updates)
	s.OnStatusUpdated(messages.InSync)
	return s
}

// BenchmarkSnapshotEncode measures building one snapshot of 10^5 keys,
// the cost a burst of clients shares, and reports its wire size.
func BenchmarkSnapshotEncode(b *testing.B) {
	s := loaded(b, 100_000)
	var sn *snapshot
	for b.Loop() {
		s.snapMu.Lock()
		s.snap = nil // no sharing: build every time
		s.snapMu.Unlock()
		sn = s.snapshotFor(time.Now(), &holder{interrupt: func() {}})
	}
	b.ReportMetric(float64(len(sn.enc.raw)), "wire-bytes")
	b.ReportMetric(float64(len(sn.enc.raw))/100_000, "bytes/key")
}

// BenchmarkSnapshotZstd measures compressing that snapshot, once per burst.
func BenchmarkSnapshotZstd(b *testing.B) {
	s := loaded(b, 100_000)
	raw := s.snapshotFor(time.Now(), &holder{interrupt: func() {}}).enc.raw
	var z []byte
	for b.Loop() {
		z = wire.Compress(z[:0], raw)
	}
	b.ReportMetric(float64(len(z)), "zstd-bytes")
	b.ReportMetric(float64(len(raw))/float64(len(z)), "ratio")
}

// BenchmarkSnapshotDecode measures what a client spends to read and apply
// that snapshot.
func BenchmarkSnapshotDecode(b *testing.B) {
	s := loaded(b, 100_000)
	raw := s.snapshotFor(time.Now(), &holder{interrupt: func() {}}).enc.raw
	hello, _ := wire.Append(nil, &wire.Frame{Type: wire.TypeHello, Version: 1})
	stream := append(hello, raw...)
	for b.Loop() {
		dec, m := wire.NewDecoder(bytes.NewReader(stream), 0), wire.NewMirror()
		for {
			f, err := dec.Next()
			if err != nil {
				break
			}
			if err := m.Apply(f); err != nil {
				b.Fatal(err)
			}
		}
		if len(m.Keys) != 100_000 {
			b.Fatalf("%d keys", len(m.Keys))
		}
	}
}
