package wire

import (
	"errors"
	"net/url"
	"testing"
)

// The hash is part of the protocol: relays and clients of other builds
// must compute the same digests. These are XXH64 (seed 0) of the 8-byte
// little-endian key length, the key and the value; a change here breaks
// every resume across versions.
func TestKeyHashIsFixed(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		want       uint64
	}{
		{"", "", 0x34c96acdcadb1bbb}, // XXH64 of 8 zero bytes, a published test vector
		{"/calico/v1/a", "x", 0xdbe31d1b8c312dd3},
	} {
		if got := KeyHash(tc.key, tc.value); got != tc.want {
			t.Errorf("KeyHash(%q, %q) = %#x; want %#x", tc.key, tc.value, got, tc.want)
		}
	}
	if KeyHash("ab", "c") == KeyHash("a", "bc") {
		t.Error("the key's length does not separate key from value")
	}
}

func TestDigestIsIncremental(t *testing.T) {
	view := map[string]string{"/a": "1", "/b": "2"}
	d := DigestOf(view, func(v string) string { return v })
	d = d.Put("/a", "1b", "1", true) // update
	d = d.Put("/c", "3", "", false)  // create
	d = d.Without("/b", "2")         // delete
	want := DigestOf(map[string]string{"/a": "1b", "/c": "3"}, func(v string) string { return v })
	if d != want {
		t.Errorf("incremental %v, recomputed %v", d, want)
	}
	if DigestOf(map[string]string{}, func(v string) string { return v }) != 0 {
		t.Error("the empty view's digest is not 0")
	}
}

func TestParseDigest(t *testing.T) {
	for _, d := range []Digest{0, 1, 0xfedcba9876543210} {
		got, err := ParseDigest(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDigest(%q) = %v, %v", d.String(), got, err)
		}
	}
	for _, s := range []string{"", "0", "FEDCBA9876543210", "0x00000000000000", "00000000000000000", "+000000000000000"} {
		if _, err := ParseDigest(s); !errors.Is(err, ErrBadFrame) {
			t.Errorf("ParseDigest(%q) = %v; want ErrBadFrame", s, err)
		}
	}
	f := &Frame{Type: TypeDelta, ClusterID: "c", Revision: 1, Digest: "nothex"}
	if err := f.Validate(); !errors.Is(err, ErrBadFrame) {
		t.Errorf("a frame with digest %q validated: %v", f.Digest, err)
	}
}

func TestPositionAddTo(t *testing.T) {
	q := url.Values{}
	Position{}.AddTo(q)
	Position{ClusterID: "c"}.AddTo(q)
	if len(q) != 0 {
		t.Errorf("no position set %v", q)
	}
	Position{ClusterID: "c", Revision: 7, Digest: Digest(5).String()}.AddTo(q)
	if q.Get(ParamClusterID) != "c" || q.Get(ParamRevision) != "7" || q.Get(ParamDigest) != "0000000000000005" {
		t.Errorf("AddTo set %v", q)
	}
}
