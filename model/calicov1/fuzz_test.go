package calicov1_test

import (
	"errors"
	"testing"

	"github.com/etcdsync/etcdsync/model/calicov1"
)

var fuzzPaths = []string{
	"/calico/v1/Ready",
	"/calico/v1/config/LogSeverityScreen",
	"/calico/v1/host/h1/config/a/b",
	"/calico/v1/host/h1/bird_ip",
	"/calico/v1/host/h1/endpoint/eth0",
	"/calico/v1/host/h1/workload/k8s/ns%2fpod/endpoint/eth0",
	"/calico/v1/policy/tier/default/metadata",
	"/calico/v1/policy/tier/default/policy/a%25b",
	"/calico/v1/policy/profile/foo%2fbar/rules",
	"/calico/v1/policy/profile/foo/tags",
	"calico/v1/policy/profile/foo/labels",
	"/calico/v1/ipam/v4/pool/10.0.0.1-8",
	"/calico/v1/ipam/v6/pool/::ffff:10.0.0.0-104",
	"/calico/v1/ipam/v4/pool/nonsense",
	"/calico/v1/host//endpoint/e",
}

// FuzzKeyFromDefaultPath checks that KeyFromDefaultPath never panics and
// that every key it returns round-trips: its DefaultPath parses back to an
// equal key, whose DefaultPath is the same path.
func FuzzKeyFromDefaultPath(f *testing.F) {
	for _, p := range fuzzPaths {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		k := calicov1.KeyFromDefaultPath(path)
		if k == nil {
			return
		}
		p, err := k.DefaultPath()
		if err != nil {
			t.Fatalf("%q parsed to %v, whose DefaultPath fails: %v", path, k, err)
		}
		back := calicov1.KeyFromDefaultPath(p)
		if back != k {
			t.Fatalf("%q parsed to %v, whose path %q parses to %v", path, k, p, back)
		}
		if again, _ := back.DefaultPath(); again != p {
			t.Fatalf("%v writes %q, then %q", k, p, again)
		}
	})
}

// FuzzParseValue checks that ParseValue never panics, and that it returns
// either a value or an error wrapping ErrInvalidValue with a nil value.
func FuzzParseValue(f *testing.F) {
	seeds := []string{"true", "10.0.0.1", `"10.0.0.1"`, `{"state":"active","ipv4_nets":["10.0.0.1/32"]}`,
		`{"inbound_rules":[{"protocol":"tcp","src_ports":[80,"1:2","http"],"src_net":"10.0.0.0/8"}]}`,
		`["a"]`, `{"a":"b"}`, `{"cidr":"fd00::/64","ipip_mode":"always"}`, `{"mac":"ee:ee:ee:ee:ee:ee"}`}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, raw []byte) {
		k := oneOfEachKind[int(kind)%len(oneOfEachKind)]
		v, err := calicov1.ParseValue(k, raw)
		if err != nil && (v != nil || !errors.Is(err, calicov1.ErrInvalidValue)) {
			t.Fatalf("%v: %q gave %#v and %v", k, raw, v, err)
		}
	})
}
