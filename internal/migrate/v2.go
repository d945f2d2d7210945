package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors of a v2 read that the caller reports as bad input.
var (
	// ErrPrefixMissing: the prefix is not a directory in v2.
	ErrPrefixMissing = errors.New("migrate: prefix not found in etcd v2")
	// ErrUnauthorized: v2 refused the credentials (401).
	ErrUnauthorized = errors.New("migrate: etcd v2 refused the credentials")
)

// V2Key is a v2 key as a V2Reader reads it: its Entry and modifiedIndex.
type V2Key struct {
	Entry
	Modified uint64
}

// V2Snapshot is a recursive read of a v2 prefix.
type V2Snapshot struct {
	Index     uint64           // X-Etcd-Index of the answer
	Keys      map[string]V2Key // every visible key, by full path
	EmptyDirs []string         // directories holding no visible key: they have no v3 form
}

// Entries returns the snapshot's keys as Diff wants them.
func (s V2Snapshot) Entries() map[string]Entry {
	m := make(map[string]Entry, len(s.Keys))
	for k, v := range s.Keys {
		m[k] = v.Entry
	}
	return m
}

// V2Reader reads keys with their TTLs through etcd's v2 HTTP API, which the
// syncer's updates do not carry. Reads are quorum reads, tried at each
// endpoint in turn. Safe for concurrent use.
type V2Reader struct {
	Endpoints          []string
	Client             *http.Client
	Username, Password string
}

// v2Node is a node of a v2 answer.
type v2Node struct {
	Key           string    `json:"key"`
	Dir           bool      `json:"dir"`
	Value         string    `json:"value"`
	Expiration    time.Time `json:"expiration"`
	ModifiedIndex uint64    `json:"modifiedIndex"`
	Nodes         []v2Node  `json:"nodes"`
}

type v2Answer struct {
	Node      v2Node `json:"node"`
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Cause     string `json:"cause"`
}

// Snapshot reads prefix recursively. A prefix that is missing or not a
// directory wraps ErrPrefixMissing.
func (r *V2Reader) Snapshot(ctx context.Context, prefix string) (V2Snapshot, error) {
	ans, index, found, err := r.get(ctx, prefix, true)
	if err != nil {
		return V2Snapshot{}, err
	}
	if !found {
		return V2Snapshot{}, fmt.Errorf("%w: %s", ErrPrefixMissing, prefix)
	}
	if !ans.Node.Dir {
		return V2Snapshot{}, fmt.Errorf("%w: %s is a key, not a directory", ErrPrefixMissing, prefix)
	}
	s := V2Snapshot{Index: index, Keys: map[string]V2Key{}}
	s.walk(prefix, ans.Node.Nodes)
	return s, nil
}

// walk adds the visible keys of nodes to s, and reports the directories
// that hold none. v2 leaves hidden nodes out of a recursive GET already;
// the check is for a node named by a hidden path.
func (s *V2Snapshot) walk(prefix string, nodes []v2Node) (keys int) {
	for _, n := range nodes {
		if hidden(prefix, n.Key) {
			continue
		}
		if n.Dir {
			sub := s.walk(prefix, n.Nodes)
			if sub == 0 {
				s.EmptyDirs = append(s.EmptyDirs, n.Key)
			}
			keys += sub
			continue
		}
		s.Keys[n.Key] = v2Key(n)
		keys++
	}
	return keys
}

func v2Key(n v2Node) V2Key {
	k := V2Key{Entry: Entry{Value: n.Value}, Modified: n.ModifiedIndex}
	if !n.Expiration.IsZero() {
		k.Expires = ExpirySecondOf(n.Expiration)
	}
	return k
}

// hidden reports whether key has a segment below prefix starting with "_".
func hidden(prefix, key string) bool {
	return strings.Contains(strings.TrimPrefix(key, prefix), "/_")
}

// Key reads one key; found is false if v2 does not have it (or has a
// directory there).
func (r *V2Reader) Key(ctx context.Context, key string) (k V2Key, found bool, err error) {
	ans, _, found, err := r.get(ctx, key, false)
	if err != nil || !found || ans.Node.Dir {
		return V2Key{}, false, err
	}
	return v2Key(ans.Node), true, nil
}

// get GETs key (quorum), trying each endpoint until one answers.
func (r *V2Reader) get(ctx context.Context, key string, recursive bool) (v2Answer, uint64, bool, error) {
	q := url.Values{"quorum": {"true"}}
	if recursive {
		q.Set("recursive", "true")
	}
	var lastErr error
	for _, ep := range r.Endpoints {
		ans, index, found, err := r.getAt(ctx, ep, key, q)
		if err == nil || errors.Is(err, ErrUnauthorized) || ctx.Err() != nil {
			return ans, index, found, err
		}
		lastErr = err
	}
	return v2Answer{}, 0, false, lastErr
}

func (r *V2Reader) getAt(ctx context.Context, ep, key string, q url.Values) (v2Answer, uint64, bool, error) {
	u := strings.TrimSuffix(ep, "/") + "/v2/keys" + (&url.URL{Path: key}).EscapedPath() + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return v2Answer{}, 0, false, fmt.Errorf("reading %s from etcd v2 at %s: %w", key, ep, err)
	}
	if r.Username != "" {
		req.SetBasicAuth(r.Username, r.Password)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return v2Answer{}, 0, false, fmt.Errorf("reading %s from etcd v2 at %s: %w", key, ep, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		_, _ = io.Copy(io.Discard, resp.Body)
		return v2Answer{}, 0, false, fmt.Errorf("%w (user %q) reading %s at %s", ErrUnauthorized, r.Username, key, ep)
	}
	var ans v2Answer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return v2Answer{}, 0, false, fmt.Errorf("reading %s from etcd v2 at %s: %s answered %s with no v2 JSON (does it serve the v2 API?): %w",
			key, ep, ep, resp.Status, err)
	}
	index, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	switch {
	case resp.StatusCode == http.StatusNotFound && ans.ErrorCode == 100: // key not found
		return v2Answer{}, index, false, nil
	case resp.StatusCode != http.StatusOK:
		return v2Answer{}, 0, false, fmt.Errorf("reading %s from etcd v2 at %s: %s: %s (%s)", key, ep, resp.Status, ans.Message, ans.Cause)
	}
	return ans, index, true, nil
}

// CheckPrefix reads prefix itself (not its keys), so that a missing prefix,
// refused credentials or an unreachable or v2-less source fail before
// anything is copied. A prefix that is missing or a key wraps
// ErrPrefixMissing.
func (r *V2Reader) CheckPrefix(ctx context.Context, prefix string) error {
	ans, _, found, err := r.get(ctx, prefix, false)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("%w: %s (create it, or name the directory that holds the keys)", ErrPrefixMissing, prefix)
	case !ans.Node.Dir:
		return fmt.Errorf("%w: %s is a key, not a directory", ErrPrefixMissing, prefix)
	}
	return nil
}
