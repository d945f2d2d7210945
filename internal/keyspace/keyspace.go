package keyspace

import "strings"

// Prefix returns p in canonical form, without trailing slashes: "/calico/v1/"
// and "/calico/v1" name the same etcd directory. "/" (the whole keyspace)
// becomes "", which callers that do not support it refuse. Two prefixes are
// the same exactly when their canonical forms are equal.
func Prefix(p string) string { return strings.TrimRight(p, "/") }

// Contains reports whether key lies strictly under the directory prefix
// (in any form): "/calico/v1/a" is under "/calico/v1", "/calico/v1" and
// "/calico/v10/a" are not.
func Contains(prefix, key string) bool {
	prefix = Prefix(prefix)
	return len(key) > len(prefix)+1 && key[len(prefix)] == '/' && strings.HasPrefix(key, prefix)
}
