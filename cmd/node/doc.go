// Command node is the reference etcdsync host: it keeps a materialized view
// of an etcd v2 key prefix (package supervisor), prints every update and
// status change as a JSON line on stdout, and serves its health, state and
// metrics over HTTP. Without --etcd-endpoints it runs an embedded
// single-member etcd, so that
//
//	go run ./cmd/node
//
// is a complete demo: the node logs the curl command that writes a key.
//
// # Flags
//
// Every flag has a default; --help lists them.
//
//	--etcd-endpoints URL,...     external etcd v2 client URLs (env ETCDSYNC_ETCD_ENDPOINTS;
//	                             the flag wins). Empty: the embedded etcd
//	--etcd-ca-file FILE          PEM CA bundle for https endpoints
//	--etcd-cert-file FILE        PEM client certificate (needs --etcd-key-file)
//	--etcd-key-file FILE         PEM client key (needs --etcd-cert-file)
//	--etcd-username USER         v2 basic auth; the password only from env ETCDSYNC_ETCD_PASSWORD
//	--embedded-etcd-listen H:P   embedded etcd's client address (127.0.0.1:2379)
//	--embedded-etcd-peer-listen H:P  its peer address (default: client port + 1)
//	--data-dir DIR               embedded etcd's data (.data/etcd, relative to the working directory)
//	--prefix /P                  key prefix to sync (/calico/v1)
//	--watch M                    long-poll (default: one request per event) or stream
//	                             (etcd's streaming watch: one connection, keeps up with more writes)
//	--on-cluster-reset P         resync (default) or stop: what to do when etcd is rebuilt or restored
//	--cluster-id-poll-interval D mean cluster-ID poll interval (10s)
//	--shutdown-timeout D         bound on each shutdown step (5s)
//	--output F                   jsonl (default) or none
//	--listen H:P                 HTTP server (127.0.0.1:9095; port 0 picks one, logged)
//	--relay-listen H:P           serve the synced view to relay clients (env ETCDSYNC_RELAY_LISTEN;
//	                             off by default; a bare :port is 127.0.0.1; needs --model raw)
//	--log-format F               text (default) or json, on stderr
//	--log-level L                debug, info (default), warn, error
//
// The embedded etcd logs through the node's logger, warnings and errors
// only. Its data directory is created on first use with a cluster token of
// its own, so its cluster ID is never etcd's well-known default.
//
// # Output
//
// With --output jsonl, stdout carries one JSON object per line, flushed
// after each batch the syncer delivers:
//
//	{"status":"wait-for-datastore"}                                  a status change
//	{"type":"new","key":"/calico/v1/a","value":"x","revision":12}    new or updated (value always present)
//	{"type":"deleted","key":"/calico/v1/a","revision":13}            deleted (no value)
//
// Applying the update lines in order to an empty map gives the view /state
// serves. Logs (log/slog) go to stderr.
//
// # HTTP endpoints
//
//	GET /healthz  200 while the syncer runs, 503 once it has stopped
//	GET /readyz   200 "in-sync" while in sync, else 503 and the status
//	GET /state    {"status":"in-sync","keys":{"/calico/v1/a":"x"}}: the view
//	              and the status it was in, read together
//	GET /metrics  Prometheus text format; the etcdsync_* metrics are fed by
//	              the syncer's supervisor.Observer, not by parsing logs:
//	  etcdsync_sync_status{status}          gauge, 1 for the current status, 0 for the others
//	  etcdsync_resyncs_total{cause}         counter, snapshots requested (start, watcher-restart)
//	  etcdsync_watcher_restarts_total       counter
//	  etcdsync_cluster_resets_total         counter, rebuilt or restored etcd seen
//	  etcdsync_snapshot_duration_seconds    histogram, snapshot request to merged
//	  etcdsync_snapshot_keys                gauge, keys in the latest snapshot
//	  etcdsync_watch_events_total           counter
//	  etcdsync_updates_total{type}          counter, delivered updates (new, updated, deleted)
//	  etcdsync_updates_suppressed_total     counter (a CounterFunc of the merger's running count)
//	  etcdsync_keys                         gauge, keys the host holds
//	  etcdsync_applied_index                gauge, highest etcd index applied
//	  etcdsync_etcd_index                   gauge, etcd's index as last seen
//	  etcdsync_watch_lag_index              gauge, max(0, etcd index - applied index)
//	  etcdsync_key_parse_failures_total     counter (always 0: the node sets no decoder)
//	  etcdsync_value_decode_failures_total  counter (always 0: the node sets no decoder)
//
// plus the Go runtime and process collectors.
//
// # Lifecycle and exit codes
//
// The node is embedded, external or a leaf (role.go), decided once from
// --etcd-endpoints and --relay-endpoints; --relay-listen adds a relay
// server to any of them. It runs as a list of components (component.go),
// started in order and stopped in reverse. SIGINT or SIGTERM stops the
// syncer, then the HTTP server, then the relay server and the embedded
// etcd, and exits 0; a second signal kills at once. If the
// syncer stops by itself (a poison batch, or a cluster reset under
// --on-cluster-reset stop), or the HTTP server or embedded etcd fails, the
// node logs one error line and exits 1. A bad flag, a taken port or an
// unusable data directory exits 2 with a message naming the flag.
//
// # node migrate
//
// `node migrate` (migrate.go, migrateconfig.go) is a subcommand: it runs the
// syncer on a v2 prefix with an internal/migrate.Host, which writes the view
// into etcd v3 (--to-endpoints, default the source's; its own --to-* TLS and
// auth), once (--once: copy, verify with a final read of both sides, print
// {"migrated":N,"deleted":M,"unchanged":U,"revision":R}) or until
// SIGINT/SIGTERM. It serves /healthz, /readyz (200 "equal" while v3 equals
// the in-sync view) and /metrics (the node's etcdsync_* plus
// etcdsync_migrate_*) on --listen. Bad flags exit 2 naming the flag; a
// source or target that cannot be used, a refused write or a source that
// keeps changing past --max-verify-rounds exit 1 with one error line and no
// summary. The README's "Moving from v2 to v3" gives the cut-over steps.
package main
