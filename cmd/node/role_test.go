package main

import (
	"bytes"
	"io"
	"slices"
	"testing"
)

func TestRoleIsDecidedByTheEndpoints(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want role
	}{
		{nil, nil, roleEmbedded},
		{[]string{"--relay-listen", ":7000"}, nil, roleEmbedded}, // a relay is an add-on, not a role
		{[]string{"--etcd-endpoints", "http://a:2379"}, nil, roleExternal},
		{nil, map[string]string{envEndpoints: "http://a:2379"}, roleExternal},
		{[]string{"--relay-endpoints", "http://r:9096"}, nil, roleLeaf},
		{nil, map[string]string{envRelayEndpoints: "http://r:9096"}, roleLeaf},
	} {
		c, err := parseFlags(tc.args, env(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Errorf("parseFlags(%q, %v) = %v", tc.args, tc.env, err)
			continue
		}
		if c.Role != tc.want {
			t.Errorf("parseFlags(%q, %v): role %v, want %v", tc.args, tc.env, c.Role, tc.want)
		}
	}
}

// Each role runs its own components, in the order they start; they stop in
// reverse: the syncer first, the embedded etcd last.
func TestNodeComponentsPerRole(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"listeners", "embedded etcd", "HTTP server", "syncer"}},
		{[]string{"--relay-listen", ":7000"}, []string{"listeners", "embedded etcd", "relay server", "HTTP server", "syncer"}},
		{[]string{"--etcd-endpoints", "http://a:2379"}, []string{"listeners", "HTTP server", "syncer"}},
		{[]string{"--relay-endpoints", "http://r:9096", "--relay-listen", ":7000"},
			[]string{"listeners", "relay server", "HTTP server", "syncer"}},
	} {
		c, err := parseFlags(tc.args, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("parseFlags(%q) = %v", tc.args, err)
		}
		cs, _, err := nodeComponents(c, discardLogger, io.Discard)
		if err != nil {
			t.Fatalf("nodeComponents(%q) = %v", tc.args, err)
		}
		var got []string
		for _, part := range cs.list {
			got = append(got, part.name())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: components %q, want %q", tc.args, got, tc.want)
		}
	}
}
