package actors_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/relay/wire"
)

// relayFeedSeeds are streams as relays send them (and a few as no relay
// should), one frame a line; an empty line breaks the stream there.
func relayFeedSeeds() [][]*wire.Frame {
	a, b := wkv("/calico/v1/a", "1", 5), wkv("/calico/v1/b", `{"x":"<&>\n"}`, 10)
	return [][]*wire.Frame{
		{hello(false), begin(cid, 10, 2), kvs(a, b), end(m.InSync),
			delta(cid, 12, wput("/calico/v1/a", "1b", 11), wgone("/calico/v1/b", 12)),
			status(m.Resync, "", 0), delta("", 0, wput("/calico/v1/c", "3", 13)), status(m.InSync, cid, 14),
			{Type: wire.TypePing}},
		{hello(false), begin("", 0, 1), kvs(a), end(m.WaitForDatastore), status(m.Resync, "", 0),
			delta("", 0, wput("/calico/v1/z", "26", 30)), status(m.InSync, cid, 31), nil,
			hello(true), status(m.InSync, cid, 31), delta(cid, 32, wput("/calico/v1/y", "25", 32))},
		{hello(false), begin(cid, 10, 1<<22), kvs(a)},
		{hello(false), begin(cid, 10, 1), kvs(a), kvs(b)},
		{hello(false), begin(cid, 10, 2), kvs(a, b), end(m.InSync), status(m.WaitForDatastore, "", 0)},
		{hello(false), begin(cid, 10, 2), kvs(a, b), end(m.InSync), delta(cid, 9, wput("/other", "x", 9))},
		{{Type: wire.TypeError, Code: wire.CodeTooManyClients, Message: "full", RetryAfter: 5}},
		// With digests, as relays send them since issue 22; then a
		// snapshot of another history at the same position.
		{hello(false), withDigest(begin(cid, 10, 2), wire.Digest(0).With(a.Key, a.Value).With(b.Key, b.Value)), kvs(a, b), end(m.InSync),
			withDigest(delta(cid, 12, wput("/calico/v1/a", "1b", 11), wgone("/calico/v1/b", 12)), wire.Digest(0).With(a.Key, "1b")),
			withDigest(status(m.InSync, cid, 12), wire.Digest(0).With(a.Key, "1b")), nil,
			hello(false), begin(cid, 12, 1), kvs(wkv("/calico/v1/a", "other", 11)), end(m.InSync)},
	}
}

// FuzzRelayFeed reads any stream of lines as the leaf does: each line is
// decoded and applied to a RelayFeed feeding a MergeCore; a line that does
// not decode, or a frame the feed refuses, breaks the stream, and the next
// line starts another, as a reconnect would. Nothing may panic; every
// error of the feed is an error of the protocol, a refusal or an upstream
// reset; and a frame refused as a protocol error changes neither the view
// nor the resume position. `go test` runs the seeds; `go test -fuzz
// FuzzRelayFeed ./actors` explores.
func FuzzRelayFeed(f *testing.F) {
	for _, seed := range relayFeedSeeds() {
		var stream []byte
		for _, fr := range seed {
			if fr != nil {
				stream, _ = wire.Append(stream, fr)
			} else {
				stream = append(stream, '\n')
			}
		}
		f.Add(stream)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		feed, core := actors.NewRelayFeed(3, time.Minute), actors.NewMergeCore()
		now := time.Unix(1000, 0)
		var merge func(ins []m.MergeInput)
		merge = func(ins []m.MergeInput) {
			for _, in := range ins {
				out := core.Step(in)
				if out.Snapshot != nil {
					more, err := feed.Request(*out.Snapshot, now)
					if err != nil && !errors.Is(err, m.ErrIndexRegressed) {
						t.Fatalf("a request failed with %v", err)
					}
					merge(more)
				}
			}
		}
		core.Start()
		broken := func(why error) {
			merge(feed.Disconnected(why))
			feed.Connected()
		}
		feed.Connected()
		for line := range bytes.SplitSeq(stream, []byte("\n")) {
			now = now.Add(time.Second)
			fr, err := wire.NewDecoder(bytes.NewReader(append(line, '\n')), 1<<16).Next()
			if err != nil {
				broken(err)
				continue
			}
			pos, digest := feed.Position(), feed.Digest()
			keys := feed.Keys()
			ins, err := feed.Frame(fr, now, feedPrefix)
			merge(ins)
			switch {
			case err == nil:
				continue
			case errors.Is(err, actors.ErrRelayProtocol):
				if p := feed.Position(); p != pos || feed.Keys() != keys || feed.Digest() != digest {
					t.Fatalf("refused %s frame moved the feed from %+v (%d keys, digest %s) to %+v (%d keys, digest %s): %v",
						fr.Type, pos, keys, digest, p, feed.Keys(), feed.Digest(), err)
				}
			case fr.Type == wire.TypeError && strings.HasPrefix(err.Error(), "relay refused"):
			case errors.Is(err, m.ErrUpstreamReset), errors.Is(err, m.ErrIndexRegressed):
				return // the supervisor rebuilds everything
			default:
				t.Fatalf("%s frame: an error of no known kind: %v", fr.Type, err)
			}
			broken(err)
		}
	})
}
