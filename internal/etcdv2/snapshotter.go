package etcdv2

import (
	"context"
	"fmt"
	"net/url"

	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// KeysSnapshotter reads snapshots through a KeysAPI: a GET, then a walk of
// the whole answer. It works with any KeysAPI (e2e/etcdsim's included) but
// holds the whole tree in memory and merges nothing until the transfer ends.
type KeysSnapshotter struct {
	Keys KeysAPI
}

// Snapshot implements Snapshotter.
func (s KeysSnapshotter) Snapshot(ctx context.Context, prefix string, quorum bool, head func(uint64, string) error, leaf func(messages.KV)) error {
	resp, err := s.Keys.Get(ctx, prefix, &client.GetOptions{Recursive: true, Quorum: quorum})
	if err != nil {
		return err
	}
	if err := head(resp.Index, resp.ClusterID); err != nil {
		return err
	}
	var walk func(n *client.Node)
	walk = func(n *client.Node) {
		if !n.Dir {
			leaf(messages.KV{Key: n.Key, Value: n.Value, ModifiedIndex: n.ModifiedIndex})
			return
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	if resp.Node != nil {
		walk(resp.Node)
	}
	return nil
}

// HTTPSnapshotter reads snapshots with its own GET of etcd's v2 keys API
// and decodes the JSON as it streams in (decodeNodes, a scanner for exactly
// the shape of etcd's answer), so that the merger merges the
// first keys while etcd is still sending the rest, and the answer never
// exists as a whole tree in memory. client/v2 cannot do this: it reads the
// whole body before decoding.
type HTTPSnapshotter struct {
	*KeysHTTP
}

// Snapshot implements Snapshotter.
func (s *HTTPSnapshotter) Snapshot(ctx context.Context, prefix string, quorum bool, head func(uint64, string) error, leaf func(messages.KV)) error {
	q := url.Values{"recursive": {"true"}}
	if quorum {
		q.Set("quorum", "true")
	}
	a, err := s.get(ctx, prefix, q)
	if err != nil {
		return err
	}
	defer a.resp.Body.Close()
	if err := head(a.index, a.clusterID); err != nil {
		return err
	}
	// A body cut short is an error, EOF included: taking a partial snapshot
	// for a whole one would sweep the keys it missed.
	if err := decodeNodes(a.resp.Body, leaf); err != nil {
		return fmt.Errorf("decoding the snapshot: %w", err)
	}
	return nil
}
