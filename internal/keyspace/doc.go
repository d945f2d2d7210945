// Package keyspace says, in one place, what an etcd prefix is and which
// keys lie under it. The syncer's Config, the relay server and the relay
// client all compare prefixes; each normalising in its own way let a relay
// started with "/calico/v1/" refuse every leaf syncing "/calico/v1".
// The functions are pure and safe for concurrent use.
package keyspace
