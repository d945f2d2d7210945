package etcdv2

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// KeysHTTP sends GETs to etcd's v2 keys API itself, for what client/v2
// cannot do: read an answer as it streams in. It answers as client/v2
// does, so that callers classify errors alike: an etcd error body is a
// client.Error, a member down or answering 5xx a *client.ClusterError once
// every endpoint has been tried.
type KeysHTTP struct {
	Endpoints          []string // http(s)://host:port; tried in turn from the last that answered
	Client             *http.Client
	Username, Password string
	// HeaderTimeout, when not 0, is how long a member may take to answer
	// a request that does not wait for an event with its headers before
	// the next member is tried (client/v2's HeaderTimeoutPerRequest): a
	// member that was frozen, or black-holed, never answers at all.
	HeaderTimeout time.Duration

	pinned atomic.Int32
}

// keysAnswer is a 200 answer: its body, still to be read, and its headers.
type keysAnswer struct {
	resp      *http.Response
	index     uint64 // X-Etcd-Index
	clusterID string // X-Etcd-Cluster-Id
}

// get GETs /v2/keys<key>?<query>. The caller must close the answer's body.
func (h *KeysHTTP) get(ctx context.Context, key string, query url.Values) (keysAnswer, error) {
	var errs []error
	pinned := int(h.pinned.Load())
	for i := range h.Endpoints {
		k := (pinned + i) % len(h.Endpoints)
		resp, err := h.do(ctx, h.Endpoints[k], key, query)
		if err != nil {
			if ctx.Err() != nil {
				return keysAnswer{}, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		h.pinned.Store(int32(k))
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			var e client.Error
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == 0 {
				err := fmt.Errorf("GET %s answered %s without an etcd error body", key, resp.Status)
				if resp.StatusCode == http.StatusNotFound {
					err = fmt.Errorf("%w: %w", ErrNoV2, err) // a 404 that is not etcd's
				}
				return keysAnswer{}, err
			}
			return keysAnswer{}, e
		}
		index, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
		if err != nil {
			resp.Body.Close()
			return keysAnswer{}, &client.ClusterError{Errors: []error{fmt.Errorf("GET %s: X-Etcd-Index: %w", key, err)}}
		}
		return keysAnswer{resp: resp, index: index, clusterID: resp.Header.Get("X-Etcd-Cluster-Id")}, nil
	}
	return keysAnswer{}, &client.ClusterError{Errors: errs}
}

// Get is client.KeysAPI's Get: the answer decoded whole, as client/v2
// decodes it. Quorum, Recursive and Sort are honoured.
func (h *KeysHTTP) Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Response, error) {
	q := url.Values{}
	if opts != nil {
		for name, on := range map[string]bool{"quorum": opts.Quorum, "recursive": opts.Recursive, "sorted": opts.Sort} {
			if on {
				q.Set(name, "true")
			}
		}
	}
	a, err := h.get(ctx, key, q)
	if err != nil {
		return nil, err
	}
	defer a.resp.Body.Close()
	var resp client.Response
	if err := json.NewDecoder(a.resp.Body).Decode(&resp); err != nil {
		return nil, &client.ClusterError{Errors: []error{fmt.Errorf("decoding GET %s: %w", key, err)}}
	}
	resp.Index, resp.ClusterID = a.index, a.clusterID
	return &resp, nil
}

// do sends one GET to one endpoint; a 5xx answer is an error, and so is
// a member that sends no headers within HeaderTimeout (unless the request
// waits for an event).
func (h *KeysHTTP) do(ctx context.Context, endpoint, key string, query url.Values) (*http.Response, error) {
	if h.HeaderTimeout <= 0 || query.Get("wait") == "true" {
		return h.send(ctx, endpoint, key, query)
	}
	actx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(h.HeaderTimeout, cancel)
	resp, err := h.send(actx, endpoint, key, query)
	if !timer.Stop() && ctx.Err() == nil {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("etcd member %s sent no answer to GET %s within %v", endpoint, key, h.HeaderTimeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// send sends one GET to one endpoint; a 5xx answer is an error.
func (h *KeysHTTP) send(ctx context.Context, endpoint, key string, query url.Values) (*http.Response, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("etcd endpoint %q: %w", endpoint, err)
	}
	u.Path, u.RawQuery = "/v2/keys"+key, query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building GET %s: %w", key, err)
	}
	if h.Username != "" {
		req.SetBasicAuth(h.Username, h.Password)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 5 {
		resp.Body.Close()
		return nil, fmt.Errorf("etcd member %s answered GET %s with %s", endpoint, key, resp.Status)
	}
	return resp, nil
}
