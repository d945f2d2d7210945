#!/usr/bin/env bash
# Imports run one way: cmd/node -> supervisor -> actors -> internal/source,
# messages, hwm; the etcd sources (internal/etcdv2, internal/etcdv3) sit
# beside the actors, below supervisor, which builds them.
# Nothing outside e2e/ depends on e2e/; messages and hwm depend on no package
# of ours; actors not on supervisor; cmd/node imports no actors (what a host
# may use is declared in supervisor and messages); the relay's frames
# (relay/wire) are the business of the relay server, the relay client
# actor and the specs only. `make lint` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mod=github.com/etcdsync/etcdsync
fail=0
while read -r pkg deps; do
	rel=${pkg#"$mod"}
	for dep in $deps; do
		case "$dep" in "$mod"/*) ;; *) continue ;; esac
		d=${dep#"$mod"}
		bad=""
		case "$rel" in
		/e2e/*) ;;
		*) [[ $d == /e2e/* ]] && bad="a production package depends on the test harness" ;;
		esac
		case "$rel" in
		/messages | /hwm) bad="${bad:-it must depend on no package of ours}" ;;
		/actors) [[ $d == /supervisor* || $d == /cmd/* ]] && bad="actors sit below supervisor" ;;
		/internal/*) [[ $d == /actors* || $d == /supervisor* || $d == /cmd/* ]] && bad="etcd sources sit below the actors that use them" ;;
		esac
		if [[ -n $bad ]]; then
			echo "layering: $rel depends on $d: $bad" >&2
			fail=1
		fi
	done
done < <($GO list -f '{{.ImportPath}} {{join .Deps " "}}' ./...)
while read -r pkg imports; do
	for imp in $imports; do
		if [[ $imp == "$mod/relay/wire" ]]; then
			echo "layering: ${pkg#"$mod"} imports relay/wire: frames are the relay's and its client's business" >&2
			fail=1
		fi
		if [[ $imp == "$mod/actors" ]]; then
			echo "layering: ${pkg#"$mod"} imports actors: a host uses what supervisor and messages declare" >&2
			fail=1
		fi
	done
done < <($GO list -f '{{.ImportPath}} {{join .Imports " "}}' ./cmd/...)
exit $fail
