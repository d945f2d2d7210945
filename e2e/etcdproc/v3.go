package etcdproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrNoV2 is returned by KeysAPI and KeysAPIOf on a cluster whose etcd
// serves no v2 API (Options.Version V37): use Client.
var ErrNoV2 = errors.New("etcdproc: etcd serves no v2 API")

// v3Timeout bounds each of the harness's own v3 requests, as the 1 s and
// 5 s of its HTTP client bound the v2 ones.
const v3Timeout = 5 * time.Second

// Client returns a clientv3 client for every member's endpoint, as a
// writer or a checker in a spec would use; the caller closes it. It works
// on both versions (etcd 3.5 serves v3 too). A client rides out Restart,
// Rebuild and Restore (the endpoints stay), but one that must not carry
// state across them, such as a watch's revision, is better made anew. Its
// warnings (retries) go to Options.Output, as the members' output does,
// not to stderr.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return c.client(c.Endpoints(), c.clientLogger())
}

// ClientOf is Client for the given members only, such as the ones not
// frozen.
func (c *Cluster) ClientOf(members ...int) (*clientv3.Client, error) {
	all := c.Endpoints()
	var eps []string
	for _, i := range members {
		if i < 0 || i >= len(all) {
			return nil, fmt.Errorf("etcdproc: no member %d in a cluster of %d", i, len(all))
		}
		eps = append(eps, all[i])
	}
	return c.client(eps, c.clientLogger())
}

// clientLogger writes a client's warnings to Options.Output as JSON
// lines.
func (c *Cluster) clientLogger() *zap.Logger {
	if c.opts.Output == nil {
		return zap.NewNop()
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	w := &lockedWriter{mu: &c.outMu, w: c.opts.Output}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zap.WarnLevel))
}

// lockedWriter takes the members' output lock: Output need not be safe
// for concurrent use, and a line must not land inside a member's.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// client makes a clientv3 client logging to lg.
func (c *Cluster) client(endpoints []string, lg *zap.Logger) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, Logger: lg}
	if t := c.opts.ClientTLS; t != nil {
		cfg.TLS = t.Harness
	}
	cl, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdproc: v3 client for %v: %w", endpoints, err)
	}
	return cl, nil
}

// Compact compacts the key space at rev (physically: it returns once the
// backend has dropped the old revisions), as an operator's or the
// auto-compactor's compaction would. A watch or a read below rev then
// fails with ErrCompacted. It needs a quorum.
func (c *Cluster) Compact(rev int64) error {
	cl, err := c.ownClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), v3Timeout)
	defer cancel()
	if _, err := cl.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("etcdproc: compact at %d: %w", rev, err)
	}
	return nil
}

// Revision returns the cluster's current revision, from the header of a
// linearizable read: it needs a quorum.
func (c *Cluster) Revision() (int64, error) {
	return c.revision(c.Endpoints())
}

// revision reads the current revision through the given endpoints.
// Called with or without c.mu held: it touches no member state.
func (c *Cluster) revision(endpoints []string) (int64, error) {
	cl, err := c.ownClient(endpoints)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), v3Timeout)
	defer cancel()
	resp, err := cl.Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcdproc: read revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// ownClient is a client for the harness's own requests: quiet, since the
// members it asks may be down.
func (c *Cluster) ownClient(endpoints []string) (*clientv3.Client, error) {
	return c.client(endpoints, zap.NewNop())
}

// v3Status asks member m for its status (no quorum needed: each member
// answers for itself), within timeout.
func (c *Cluster) v3Status(m *member, timeout time.Duration) (*clientv3.StatusResponse, error) {
	cl, err := c.ownClient([]string{m.clientURL})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := cl.Status(ctx, m.clientURL)
	if err != nil {
		return nil, fmt.Errorf("etcdproc: status of %s: %w", m.name, err)
	}
	return st, nil
}

// v3Leader is leader on 3.7: the running member whose Status says it
// leads itself. A member that can't answer within a second is not a
// usable leader. Called with c.mu held.
func (c *Cluster) v3Leader() (int, error) {
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		st, err := c.v3Status(m, time.Second)
		if err != nil {
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return -1, ErrNoLeader
}
