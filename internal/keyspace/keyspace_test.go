package keyspace_test

import (
	"testing"

	"github.com/etcdsync/etcdsync/internal/keyspace"
)

func TestPrefixIsOneFormForTheSameDirectory(t *testing.T) {
	for in, want := range map[string]string{
		"/calico/v1": "/calico/v1", "/calico/v1/": "/calico/v1", "/calico/v1//": "/calico/v1", "/": "", "": "",
	} {
		if got := keyspace.Prefix(in); got != want {
			t.Errorf("Prefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainsOnlyKeysStrictlyUnderThePrefix(t *testing.T) {
	for _, c := range []struct {
		prefix, key string
		want        bool
	}{
		{"/calico/v1", "/calico/v1/a", true},
		{"/calico/v1/", "/calico/v1/a/b", true},
		{"/calico/v1", "/calico/v1", false},
		{"/calico/v1", "/calico/v1/", false},
		{"/calico/v1", "/calico/v10/a", false},
		{"/calico/v1", "/other/a", false},
		{"/calico/v1", "", false},
	} {
		if got := keyspace.Contains(c.prefix, c.key); got != c.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", c.prefix, c.key, got, c.want)
		}
	}
}
