//go:build race

package node_test

// raceEnabled: the suite runs under -race, so the node is built with it too.
const raceEnabled = true
