package migrate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors of the v3 target that the caller reports as bad input or refusal.
var (
	// ErrTargetUnreachable: no target endpoint accepts connections.
	ErrTargetUnreachable = errors.New("migrate: etcd v3 target unreachable")
	// ErrTargetNoV3: the target accepts connections but does not answer
	// etcd's v3 API (gRPC).
	ErrTargetNoV3 = errors.New("migrate: target does not serve etcd's v3 API")
	// ErrTargetTLS: a TLS handshake with the target failed (a CA or
	// client certificate that does not fit).
	ErrTargetTLS = errors.New("migrate: TLS with the etcd v3 target failed")
	// ErrTargetRefused: the target refused a write.
	ErrTargetRefused = errors.New("migrate: etcd v3 target refused the write")
)

// readPage is how many keys one v3 range read returns. etcd counts the
// rest of the range for every page with a limit, so small pages cost: at
// 10^5 Calico-shaped keys, pages of 10^4 took 0.5-0.8 s against 0.2 s for
// one unbounded Get. A page of 5×10^4 such keys is about 15 MB.
const readPage = 50000

// Target reads and writes the prefix in etcd v3. Its methods may be called
// from one goroutine at a time.
type Target struct {
	Client *clientv3.Client
	// Prefix is the directory, without a trailing slash: the target range
	// is [Prefix+"/", its end), as the v3 source reads it.
	Prefix  string
	Batcher Batcher
	// TLS is the client's TLS configuration, if any: Check uses it to tell
	// a TLS failure from a target without the v3 API.
	TLS *tls.Config
	// Parallel is how many txns Apply keeps in flight at once; 0: 1. The
	// keys of one Apply are distinct, so their txns commute.
	Parallel int
	// RequestTimeout bounds each request; 0: 10 s.
	RequestTimeout time.Duration
	// Now is the wall clock that lease TTLs count from; default time.Now.
	Now func() time.Time
}

// Result counts what Apply did.
type Result struct {
	Put, Deleted int
	Txns         int
	Revision     int64    // the highest a txn took; 0 if none
	PutKeys      []string // the keys put, in no particular order
}

func (t *Target) timeout() time.Duration {
	if t.RequestTimeout > 0 {
		return t.RequestTimeout
	}
	return 10 * time.Second
}

func (t *Target) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Check reads the target once, so that an unreachable target, one without
// the v3 API, or one refusing the credentials fails before anything is
// copied.
func (t *Target) Check(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	_, err := t.Client.Get(rctx, t.Prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	eps := t.Client.Endpoints()
	if !anyDialable(eps) {
		return fmt.Errorf("%w: no connection to %v: %w", ErrTargetUnreachable, eps, err)
	}
	if tlsErr := probeTLS(eps, t.TLS); tlsErr != nil {
		return fmt.Errorf("%w: %v: %w (check the target's CA and client certificate)", ErrTargetTLS, eps, tlsErr)
	}
	if errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v accepts connections but gave no v3 answer within %v: %w", ErrTargetNoV3, eps, t.timeout(), err)
	}
	return fmt.Errorf("reading the v3 target %v: %w", eps, err)
}

// anyDialable reports whether a TCP connection to one of the endpoints
// succeeds.
func anyDialable(eps []string) bool {
	for _, ep := range eps {
		host := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host = u.Host
		}
		if c, err := net.DialTimeout("tcp", host, 2*time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// probeTLS returns the error a TLS connection to the first https endpoint
// ends in, nil if it works or none is https. A server that requires a
// client certificate says so only after the handshake (TLS 1.3), so the
// probe also sends HTTP/2's preface and waits for the first byte.
func probeTLS(eps []string, cfg *tls.Config) error {
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" {
			continue
		}
		c := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg != nil {
			c = cfg.Clone()
		}
		c.ServerName, c.NextProtos = u.Hostname(), []string{"h2"}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", u.Host, c)
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				return nil // not a TLS answer: leave it to the caller
			}
			return err
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
		var netErr net.Error
		if err != nil && !(errors.As(err, &netErr) && netErr.Timeout()) && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	return nil
}

// ReadAll reads every key of the prefix, page by page at the revision of
// the first page, and returns them with that revision.
func (t *Target) ReadAll(ctx context.Context) (map[string]Entry, int64, error) {
	from, end := t.Prefix+"/", clientv3.GetPrefixRangeEnd(t.Prefix+"/")
	have := map[string]Entry{}
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(readPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, t.timeout())
		resp, err := t.Client.Get(rctx, from, opts...)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s/ from the v3 target: %w", t.Prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			have[string(kv.Key)] = entryOf(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return have, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// ReadKeys reads the keys given, in read-only txns of at most
// Batcher.MaxOps gets (which take no revision), and returns those v3 has.
func (t *Target) ReadKeys(ctx context.Context, keys []string) (map[string]Entry, error) {
	have := make(map[string]Entry, len(keys))
	n := t.Batcher.MaxOps
	if n <= 0 {
		n = DefaultMaxTxnOps
	}
	for len(keys) > 0 {
		chunk := keys[:min(n, len(keys))]
		keys = keys[len(chunk):]
		gets := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			gets[i] = clientv3.OpGet(k)
		}
		rctx, cancel := context.WithTimeout(ctx, t.timeout())
		resp, err := t.Client.Txn(rctx).Then(gets...).Commit()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("reading %d keys from the v3 target: %w", len(chunk), err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				have[string(kv.Key)] = entryOf(kv)
			}
		}
	}
	return have, nil
}

func entryOf(kv *mvccpb.KeyValue) Entry {
	e := Entry{Value: string(kv.Value)}
	if kv.Lease != 0 {
		if s, ok := ExpirySecond(kv.Lease); ok {
			e.Expires = s
		} else {
			e.Foreign = true
		}
	}
	return e
}

// Apply writes ops in txns cut by the Batcher, Parallel at a time, first
// granting the leases they name (a lease granted before, by this run or an
// earlier one, is reused). It stops at the first failure; what it wrote
// before stays written (Result says what), and a rerun's Diff finds it
// right. A refusal by etcd (a limit, a permission, a full disk) wraps
// ErrTargetRefused.
func (t *Target) Apply(ctx context.Context, ops []Op) (Result, error) {
	var res Result
	batches, err := t.Batcher.Split(ops)
	if err != nil {
		return res, err
	}
	granted := map[int64]bool{}
	for _, batch := range batches {
		if err := t.grant(ctx, batch, granted); err != nil {
			return res, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan []Op)
	for range max(t.Parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				rev, err := t.txn(ctx, batch)
				if rpctypes.Error(err) == rpctypes.ErrLeaseNotFound {
					// A lease of a second that has passed expired
					// meanwhile: grant it again for its last second.
					if err = t.grant(ctx, batch, map[int64]bool{}); err == nil {
						rev, err = t.txn(ctx, batch)
					}
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				res.Txns++
				res.Revision = max(res.Revision, rev)
				for _, op := range batch {
					if op.Delete {
						res.Deleted++
					} else {
						res.Put++
						res.PutKeys = append(res.PutKeys, op.Key)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, batch := range batches {
		select {
		case work <- batch:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

func (t *Target) txn(ctx context.Context, batch []Op) (int64, error) {
	ops := make([]clientv3.Op, len(batch))
	for i, op := range batch {
		switch {
		case op.Delete:
			ops[i] = clientv3.OpDelete(op.Key)
		case op.Expires != 0:
			ops[i] = clientv3.OpPut(op.Key, op.Value, clientv3.WithLease(clientv3.LeaseID(LeaseID(op.Expires))))
		default:
			ops[i] = clientv3.OpPut(op.Key, op.Value)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	resp, err := t.Client.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return 0, t.writeError(len(batch), batch[0].Key, err)
	}
	return resp.Header.Revision, nil
}

// writeError wraps a failed write, as a refusal when etcd answered.
func (t *Target) writeError(n int, first string, err error) error {
	switch rpctypes.Error(err) {
	case rpctypes.ErrLeaseNotFound:
		return err // Apply retries it
	case rpctypes.ErrRequestTooLarge, rpctypes.ErrTooManyOps, rpctypes.ErrPermissionDenied,
		rpctypes.ErrNoSpace, rpctypes.ErrUserEmpty, rpctypes.ErrInvalidAuthToken, rpctypes.ErrAuthFailed,
		rpctypes.ErrCorrupt:
		return fmt.Errorf("%w: a txn of %d ops from %q: %w", ErrTargetRefused, n, first, err)
	}
	return fmt.Errorf("writing a txn of %d ops from %q to the v3 target: %w", n, first, err)
}

// grant grants the leases batch names that are not in granted yet, each
// with the seconds left until it expires; one that exists already is ours
// from before, for the same second.
func (t *Target) grant(ctx context.Context, batch []Op, granted map[int64]bool) error {
	leases := clientv3.RetryLeaseClient(t.Client)
	for _, op := range batch {
		if op.Delete || op.Expires == 0 || granted[op.Expires] {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, t.timeout())
		_, err := leases.LeaseGrant(rctx, &pb.LeaseGrantRequest{ID: LeaseID(op.Expires), TTL: LeaseTTL(op.Expires, t.now())})
		cancel()
		if err != nil && rpctypes.Error(err) != rpctypes.ErrLeaseExist {
			return t.writeError(1, op.Key, fmt.Errorf("granting the lease of second %d: %w", op.Expires, err))
		}
		granted[op.Expires] = true
	}
	return nil
}
