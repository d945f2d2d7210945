// Package fanout is the harness behind the fan-out figures of `make bench`
// (issue 13, item 8): how a relay (relay behind an upstream
// syncer) moves one snapshot to many clients, how fast it passes writes on,
// what an idle client costs it, and what etcd sees, each against a floor
// measured in the same run.
//
// It provides a lightweight relay client (Client: a raw TCP connection that
// sends the stream request and counts what it reads, decoding no JSON), a
// tracker of write deliveries across many clients (Deliveries), paced etcd
// writers (Write), and the two servers the benchmarks run in processes of
// their own so that their CPU can be read from /proc apart from the
// clients': the relay (RunRelay: a syncer of etcd whose host is a
// relay.Server, as `cmd/node --relay-listen` runs it, plus a stats
// endpoint) and the floor (RunFloor: one pre-built buffer written as it is
// to every connection).
//
// The benchmarks are fanout_test.go's; e2e/bench/bench.sh runs them (section
// "fanout") and e2e/bench/report renders them.
//
// # Usage
//
//	func TestMain(m *testing.M) {
//		if fanout.RunRole() { // a server process re-executed by Start
//			return
//		}
//		fanout.RaiseFileLimit()
//		code := m.Run()
//		bench.Shutdown()
//		os.Exit(code)
//	}
//
// # The caller's duties
//
//  1. Call RunRole first thing in TestMain: Start re-executes the test
//     binary with an environment that makes RunRole serve instead of
//     testing, and RunRole reports whether it did.
//  2. Stop every Proc that Start returned (Stop waits for the exit); a Proc
//     also dies with the test process (Pdeathsig).
//  3. Close every Client: each holds a socket, and at 10^4 clients the
//     process needs RaiseFileLimit.
//
// A Client is not safe for concurrent use; Deliveries is.
//
// # Scaling down
//
// The defaults are the figures (about 15 minutes on 2 idle cores,
// and some 13 GB of memory at the peak of 10^3 full clients). For a smoke
// run, these environment variables scale them down:
//
//	ETCDSYNC_FANOUT_KEYS            keys of the lightweight clients' relay (100000)
//	ETCDSYNC_FANOUT_CLIENTS         burst sizes, comma-separated (1,100,1000,10000)
//	ETCDSYNC_FANOUT_IDLE_CLIENTS    idle clients held at once (10000)
//	ETCDSYNC_FANOUT_IDLE_FOR        how long their idle CPU is measured (20s)
//	ETCDSYNC_FANOUT_LATENCY_CLIENTS lightweight clients following writes (1000)
//	ETCDSYNC_FANOUT_RATE            their write rate, per second (1000)
//	ETCDSYNC_FANOUT_FOR             how long writes go on (3s)
//	ETCDSYNC_FANOUT_FULL_KEYS       keys of the full clients' etcd (10000)
//	ETCDSYNC_FANOUT_FULL_CLIENTS    full clients behind the relay (1000)
//	ETCDSYNC_FANOUT_DIRECT_CLIENTS  full clients straight at etcd (1000)
//	ETCDSYNC_FANOUT_FULL_RATE       their write rate, per second (50)
//
// and ETCDSYNC_FANOUT_PROFILES, a directory, makes the benchmarks save the
// relay process's profiles there: CPU, mutex and allocations over the
// writes of latency/light (latency-N-*.pprof), heap and goroutines of idle
// (idle-N-*.pprof). Read them with the test binary: go tool pprof
// fanout.test latency-1000-profile.pprof.
//
// for example
//
//	ETCDSYNC_ETCD_BIN=$PWD/bin/etcd ETCDSYNC_FANOUT_KEYS=10000 ETCDSYNC_FANOUT_CLIENTS=1,100 \
//	ETCDSYNC_FANOUT_IDLE_CLIENTS=200 ETCDSYNC_FANOUT_LATENCY_CLIENTS=50 \
//	ETCDSYNC_FANOUT_FULL_CLIENTS=20 ETCDSYNC_FANOUT_DIRECT_CLIENTS=20 \
//	go test -run '^$' -bench Fanout -benchtime 1x ./e2e/bench/fanout
package fanout
