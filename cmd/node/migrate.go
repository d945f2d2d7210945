package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	logger := newLogger(c.processFlags, stderr).With("cmd", "migrate")
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

// migration is a running node migrate: its components, and what --once
// reads at its end.
type migration struct {
	c       migrateConfig
	logger  *slog.Logger
	cs      *components
	ls      *listeners
	v2      *migrate.V2Reader
	target  *migrate.Target
	host    *migrate.Host
	syncer  *syncer
	writer  *writer
	started time.Time
}

// runMigration runs the migration until --once is done, ctx is done or
// something fails. It returns the --once summary (nil in continuous mode),
// the exit code, and the error to log if it is not exitOK.
func runMigration(ctx context.Context, c migrateConfig, logger *slog.Logger) (*migrateSummary, int, error) {
	mg, err := newMigration(c, logger)
	if err != nil {
		return nil, codeFor(err), err
	}
	switch err := mg.cs.start(ctx); {
	case errors.Is(err, errStoppedStarting) && !c.Once:
		return nil, exitOK, nil
	case errors.Is(err, errStoppedStarting):
		return mg.interrupted(ctx)
	case err != nil:
		return nil, codeFor(err), err
	}
	defer mg.cs.stop(ctx)
	logger.Info("migrating", "from", c.Endpoints, "to", c.ToEndpoints, "prefix", c.Prefix, "once", c.Once,
		"http", "http://"+mg.ls.http.Addr().String())
	mg.started = time.Now()
	copied := mg.host.Copied()
	for {
		select {
		case <-ctx.Done():
			return mg.interrupted(ctx)
		case err := <-mg.cs.failures:
			return nil, exitFailed, err
		case <-copied:
			copied = nil
			st := mg.host.Stats()
			logger.Info("copied: v3 holds the v2 prefix as the syncer first saw it", "written", st.Written,
				"deleted", st.Deleted, "unchanged", st.Unchanged, "took", time.Since(mg.started).Round(time.Millisecond))
			if c.Once {
				return mg.finishOnce(ctx)
			}
		}
	}
}

// interrupted is the end of a migration stopped by a signal: done in
// continuous mode, a failure with --once.
func (mg *migration) interrupted(ctx context.Context) (*migrateSummary, int, error) {
	if mg.c.Once {
		return nil, exitFailed, fmt.Errorf("stopped (%v) before the copy was verified", context.Cause(ctx))
	}
	mg.logger.Info("shutting down", "cause", context.Cause(ctx))
	return nil, exitOK, nil
}

// newMigration returns node migrate's components, in start order: the
// listener, the v2 source's check, the v3 target's client, the syncer on
// v2, the host writing into v3, the HTTP server. Nothing has started yet;
// an error is a TLS file that cannot be used.
func newMigration(c migrateConfig, logger *slog.Logger) (*migration, error) {
	srcTLS, err := c.TLS.load()
	if err != nil {
		return nil, err
	}
	dstTLS, err := c.ToTLS.load()
	if err != nil {
		return nil, err
	}
	mg := &migration{c: c, logger: logger, cs: newComponents(logger, c.ShutdownTimeout), ls: &listeners{httpAddr: c.Listen}}
	// The source: the syncer reads it, and v2 answers the TTLs it does not
	// carry.
	mg.v2 = &migrate.V2Reader{
		Endpoints: c.Endpoints,
		Client: &http.Client{Transport: &http.Transport{
			TLSClientConfig:       srcTLS,
			ResponseHeaderTimeout: c.RequestTimeout,
			MaxIdleConnsPerHost:   4,
		}},
		Username: c.Login.Username, Password: c.Login.Password,
	}
	mg.target = &migrate.Target{ // its Client is made at start
		Prefix:         c.Prefix,
		Batcher:        migrate.Batcher{MaxOps: c.MaxTxnOps, MaxBytes: c.MaxTxnBytes},
		Parallel:       c.ParallelTxns,
		TLS:            dstTLS,
		RequestTimeout: c.RequestTimeout,
	}
	mg.host = migrate.NewHost()
	mg.host.Prefix, mg.host.V2, mg.host.V3, mg.host.Logger = c.Prefix, mg.v2, mg.target, logger
	if !c.Once {
		mg.host.ReconcileEvery = c.ReconcileInterval
	}
	m := newMetrics()
	registerMigrateMetrics(m, mg.host)
	mg.syncer = &syncer{cfg: supervisor.Config{
		Endpoints:             c.Endpoints,
		API:                   supervisor.APIv2,
		TLS:                   srcTLS,
		Username:              c.Login.Username,
		Password:              c.Login.Password,
		Prefix:                c.Prefix,
		WatchMode:             c.WatchMode,
		Logger:                logger,
		OnClusterReset:        c.OnClusterReset,
		ClusterIDPollInterval: c.ClusterIDPollInterval,
		RequestTimeout:        c.RequestTimeout,
		Observer:              m,
	}, host: mg.host, systemLogger: actorSystemLogger(c.processFlags, logger), stopped: migrateSyncerStopped, fail: mg.cs.fail}
	mg.writer = &writer{host: mg.host, to: c.ToEndpoints, fail: mg.cs.fail}
	srv := newServer(migrateHandler(mg.host, mg.syncer, m.registry), logger)
	for _, part := range []component{mg.ls, &v2Source{mg.v2, c}, &v3Target{mg.target, c}, mg.syncer, mg.writer,
		&httpServer{srv: srv, ln: &mg.ls.http, addr: c.Listen, fail: mg.cs.fail}} {
		mg.cs.add(part)
	}
	return mg, nil
}

// finishOnce is --once's end: it stops following v2, and compares both
// sides as they are now.
func (mg *migration) finishOnce(ctx context.Context) (*migrateSummary, int, error) {
	mg.cs.stopNow(ctx, mg.syncer)
	mg.cs.stopNow(ctx, mg.writer)
	if err := mg.writer.runErr(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, exitFailed, fmt.Errorf("writing into the v3 target %v: %w", mg.c.ToEndpoints, err)
	}
	return verifyOnce(ctx, mg.c, mg.v2, mg.target, mg.host, mg.logger, mg.started)
}

// v2Source checks, before the syncer starts, that the v2 source answers
// and holds the prefix as a directory.
type v2Source struct {
	v2 *migrate.V2Reader
	c  migrateConfig
}

func (s *v2Source) name() string { return "v2 source" }

func (s *v2Source) start(ctx context.Context) error {
	checkCtx, cancel := context.WithTimeout(ctx, s.c.RequestTimeout)
	defer cancel()
	if err := s.v2.CheckPrefix(checkCtx, s.c.Prefix); err != nil {
		return notUsage{&flagError{Flag: "--etcd-endpoints", Err: fmt.Errorf("the v2 source %v: %w", s.c.Endpoints, err)}}
	}
	return nil
}

func (s *v2Source) stop(context.Context) error { return nil }

// v3Target connects to the v3 target and checks that it serves v3.
type v3Target struct {
	target *migrate.Target
	c      migrateConfig
}

func (t *v3Target) name() string { return "v3 target" }

func (t *v3Target) start(ctx context.Context) error {
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   t.c.ToEndpoints,
		TLS:         t.target.TLS,
		Username:    t.c.ToLogin.Username,
		Password:    t.c.ToLogin.Password,
		DialTimeout: t.c.RequestTimeout,
		Logger:      zap.NewNop(), // its failures reach us as errors
	})
	if err != nil {
		return notUsage{&flagError{Flag: "--to-endpoints", Err: fmt.Errorf("connecting to the v3 target %v: %w", t.c.ToEndpoints, err)}}
	}
	t.target.Client = cl
	if err := t.target.Check(ctx); err != nil {
		cl.Close()
		return notUsage{&flagError{Flag: "--to-endpoints", Err: fmt.Errorf("the v3 target: %w", err)}}
	}
	return nil
}

func (t *v3Target) stop(context.Context) error {
	_ = t.target.Client.Close() // its requests fail; the writer has stopped
	return nil
}

// writer runs the host's writes into v3 (migrate.Host.Run) until stopped.
type writer struct {
	host *migrate.Host
	to   []string // the target's endpoints, for errors
	fail func(error)

	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's, once done is closed
}

func (w *writer) name() string { return "v3 writer" }

func (w *writer) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.err = w.host.Run(runCtx)
		if runCtx.Err() == nil {
			w.fail(fmt.Errorf("writing into the v3 target %v: %w", w.to, w.err))
		}
	}()
	return nil
}

// runErr is what Run returned, or nil while it runs.
func (w *writer) runErr() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// stop stops the writes and waits for Run to return; it may be called
// again.
func (w *writer) stop(ctx context.Context) error {
	w.cancel()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("still writing into the v3 target: %w", ctx.Err())
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
func migrateHandler(host *migrate.Host, s *syncer, registry *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(s.alive))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := host.Stats()
		switch {
		case !s.alive():
			http.Error(w, "syncer stopped", http.StatusServiceUnavailable)
		case s.status() != messages.InSync:
			http.Error(w, "v2 "+s.status().String(), http.StatusServiceUnavailable)
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
