package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdsync/etcdsync/internal/migrate"
	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

// migrateSummary is the last stdout line of a successful --once.
type migrateSummary struct {
	Migrated  int   `json:"migrated"`  // keys put into v3 by this run
	Deleted   int   `json:"deleted"`   // keys deleted from v3 by this run
	Unchanged int   `json:"unchanged"` // keys v3 held right already
	Revision  int64 `json:"revision"`  // v3's revision at the final read
}

// runMigrate is `node migrate`: it parses args, copies or mirrors, and
// returns the exit code.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseMigrateFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "node migrate: %v\nRun 'node migrate --help' for the flags.\n", err)
		return exitUsage
	}
	logger := newLogger(config{LogFormat: c.LogFormat, LogLevel: c.LogLevel}, stderr).With("cmd", "migrate")
	summary, code, err := runMigration(ctx, c, logger)
	if err != nil {
		logger.Error("migration failed; nothing is claimed", append([]any{"err", err, "exitCode", code}, errorArgs(err)...)...)
		return code
	}
	if summary != nil {
		b, _ := json.Marshal(summary) // plain ints: cannot fail
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return code
}

// runMigration runs the migration until --once is done, ctx is done or
// something fails. It returns the --once summary (nil in continuous mode),
// the exit code, and the error to log if it is not exitOK.
func runMigration(ctx context.Context, c migrateConfig, logger *slog.Logger) (*migrateSummary, int, error) {
	srcTLS, err := clientTLS("etcd-ca-file", c.CAFile, "etcd-cert-file", c.CertFile, c.KeyFile)
	if err != nil {
		return nil, exitUsage, err
	}
	dstTLS, err := clientTLS("to-ca-file", c.ToCAFile, "to-cert-file", c.ToCertFile, c.ToKeyFile)
	if err != nil {
		return nil, exitUsage, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, exitUsage, badFlag("listen", "cannot listen on %s: %w", c.Listen, err)
	}
	defer ln.Close()

	// The source: the syncer reads it, and v2 answers the TTLs it does not
	// carry.
	v2 := &migrate.V2Reader{
		Endpoints: c.Endpoints,
		Client: &http.Client{Transport: &http.Transport{
			TLSClientConfig:       srcTLS,
			ResponseHeaderTimeout: c.RequestTimeout,
			MaxIdleConnsPerHost:   4,
		}},
		Username: c.Username, Password: c.Password,
	}
	checkCtx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	err = v2.CheckPrefix(checkCtx, c.Prefix)
	cancel()
	if err != nil {
		return nil, exitFailed, &flagError{Flag: "--etcd-endpoints", Err: fmt.Errorf("the v2 source %v: %w", c.Endpoints, err)}
	}

	// The target.
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   c.ToEndpoints,
		TLS:         dstTLS,
		Username:    c.ToUsername,
		Password:    c.ToPassword,
		DialTimeout: c.RequestTimeout,
		Logger:      zap.NewNop(), // its failures reach us as errors
	})
	if err != nil {
		return nil, exitFailed, &flagError{Flag: "--to-endpoints", Err: fmt.Errorf("connecting to the v3 target %v: %w", c.ToEndpoints, err)}
	}
	defer cl.Close()
	target := &migrate.Target{
		Client:         cl,
		Prefix:         c.Prefix,
		Batcher:        migrate.Batcher{MaxOps: c.MaxTxnOps, MaxBytes: c.MaxTxnBytes},
		Parallel:       c.ParallelTxns,
		TLS:            dstTLS,
		RequestTimeout: c.RequestTimeout,
	}
	if err := target.Check(ctx); err != nil {
		return nil, exitFailed, &flagError{Flag: "--to-endpoints", Err: fmt.Errorf("the v3 target: %w", err)}
	}

	host := migrate.NewHost()
	host.Prefix, host.V2, host.V3, host.Logger = c.Prefix, v2, target, logger
	if !c.Once {
		host.ReconcileEvery = c.ReconcileInterval
	}
	m := newMetrics()
	registerMigrateMetrics(m, host)

	system := supervisor.NewSystem(actorSystemLogger(config{LogLevel: c.LogLevel}, logger))
	defer system.Shutdown()
	s, err := supervisor.Start(system, supervisor.Config{
		Endpoints:             c.Endpoints,
		API:                   supervisor.APIv2,
		TLS:                   srcTLS,
		Username:              c.Username,
		Password:              c.Password,
		Prefix:                c.Prefix,
		WatchMode:             c.WatchMode,
		Logger:                logger,
		OnClusterReset:        c.OnClusterReset,
		ClusterIDPollInterval: c.ClusterIDPollInterval,
		RequestTimeout:        c.RequestTimeout,
		Observer:              m,
	}, host)
	if err != nil {
		return nil, codeFor(err), configError(err)
	}
	syncerStopped := false
	stopSyncer := func() {
		if syncerStopped {
			return
		}
		syncerStopped = true
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
		defer cancel()
		if err := s.Stop(stopCtx); err != nil {
			logger.Warn("stopping the syncer", "err", err)
		}
	}
	defer stopSyncer()

	hostCtx, stopHost := context.WithCancel(context.WithoutCancel(ctx))
	hostErr := make(chan error, 1)
	go func() { hostErr <- host.Run(hostCtx) }()
	defer func() {
		stopHost()
		<-hostErr
	}()

	alive := func() bool {
		select {
		case <-s.Done():
			return false
		default:
			return true
		}
	}
	srv := newServer(migrateHandler(host, s, alive, m.registry), logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("stopping the HTTP server", "err", err)
		}
	}()
	logger.Info("migrating", "from", c.Endpoints, "to", c.ToEndpoints, "prefix", c.Prefix, "once", c.Once,
		"http", "http://"+ln.Addr().String())

	started := time.Now()
	fail := func(err error) (*migrateSummary, int, error) { return nil, exitFailed, err }
	copied := host.Copied()
	for {
		select {
		case <-ctx.Done():
			if c.Once {
				return fail(fmt.Errorf("stopped (%v) before the copy was verified", context.Cause(ctx)))
			}
			logger.Info("shutting down", "cause", context.Cause(ctx))
			return nil, exitOK, nil
		case <-s.Done():
			return fail(migrateSyncerStopped(s.Err()))
		case err := <-hostErr:
			hostErr <- err // for the deferred wait
			return fail(fmt.Errorf("writing into the v3 target %v: %w", c.ToEndpoints, err))
		case err := <-serveErr:
			return fail(fmt.Errorf("HTTP server on --listen %s failed: %w", c.Listen, err))
		case <-copied:
			copied = nil
			st := host.Stats()
			logger.Info("copied: v3 holds the v2 prefix as the syncer first saw it", "written", st.Written,
				"deleted", st.Deleted, "unchanged", st.Unchanged, "took", time.Since(started).Round(time.Millisecond))
			if !c.Once {
				continue
			}
			// Stop following v2 and compare both sides as they are now.
			stopSyncer()
			stopHost()
			if err := <-hostErr; err != nil && !errors.Is(err, context.Canceled) {
				hostErr <- err
				return fail(fmt.Errorf("writing into the v3 target %v: %w", c.ToEndpoints, err))
			}
			hostErr <- nil
			return verifyOnce(ctx, c, v2, target, host, logger, started)
		}
	}
}

// verifyOnce is --once's end: a final read of both sides, writing what v2
// changed meanwhile, and the summary.
func verifyOnce(ctx context.Context, c migrateConfig, v2 *migrate.V2Reader, target *migrate.Target, host *migrate.Host,
	logger *slog.Logger, started time.Time) (*migrateSummary, int, error) {
	v, err := migrate.Verify(ctx, v2, target, c.Prefix, c.MaxVerifyRounds)
	if err != nil {
		return nil, exitFailed, err
	}
	if len(v.Snapshot.EmptyDirs) > 0 {
		logger.Warn("empty v2 directories have no v3 form and were not copied", "count", len(v.Snapshot.EmptyDirs),
			"dirs", v.Snapshot.EmptyDirs[:min(len(v.Snapshot.EmptyDirs), 10)])
	}
	st := host.Stats()
	put := host.Written()
	for k := range v.Put {
		put[k] = struct{}{}
	}
	sum := &migrateSummary{Deleted: int(st.Deleted) + v.Written.Deleted, Revision: v.Revision}
	for k := range v.Snapshot.Keys {
		if _, ok := put[k]; ok {
			sum.Migrated++
		} else {
			sum.Unchanged++
		}
	}
	took := time.Since(started)
	logger.Info("verified: v3 equals v2 under the prefix", "keys", v.Keys, "migrated", sum.Migrated,
		"deleted", sum.Deleted, "unchanged", sum.Unchanged, "revision", v.Revision, "verifyRounds", v.Rounds,
		"txns", int(st.Txns)+v.Written.Txns, "took", took.Round(time.Millisecond),
		"keysPerSecond", int(float64(v.Keys)/max(took.Seconds(), 1e-3)))
	return sum, exitOK, nil
}

// migrateSyncerStopped is the error for a syncer that stopped by itself.
func migrateSyncerStopped(err error) error {
	if errors.Is(err, messages.ErrClusterIDChanged) || errors.Is(err, messages.ErrIndexRegressed) {
		return fmt.Errorf("the v2 source was rebuilt or restored, and --on-cluster-reset is stop: v3 is left as it was: %w", err)
	}
	return syncerStopped(err)
}

// migrateHandler serves the migration's health:
//
//	GET /healthz  200 while the syncer runs
//	GET /readyz   200 "equal" while v3 equals the in-sync view of v2 (every
//	              change written), else 503 and why
//	GET /metrics  Prometheus text format
func migrateHandler(host *migrate.Host, s *supervisor.Syncer, alive func() bool, registry *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !alive() {
			http.Error(w, "syncer stopped", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := host.Stats()
		switch {
		case !alive():
			http.Error(w, "syncer stopped", http.StatusServiceUnavailable)
		case s.Status() != messages.InSync:
			http.Error(w, "v2 "+s.Status().String(), http.StatusServiceUnavailable)
		case st.Err != "":
			http.Error(w, "v3 write failing: "+st.Err, http.StatusServiceUnavailable)
		case !st.Ready:
			http.Error(w, fmt.Sprintf("copying: %d keys pending", st.Pending), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "equal")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	return mux
}

// registerMigrateMetrics adds the migration's metrics to m's registry, read
// from the host at scrape time.
func registerMigrateMetrics(m *metrics, host *migrate.Host) {
	f := factory{m.registry}
	stat := func(get func(migrate.Stats) float64) func() float64 {
		return func() float64 { return get(host.Stats()) }
	}
	f.counterFunc("etcdsync_migrate_keys_written_total", "Keys put into etcd v3.",
		stat(func(s migrate.Stats) float64 { return float64(s.Written) }))
	f.counterFunc("etcdsync_migrate_keys_deleted_total", "Keys deleted from etcd v3.",
		stat(func(s migrate.Stats) float64 { return float64(s.Deleted) }))
	f.counterFunc("etcdsync_migrate_keys_unchanged_total", "Keys found right in etcd v3 when compared, and not written.",
		stat(func(s migrate.Stats) float64 { return float64(s.Unchanged) }))
	f.counterFunc("etcdsync_migrate_txns_total", "Write txns committed in etcd v3 (each takes one v3 revision).",
		stat(func(s migrate.Stats) float64 { return float64(s.Txns) }))
	f.gaugeFunc("etcdsync_migrate_applied_index", "Highest etcd v2 index whose changes under the prefix are all in v3.",
		stat(func(s migrate.Stats) float64 { return float64(s.Applied) }))
	f.gaugeFunc("etcdsync_migrate_pending_keys", "Keys changed in v2 and not yet written into v3.",
		stat(func(s migrate.Stats) float64 { return float64(s.Pending) }))
	f.gaugeFunc("etcdsync_migrate_lag_index",
		"etcdsync_applied_index (v2 changes the syncer has) minus etcdsync_migrate_applied_index (those in v3), or 0 if below.",
		func() float64 {
			st := host.Stats()
			merged := m.applied.Load()
			if merged <= st.Applied {
				return 0
			}
			return float64(merged - st.Applied)
		})
	f.gaugeFunc("etcdsync_migrate_ready", "1 while v3 equals the in-sync view of v2, else 0.",
		stat(func(s migrate.Stats) float64 {
			if s.Ready {
				return 1
			}
			return 0
		}))
}
