#!/usr/bin/env bash
# bench.sh: what `make bench` runs. It builds what the benchmarks need,
# starts one etcd holding 10^5 Calico-shaped keys for every snapshot
# benchmark, runs each measurement with `go test -bench` (raw outputs in a
# temporary directory, printed at the end), then rewrites BENCHMARKS.md from
# them with `go run ./e2e/bench/report`. About 12 minutes on 2 cores.
#
# Environment: GO (default go); BENCH_ROUNDS (default 7) snapshot rounds;
# BENCH_RAW a directory for the raw outputs (default a new temporary one).
# A failed measurement leaves its cells empty ("—"): the report is still
# written, and the script exits 1.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
GO=${GO:-go}
ROUNDS=${BENCH_ROUNDS:-7}
RAW=${BENCH_RAW:-$(mktemp -d "${TMPDIR:-/tmp}/etcdsync-bench.XXXXXX")}
mkdir -p "$RAW/bin"
START=$(date +%s)
FAILED=()

say() { printf '\n=== bench: %s\n' "$*" >&2; }

# run SECTION COMMAND: runs COMMAND with bash from the repository root,
# appending its output to $RAW/SECTION.txt and echoing it.
run() {
	local section=$1 cmd=$2
	say "$cmd"
	if ! bash -c "$cmd" 2>&1 | tee -a "$RAW/$section.txt"; then
		FAILED+=("$section")
	fi
}

# record SECTION LINE...: the commands the report shows for SECTION.
record() {
	local section=$1
	shift
	printf '%s\n' "$@" >>"$RAW/$section.cmd"
}

if [[ ! -x bin/etcd ]]; then
	say "building bin/etcd (about a minute)"
	mkdir -p bin
	$GO build -o bin/etcd go.etcd.io/etcd/server/v3 || exit 1
fi
export ETCDSYNC_ETCD_BIN=$ROOT/bin/etcd

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "go: $($GO version | sed 's/^go version //')"
	echo "etcd: $(bin/etcd --version | head -1 | sed 's/^etcd Version: //')"
	echo "load-start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/meta.txt"

say "building the snapshot etcd loader, the node binary and the test binaries"
$GO build -o "$RAW/bin/snapshotetcd" ./e2e/bench/snapshotetcd || exit 1
if $GO build -o "$RAW/bin/node" ./cmd/node 2>"$RAW/node-build.err"; then
	export ETCDSYNC_BENCH_NODE=$RAW/bin/node
else
	cp "$RAW/node-build.err" "$RAW/node-build.txt"
	export ETCDSYNC_BENCH_NODE=none
	say "cmd/node does not build: the node benchmark is skipped (see $RAW/node-build.txt)"
fi
# Compile (and cache) every test binary before anything is timed.
$GO test -run '^$' -count 1 ./e2e/bench ./hwm >/dev/null || exit 1
(cd e2e/seedbaseline && $GO test -run '^$' -count 1 . >/dev/null) || exit 1

say "starting etcd and loading 10^5 keys into it"
"$RAW/bin/snapshotetcd" -ready "$RAW/etcd.url" 2>"$RAW/snapshotetcd.log" &
HOLDER=$!
stop_holder() {
	kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
}
trap stop_holder EXIT
for _ in $(seq 300); do
	[[ -s $RAW/etcd.url ]] && break
	kill -0 "$HOLDER" 2>/dev/null || break
	sleep 1
done
if [[ ! -s $RAW/etcd.url ]]; then
	cat "$RAW/snapshotetcd.log" >&2
	echo "bench: the snapshot etcd did not come up" >&2
	exit 1
fi
export ETCDSYNC_BENCH_ETCD=$(cat "$RAW/etcd.url")
cat "$RAW/snapshotetcd.log" >&2
echo "snapshot-etcd: $(sed -n 's/^snapshotetcd: //p' "$RAW/snapshotetcd.log" | sed 's/ into [^ ]*//')" >>"$RAW/meta.txt"

# 1. Snapshots. Real etcd: rounds of -count 1 that alternate the two
# modules, so that a busy spell of the machine hits every candidate alike.
SNAP_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 10m ./e2e/bench"
SNAP_SEED="(cd e2e/seedbaseline && $GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 10m .)"
record snapshot "# ETCDSYNC_BENCH_ETCD names the etcd holding the keys; ETCDSYNC_BENCH_NODE the node binary" \
	"for round in \$(seq $ROUNDS); do" "  $SNAP_MAIN" "  $SNAP_SEED" "done"
for _ in $(seq "$ROUNDS"); do
	run snapshot "$SNAP_MAIN"
	run snapshot-seed "$SNAP_SEED"
done
stop_holder
trap - EXIT
unset ETCDSYNC_BENCH_ETCD

SIM_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshotSim\$' -benchtime 1x -benchmem -count 3 -timeout 10m ./e2e/bench"
SIM_SEED="(cd e2e/seedbaseline && $GO test -run '^\$' -bench '^BenchmarkSnapshotSim\$' -benchtime 1x -benchmem -count 3 -timeout 10m .)"
record sim "$SIM_MAIN"
record sim-seed "$SIM_SEED"
run sim "$SIM_MAIN"
run sim-seed "$SIM_SEED"

# 2. Watch throughput and lag, on an etcd of its own.
WATCH="$GO test -run '^\$' -bench '^BenchmarkWatch\$' -benchtime 1x -count 3 -timeout 10m ./e2e/bench"
record watch "$WATCH"
run watch "$WATCH"

# 3. Merge core.
MERGE="$GO test -run '^\$' -bench '^Benchmark(Merge|Pipeline)\$' -benchmem -count 5 -timeout 10m ./e2e/bench"
record merge "$MERGE"
run merge "$MERGE"

# 4. hwm, ours and the seed's. StoreUpdate/new refills its tracker from
# empty every n ops: 10^6 ops fill each size completely at least once. The
# other operations run 200 ms each, three times below 10^6 keys and once at
# 10^6; Memory (a fill, deterministic) once.
HWM_NEW="-run '^\$' -bench 'Tracker/StoreUpdate/new/' -benchtime 1000000x -benchmem -count 3 -timeout 20m"
HWM_SMALL="-run '^\$' -bench 'Tracker/(StoreUpdate|StoreDeletion|DeleteOldKeys)/(existing|host|resync)/keys=(10000|100000)\$' -benchtime 200ms -benchmem -count 3 -timeout 20m"
HWM_LARGE="-run '^\$' -bench 'Tracker/(StoreUpdate|StoreDeletion|DeleteOldKeys)/(existing|host|resync)/keys=1000000\$' -benchtime 200ms -benchmem -count 1 -timeout 20m"
HWM_MEMORY="-run '^\$' -bench 'Tracker/Memory/' -benchtime 1x -benchmem -count 1 -timeout 20m"
for args in "$HWM_NEW" "$HWM_SMALL" "$HWM_LARGE" "$HWM_MEMORY"; do
	record hwm "$GO test $args ./hwm"
	run hwm "$GO test $args ./hwm"
	record hwm-seed "(cd e2e/seedbaseline && $GO test $args .)"
	run hwm-seed "(cd e2e/seedbaseline && $GO test $args .)"
done

# With -count above 1, a benchmark that fails in a later count does not
# fail `go test`: look for the failures themselves.
for f in "$RAW"/*.txt; do
	section=$(basename "$f" .txt)
	if grep -q -- '--- FAIL' "$f" && [[ " ${FAILED[*]} " != *" $section "* ]]; then
		FAILED+=("$section")
	fi
done

END=$(date +%s)
{
	echo "load-end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "duration: $(((END - START) / 60))m$(((END - START) % 60))s"
	if ((${#FAILED[@]})); then
		echo "failed: ${FAILED[*]}"
	fi
} >>"$RAW/meta.txt"

say "writing BENCHMARKS.md"
$GO run ./e2e/bench/report -raw "$RAW" -o BENCHMARKS.md || exit 1
echo "bench: raw outputs in $RAW" >&2
if ((${#FAILED[@]})); then
	echo "bench: failed sections: ${FAILED[*]}" >&2
	exit 1
fi
