package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	jsoniter "github.com/json-iterator/go"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/messages"
)

// Snapshotter reads a recursive snapshot of a prefix: from any member, or,
// if quorum, as a quorum read, which a member cut off from its quorum cannot
// answer and which is never behind.
//
// Snapshot calls head once, with the index and cluster ID the answer
// carries, before any leaf; if head returns an error the read stops there
// and Snapshot returns it. Then it calls leaf for every key below prefix, in
// the order etcd lists them. A prefix that does not exist is a client.Error
// with code 100 carrying etcd's index, as client/v2 returns it.
type Snapshotter interface {
	Snapshot(ctx context.Context, prefix string, quorum bool, head func(index uint64, clusterID string) error, leaf func(messages.KV)) error
}

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
// and decodes the JSON as it streams in, so that the merger merges the
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
	it := jsoniter.Parse(jsoniter.ConfigFastest, a.resp.Body, 64<<10)
	complete := it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		if field == "node" {
			readNode(it, leaf)
		} else {
			it.Skip()
		}
		return it.Error == nil
	})
	// A body cut short is an error, EOF included: taking a partial snapshot
	// for a whole one would sweep the keys it missed.
	if !complete || it.Error != nil {
		return fmt.Errorf("decoding the snapshot: %w", cmpErr(it.Error, io.ErrUnexpectedEOF))
	}
	return nil
}

func cmpErr(err, otherwise error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return otherwise
	}
	return err
}

// readNode decodes one node of etcd's answer, calling leaf for every key
// at or below it as soon as the key's object closes.
func readNode(it *jsoniter.Iterator, leaf func(messages.KV)) {
	var kv messages.KV
	dir := false
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "key":
			kv.Key = it.ReadString()
		case "value":
			kv.Value = it.ReadString()
		case "modifiedIndex":
			kv.ModifiedIndex = it.ReadUint64()
		case "dir":
			dir = it.ReadBool()
		case "nodes":
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				readNode(it, leaf)
				return true
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if !dir && it.Error == nil {
		leaf(kv)
	}
}
