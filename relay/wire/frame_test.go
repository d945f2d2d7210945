package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcdsync/etcdsync/messages"
)

func sampleFrames() []*Frame {
	return []*Frame{
		{Type: TypeHello, Version: Version, Features: []string{FeaturePing}, Prefix: "/calico/v1", ClusterID: "c1", Revision: 7, Status: "resync"},
		{Type: TypeSnapshotBegin, ClusterID: "c1", Revision: 7, Count: 2},
		{Type: TypeKVs, KVs: []KV{{Key: "/calico/v1/a", Value: `{"x":"<&>"}`, Revision: 3}, {Key: "/calico/v1/b", Value: "", Revision: 7}}},
		{Type: TypeSnapshotEnd, Revision: 7, Status: "in-sync"},
		{Type: TypeDelta, ClusterID: "c1", Revision: 9, Changes: []Change{
			{Op: "new", Key: "/calico/v1/c", Value: "ü\n\"", Revision: 8},
			{Op: "deleted", Key: "/calico/v1/a", Revision: 9},
		}},
		{Type: TypeStatus, Status: "resync"},
		{Type: TypePing},
		{Type: TypeError, Code: CodeTooManyClients, Message: "full", RetryAfter: 5},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream []byte
	for _, f := range sampleFrames() {
		var err error
		if stream, err = Append(stream, f); err != nil {
			t.Fatal(err)
		}
	}
	if n := bytes.Count(stream, []byte("\n")); n != len(sampleFrames()) {
		t.Fatalf("%d lines for %d frames: a value's newline was not escaped", n, len(sampleFrames()))
	}
	if !bytes.Contains(stream, []byte(`<&>`)) {
		t.Errorf("values are HTML-escaped: %s", stream)
	}
	dec := NewDecoder(bytes.NewReader(stream), 0)
	for i, want := range sampleFrames() {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestDecoderRefusesOversizedFrames(t *testing.T) {
	big, _ := Append(nil, &Frame{Type: TypeKVs, KVs: []KV{{Key: "/k", Value: strings.Repeat("x", 1000)}}})
	small, _ := Append(nil, &Frame{Type: TypePing})
	if _, err := NewDecoder(bytes.NewReader(big), len(big)-1).Next(); err != nil {
		t.Errorf("a frame of exactly the limit: %v", err) // len(big) counts the newline
	}
	if _, err := NewDecoder(bytes.NewReader(big), len(big)-2).Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("a frame one byte over the limit: %v, want ErrFrameTooLarge", err)
	}
	// A stream with no newline at all is refused once past the limit, not
	// buffered without end.
	endless := io.MultiReader(bytes.NewReader(small[:len(small)-1]), strings.NewReader(strings.Repeat("y", 1<<20)))
	if _, err := NewDecoder(endless, 4096).Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("a line without end: %v, want ErrFrameTooLarge", err)
	}
}

func TestDecoderRefusesGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"not JSON":              "hello\n",
		"not an object":         "[1,2]\n",
		"no type":               `{"version":1}` + "\n",
		"unknown type":          `{"type":"shout"}` + "\n",
		"two values":            `{"type":"ping"} {"type":"ping"}` + "\n",
		"bad status":            `{"type":"status","status":"maybe"}` + "\n",
		"bad op":                `{"type":"delta","changes":[{"op":"upsert","k":"/a","r":1}]}` + "\n",
		"hello without version": `{"type":"hello"}` + "\n",
		"error without code":    `{"type":"error"}` + "\n",
		"negative count":        `{"type":"snapshot-begin","count":-1}` + "\n",
		"wrong member type":     `{"type":"delta","revision":"7"}` + "\n",
	} {
		if _, err := NewDecoder(strings.NewReader(in), 0).Next(); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
	}
	if _, err := NewDecoder(strings.NewReader(`{"type":"ping"`), 0).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a stream cut inside a frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestUnknownMembersAreIgnored(t *testing.T) {
	// A newer server may add members; an older client must still read it.
	f, err := NewDecoder(strings.NewReader(`{"type":"status","status":"in-sync","since":"later"}`+"\n"), 0).Next()
	if err != nil || f.Status != "in-sync" {
		t.Fatalf("got %+v, %v", f, err)
	}
}

// TestZstdFramesConcatenate checks what the server relies on: entries
// compressed independently, once, and written one after the other decode
// as one stream, each as soon as it has arrived.
func TestZstdFramesConcatenate(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	zr, err := NewZstdReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dec := NewDecoder(zr, 0)
	for i, f := range sampleFrames() {
		raw, _ := Append(nil, f)
		go func() { _, _ = pw.Write(Compress(nil, raw)) }()
		got := make(chan *Frame, 1)
		go func() {
			g, err := dec.Next()
			if err != nil {
				t.Error(err)
			}
			got <- g
		}()
		select {
		case g := <-got:
			if !reflect.DeepEqual(g, f) {
				t.Errorf("frame %d: got %+v, want %+v", i, g, f)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d not decoded before the next was written: the decoder reads ahead", i)
		}
	}
}

func TestChangeRoundTrip(t *testing.T) {
	u := messages.Update{Key: "/a", Value: "v", Revision: 4, Type: messages.UpdateTypeUpdated}
	got, err := ChangeOf(u).Update()
	if err != nil || got != u {
		t.Fatalf("got %v, %v; want %v", got, err, u)
	}
}

func FuzzDecoder(f *testing.F) {
	var all []byte
	for _, fr := range sampleFrames() {
		all, _ = Append(all, fr)
		b, _ := Append(nil, fr)
		f.Add(b)
	}
	f.Add(all)
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte{0xff, 0xfe, '\n'})
	f.Fuzz(func(t *testing.T, in []byte) {
		dec := NewDecoder(bytes.NewReader(in), 1024)
		m := NewMirror()
		for range 64 {
			fr, err := dec.Next()
			if err != nil {
				return // any error is fine; a panic or a hang is not
			}
			// What decodes is valid, and survives a round trip unchanged.
			b, err := Append(nil, fr)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", fr, err)
			}
			// Compared encoded: "features":[] decodes to an empty slice
			// that encodes as nothing, which is the same frame.
			again, err := NewDecoder(bytes.NewReader(b), len(b)).Next()
			if err != nil {
				t.Fatalf("re-decoding %q: %v", b, err)
			}
			if b2, _ := Append(nil, again); !bytes.Equal(b2, b) {
				t.Fatalf("round trip of %q gave %q", b, b2)
			}
			_ = m.Apply(fr) // must not panic, in any order
		}
	})
}
