package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcdsync/etcdsync/supervisor"
)

// embeddedReadyTimeout bounds the wait for the embedded etcd to serve: a
// one-member cluster elects itself in about a second, replaying a large WAL
// takes longer.
const embeddedReadyTimeout = time.Minute

// embeddedEtcd is the single-member etcd the node runs in-process when no
// --etcd-endpoints is given: the first component of roleEmbedded.
type embeddedEtcd struct {
	c         config
	clientURL string // what the syncer and the user connect to
	logger    *slog.Logger
	fail      func(error)

	etcd     *embed.Etcd
	stopping chan struct{} // closed when stop begins
}

func newEmbeddedEtcd(c config, logger *slog.Logger, fail func(error)) *embeddedEtcd {
	// Connect to an address that can be dialled: 0.0.0.0 cannot.
	clientURL := url.URL{Scheme: "http", Host: dialable(c.EmbeddedListen)}
	return &embeddedEtcd{c: c, clientURL: clientURL.String(), logger: logger, fail: fail}
}

func (e *embeddedEtcd) name() string { return "embedded etcd" }

// start starts an etcd with the v2 API on --embedded-etcd-listen (peers on
// --embedded-etcd-peer-listen), data in --data-dir, and waits until it
// serves or ctx is done. A taken port or an unusable data directory is a
// *flagError.
func (e *embeddedEtcd) start(ctx context.Context) error {
	etcd, err := startEmbedded(ctx, e.c, e.logger)
	if err != nil {
		return err
	}
	e.etcd, e.stopping = etcd, make(chan struct{})
	go func() {
		select {
		case err := <-etcd.Err():
			e.fail(fmt.Errorf("embedded etcd failed: %w", err))
		case <-e.stopping:
		}
	}()
	e.logger.Info("embedded etcd ready; write a key with the command in 'try'",
		"clientURL", e.clientURL, "dataDir", e.c.DataDir, "try", e.tryCommand(e.c.API, e.c.Prefix))
	return nil
}

// stop stops the embedded etcd, waiting until ctx is done at the most.
// etcd's own Close has no deadline: it waits for its open client requests.
func (e *embeddedEtcd) stop(ctx context.Context) error {
	close(e.stopping)
	done := make(chan struct{})
	go func() {
		e.etcd.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded etcd still stopping after %v", e.c.ShutdownTimeout)
	}
}

// startEmbedded starts the embedded etcd for c and waits until it serves
// or ctx is done.
func startEmbedded(ctx context.Context, c config, logger *slog.Logger) (*embed.Etcd, error) {
	if err := checkDataDir(c.DataDir); err != nil {
		return nil, err
	}
	// Probe the ports first, so that a taken one is reported by flag
	// rather than from deep inside etcd's start-up.
	for _, p := range []struct{ flag, addr string }{
		{"embedded-etcd-listen", c.EmbeddedListen},
		{"embedded-etcd-peer-listen", c.EmbeddedPeerListen},
	} {
		l, err := net.Listen("tcp", p.addr)
		if err != nil {
			return nil, badFlag(p.flag, "cannot listen on %s: %w", p.addr, err)
		}
		_ = l.Close()
	}
	e, err := embed.StartEtcd(embedConfig(c, logger))
	if err != nil {
		return nil, classifyStartError(c, err)
	}
	timeout := time.NewTimer(embeddedReadyTimeout)
	defer timeout.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-timeout.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after %v (data in --data-dir %s)", embeddedReadyTimeout, c.DataDir)
	case <-ctx.Done():
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready yet: %w", context.Cause(ctx))
	}
}

// embedConfig is etcd's configuration of the embedded etcd.
func embedConfig(c config, logger *slog.Logger) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "etcdsync"
	cfg.Dir = c.DataDir
	cfg.EnableV2 = true
	// Listen where told; advertise an address that can be dialled: 0.0.0.0
	// cannot.
	clientURL := url.URL{Scheme: "http", Host: dialable(c.EmbeddedListen)}
	peerURL := url.URL{Scheme: "http", Host: dialable(c.EmbeddedPeerListen)}
	cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: c.EmbeddedListen}}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: c.EmbeddedPeerListen}}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Only read when the data directory is new; a token of its own gives
	// the cluster an ID of its own, not etcd's well-known default one,
	// which the syncer would (rightly) complain about.
	cfg.InitialClusterToken = "etcdsync-" + strings.ToLower(rand.Text()[:12])
	// etcd logs through the node's logger, warnings and errors only: its
	// info lines would drown the node's own.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapToSlog{
		logger: logger.With("component", "etcd"),
		min:    zapcore.WarnLevel,
	}))
	return cfg
}

// checkDataDir creates dir if needed and checks that files can be written
// there, so that etcd never gets to fail on it half-started.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return badFlag("data-dir", "cannot create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".etcdsync-probe-*")
	if err != nil {
		return badFlag("data-dir", "cannot write in %s: %w", dir, err)
	}
	_ = f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return badFlag("data-dir", "cannot remove files in %s: %w", dir, err)
	}
	return nil
}

// classifyStartError names the flag behind a failure of embed.StartEtcd
// where it can: a port taken since the probe, or a file in the data
// directory etcd cannot use.
func classifyStartError(c config, err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "listen" && opErr.Addr != nil {
		_, port, _ := net.SplitHostPort(opErr.Addr.String())
		for _, p := range []struct{ flag, addr string }{
			{"embedded-etcd-listen", c.EmbeddedListen},
			{"embedded-etcd-peer-listen", c.EmbeddedPeerListen},
		} {
			if _, want, _ := net.SplitHostPort(p.addr); want == port {
				return badFlag(p.flag, "cannot listen on %s: %w", p.addr, err)
			}
		}
	}
	var pathErr *os.PathError
	if errors.As(err, &pathErr) && strings.HasPrefix(filepath.Clean(pathErr.Path), filepath.Clean(c.DataDir)) {
		return badFlag("data-dir", "embedded etcd cannot use %s: %w", pathErr.Path, err)
	}
	return fmt.Errorf("starting the embedded etcd: %w", err)
}

// dialable returns hostPort with an unspecified host (0.0.0.0, ::, none)
// replaced by the loopback address of its family.
func dialable(hostPort string) string {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return hostPort
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.Equal(net.IPv4zero)):
		host = "127.0.0.1"
	case ip != nil && ip.Equal(net.IPv6unspecified):
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// tryCommand is the command the node suggests to write a first key: a
// curl of the v2 keys API, or of the v3 JSON gateway (keys and values in
// base64).
func (e *embeddedEtcd) tryCommand(api supervisor.API, prefix string) string {
	if api == supervisor.APIv3 {
		b64 := base64.StdEncoding.EncodeToString
		return "curl " + e.clientURL + `/v3/kv/put -d '{"key":"` + b64([]byte(prefix+"/config/Example")) +
			`","value":"` + b64([]byte("hello")) + `"}'`
	}
	return "curl -X PUT " + e.clientURL + "/v2/keys" + prefix + "/config/Example -d value=hello"
}
