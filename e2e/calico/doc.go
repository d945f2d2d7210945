// Package calico generates Calico-shaped etcd v2 key sets for benchmarks and
// specs: the v1 data model's paths (hosts with workload and host endpoints,
// policies under a tier, profiles, global and per-host config, IP pools) in
// the proportions of a real cluster, dominated by workload endpoints.
//
// Output is deterministic: the same n always gives the same keys, values and
// order, so figures measured on it compare across runs. It holds no state and
// does no I/O.
package calico
