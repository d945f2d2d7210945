#!/usr/bin/env bash
# bench.sh: what `make bench` runs. It builds what the benchmarks need,
# starts one etcd holding 10^5 Calico-shaped keys for every snapshot
# benchmark, runs each measurement with `go test -bench` (raw outputs in a
# temporary directory, printed at the end), then rewrites BENCHMARKS.md from
# them with `go run ./e2e/bench/report`. About 13 minutes on 2 cores, and
# 7 more for the v3 source (section 6).
#
# Environment: GO (default go); BENCH_ROUNDS (default 7) snapshot rounds;
# BENCH_RAW a directory for the raw outputs (default a new temporary one);
# BENCH_LARGE=1 also loads 10^6 keys into a second etcd (about 3 minutes)
# and runs BENCH_LARGE_ROUNDS (default 3) snapshot rounds on it, about 10
# minutes more, and the same for the v3 source on etcd 3.5 and 3.7.
# BENCH_SECTIONS selects what runs, as a space-separated subset of
# "snapshot sim watch merge hwm fanout v3 migrate" (default: all of them;
# snapshot includes its 10^6-key rounds); BENCH_FANOUT=0 drops the fan-out
# section (section 5) from it. BENCH_OUT is the report to (re)write (default
# BENCHMARKS.md): with a subset of the sections, write it elsewhere, or the
# sections left out show "—" in BENCHMARKS.md. Section 7 (node migrate
# --once against its floors) takes about 3 minutes.
# A failed measurement leaves its cells empty ("—"): the report is still
# written, and the script exits 1.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
GO=${GO:-go}
ROUNDS=${BENCH_ROUNDS:-7}
LARGE=${BENCH_LARGE:-0}
LARGE_ROUNDS=${BENCH_LARGE_ROUNDS:-3}
LARGE_KEYS=1000000
SECTIONS=" ${BENCH_SECTIONS:-snapshot sim watch merge hwm fanout v3 migrate} "
if [[ ${BENCH_FANOUT:-1} != 1 ]]; then
	SECTIONS=${SECTIONS/ fanout / }
fi
OUT=${BENCH_OUT:-BENCHMARKS.md}
RAW=${BENCH_RAW:-$(mktemp -d "${TMPDIR:-/tmp}/etcdsync-bench.XXXXXX")}
mkdir -p "$RAW/bin"
START=$(date +%s)
FAILED=()

say() { printf '\n=== bench: %s\n' "$*" >&2; }

# want SECTION: whether BENCH_SECTIONS selects SECTION.
want() { [[ $SECTIONS == *" $1 "* ]]; }

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
if want v3 && [[ ! -x bin/etcd37 ]]; then
	say "building bin/etcd37 (minutes the first time)"
	(cd e2e/etcd37 && $GO build -o "$ROOT/bin/etcd37" go.etcd.io/etcd/server/v3) || exit 1
fi
if [[ -x bin/etcd37 ]]; then
	export ETCDSYNC_ETCD37_BIN=$ROOT/bin/etcd37
fi

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "go: $($GO version | sed 's/^go version //')"
	echo "etcd: $(bin/etcd --version | head -1 | sed 's/^etcd Version: //')"
	if want v3; then
		echo "etcd37: $(bin/etcd37 --version | head -1 | sed 's/^etcd Version: //')"
	fi
	echo "sections: $SECTIONS"
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

# start_holder KEYS [VERSION]: starts e2e/bench/snapshotetcd loading KEYS
# keys, waits until they are in, and exports ETCDSYNC_BENCH_ETCD; with
# VERSION (3.5 or 3.7), into that etcd through the v3 API, exporting
# ETCDSYNC_BENCH_ETCD35 or ETCDSYNC_BENCH_ETCD37. The etcds run until
# stop_holders. The load's figures go to meta.txt as snapshot-etcd-KEYS, or
# snapshot-etcd-KEYS-vVERSION.
HOLDERS=()
stop_holders() {
	local pid
	for pid in "${HOLDERS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	HOLDERS=()
}
trap stop_holders EXIT
start_holder() {
	local keys=$1 version=${2:-} name=$1 var=ETCDSYNC_BENCH_ETCD pid
	if [[ -n $version ]]; then
		name=$keys-v$version var=ETCDSYNC_BENCH_ETCD${version/./}
	fi
	local url=$RAW/etcd-$name.url log=$RAW/snapshotetcd-$name.log
	say "starting etcd ${version:-3.5} and loading $keys keys into it${version:+ through the v3 API}"
	"$RAW/bin/snapshotetcd" -keys "$keys" ${version:+-version "$version"} -ready "$url" 2>"$log" &
	pid=$!
	HOLDERS+=("$pid")
	for _ in $(seq 900); do
		[[ -s $url ]] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	if [[ ! -s $url ]]; then
		cat "$log" >&2
		echo "bench: the snapshot etcd did not come up" >&2
		return 1
	fi
	export "$var=$(cat "$url")"
	cat "$log" >&2
	echo "snapshot-etcd-$name: $(sed -n 's/^snapshotetcd: //p' "$log" | sed 's/ into [^ ]*//')" >>"$RAW/meta.txt"
}

# 1. Snapshots. Real etcd: rounds of -count 1 that alternate the two
# modules, so that a busy spell of the machine hits every candidate alike.
if want snapshot || want migrate; then
	start_holder 100000 || exit 1
fi
if want snapshot; then
	SNAP_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 10m ./e2e/bench"
	SNAP_SEED="(cd e2e/seedbaseline && $GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 10m .)"
	record snapshot "# ETCDSYNC_BENCH_ETCD names the etcd holding the keys; ETCDSYNC_BENCH_NODE the node binary" \
		"for round in \$(seq $ROUNDS); do" "  $SNAP_MAIN" "  $SNAP_SEED" "done"
	for _ in $(seq "$ROUNDS"); do
		run snapshot "$SNAP_MAIN"
		run snapshot-seed "$SNAP_SEED"
	done
fi
# 1c. `node migrate --once` on the same etcd, into its v3 store (section 7).
if want migrate; then
	MIGRATE="$GO test -run '^\$' -bench '^BenchmarkMigrate\$' -benchtime 1x -count 3 -timeout 30m ./e2e/bench"
	record migrate "# ETCDSYNC_BENCH_ETCD names the etcd holding the keys; ETCDSYNC_BENCH_NODE the node binary" "$MIGRATE"
	run migrate "$MIGRATE"
fi
if want snapshot || want migrate; then
	stop_holders
fi
if want snapshot; then

	# 1b. The same at 10^6 keys, with BENCH_LARGE=1.
	if [[ $LARGE == 1 ]]; then
		if start_holder $LARGE_KEYS; then
			export ETCDSYNC_BENCH_KEYS=$LARGE_KEYS
			LARGE_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 30m ./e2e/bench"
			LARGE_SEED="(cd e2e/seedbaseline && $GO test -run '^\$' -bench '^BenchmarkSnapshot\$' -benchtime 1x -benchmem -count 1 -timeout 30m .)"
			record snapshot-large "# BENCH_LARGE=1: ETCDSYNC_BENCH_KEYS=$LARGE_KEYS, ETCDSYNC_BENCH_ETCD an etcd holding that many keys" \
				"for round in \$(seq $LARGE_ROUNDS); do" "  ETCDSYNC_BENCH_KEYS=$LARGE_KEYS $LARGE_MAIN" "  ETCDSYNC_BENCH_KEYS=$LARGE_KEYS $LARGE_SEED" "done"
			for _ in $(seq "$LARGE_ROUNDS"); do
				run snapshot-large "$LARGE_MAIN"
				run snapshot-large-seed "$LARGE_SEED"
			done
			unset ETCDSYNC_BENCH_KEYS
		else
			FAILED+=("snapshot-large")
		fi
		stop_holders
	fi
	unset ETCDSYNC_BENCH_ETCD
fi

if want sim; then
	SIM_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshotSim\$' -benchtime 1x -benchmem -count 3 -timeout 10m ./e2e/bench"
	SIM_SEED="(cd e2e/seedbaseline && $GO test -run '^\$' -bench '^BenchmarkSnapshotSim\$' -benchtime 1x -benchmem -count 3 -timeout 10m .)"
	record sim "$SIM_MAIN"
	record sim-seed "$SIM_SEED"
	run sim "$SIM_MAIN"
	run sim-seed "$SIM_SEED"
fi

# 2. Watch throughput and lag, on an etcd of its own.
if want watch; then
	WATCH="$GO test -run '^\$' -bench '^BenchmarkWatch\$' -benchtime 1x -count 3 -timeout 10m ./e2e/bench"
	record watch "$WATCH"
	run watch "$WATCH"
fi

# 3. Merge core.
if want merge; then
	MERGE="$GO test -run '^\$' -bench '^Benchmark(Merge|Pipeline)\$' -benchmem -count 5 -timeout 10m ./e2e/bench"
	record merge "$MERGE"
	run merge "$MERGE"
fi

# 4. hwm, ours and the seed's. StoreUpdate/new refills its tracker from
# empty every n ops: 10^6 ops fill each size completely at least once. The
# other operations run 200 ms each, three times below 10^6 keys and once at
# 10^6; Memory (a fill, deterministic) once.
if want hwm; then
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
fi

# 5. Fan-out: a relay process (syncer + relay.Server) on its own etcd of
# 10^5 keys, against a floor process writing the same stream bytes from one
# buffer; full clients on a second etcd of 10^4 keys. The test binary raises
# its RLIMIT_NOFILE to the hard limit for 10^4 clients. BENCH_FANOUT=0
# skips it (about 15 minutes on 2 idle cores, more on a busy machine; most
# of it is moving 10^4 snapshots of 33 MB, and some 13 GB of memory at the
# peak of 10^3 full clients).
if want fanout; then
	$GO test -run '^$' -count 1 ./e2e/bench/fanout >/dev/null || FAILED+=("fanout")
	FANOUT="$GO test -run '^\$' -bench '^BenchmarkFanout\$' -benchtime 1x -count 1 -timeout 90m ./e2e/bench/fanout"
	record fanout "# RLIMIT_NOFILE: soft $(ulimit -Sn), hard $(ulimit -Hn); the benchmark raises the soft limit to the hard one" "$FANOUT"
	run fanout "$FANOUT"
fi

# 6. The v3 source (internal/etcdv3) on etcd 3.5 and 3.7, each holding the
# keys through the v3 API (3.5 through v2 too, for the v2 syncer's row on
# the same keys): rounds of BenchmarkSnapshotV3, each measuring both
# versions, the floor first. Then its watch, on an etcd of each version of
# its own.
if want v3; then
	V3_MAIN="$GO test -run '^\$' -bench '^BenchmarkSnapshotV3\$' -benchtime 1x -benchmem -count 1 -timeout 20m ./e2e/bench"
	if start_holder 100000 3.5 && start_holder 100000 3.7; then
		record v3 "# ETCDSYNC_BENCH_ETCD35 and ETCDSYNC_BENCH_ETCD37 name etcds holding the keys through v3 (3.5: and v2); ETCDSYNC_BENCH_NODE the node binary" \
			"for round in \$(seq $ROUNDS); do" "  $V3_MAIN" "done"
		for _ in $(seq "$ROUNDS"); do
			run v3 "$V3_MAIN"
		done
	else
		FAILED+=("v3")
	fi
	stop_holders
	if [[ $LARGE == 1 ]]; then
		if start_holder $LARGE_KEYS 3.5 && start_holder $LARGE_KEYS 3.7; then
			V3_LARGE="ETCDSYNC_BENCH_KEYS=$LARGE_KEYS $GO test -run '^\$' -bench '^BenchmarkSnapshotV3\$' -benchtime 1x -benchmem -count 1 -timeout 60m ./e2e/bench"
			record v3-large "# BENCH_LARGE=1: ETCDSYNC_BENCH_ETCD35 and ETCDSYNC_BENCH_ETCD37 name etcds holding $LARGE_KEYS keys" \
				"for round in \$(seq $LARGE_ROUNDS); do" "  $V3_LARGE" "done"
			for _ in $(seq "$LARGE_ROUNDS"); do
				run v3-large "$V3_LARGE"
			done
		else
			FAILED+=("v3-large")
		fi
		stop_holders
	fi
	unset ETCDSYNC_BENCH_ETCD35 ETCDSYNC_BENCH_ETCD37
	WATCH_V3="$GO test -run '^\$' -bench '^BenchmarkWatchV3\$' -benchtime 1x -count 3 -timeout 20m ./e2e/bench"
	record watch-v3 "$WATCH_V3"
	run watch-v3 "$WATCH_V3"
fi

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

say "writing $OUT"
$GO run ./e2e/bench/report -raw "$RAW" -o "$OUT" || exit 1
echo "bench: raw outputs in $RAW" >&2
if ((${#FAILED[@]})); then
	echo "bench: failed sections: ${FAILED[*]}" >&2
	exit 1
fi
