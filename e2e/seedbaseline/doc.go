// Package seedbaseline restates, for measurement only, the data structures
// of the syncer etcdsync re-designs (libcalico-go, 2016-2017), so that
// `make bench` can put every figure beside the one it replaces, measured in
// the same run by the same code.
//
// It is a module of its own so that the seed's dependencies (a byte-wise
// patricia trie) stay out of etcdsync's dependency graph. Nothing outside
// benchmarks may import it.
package seedbaseline
