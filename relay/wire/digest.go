package wire

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Digest is the fingerprint of a view, sent with every resume position
// (PROTOCOL.md, "Resume positions"): the XOR, over the view's keys, of
// KeyHash(key, value). It tells two views at the same (cluster ID,
// revision) apart when they come from two histories of etcd: a cluster
// rebuilt with the same configuration has the same cluster ID (etcd derives
// it from the peer URLs and the cluster token alone) and its revisions
// start over, so the pair alone names a state of either history. A relay
// resumes a client only where its log's digest at the client's position is
// the client's.
//
// It is incremental: a put of k changes it by KeyHash(k, old value), if k
// had one, and KeyHash(k, new value); a delete by KeyHash(k, old value). So
// a relay keeps it at every log entry for 8 bytes, and a client keeps its
// own as it applies frames, in O(1) a change. The empty view's is 0.
//
// It hashes each key's value, not its revision. Revisions would add no
// safety: two views equal in keys and values at one position of one
// cluster ID are interchangeable, since everything a relay sends after the
// position has a higher revision than anything either view holds, so the
// merge takes it whichever view it lands on. And they would cost
// snapshots: relays on one history do not always agree on a key's
// revision. They do in v3 (each key's is its mod_revision, whether it came
// by watch or by snapshot: the merge core hands a snapshot's keys on with
// their modifiedIndex, not the snapshot's index), but in v2 a TTL refresh
// (refresh=true) moves a key's modifiedIndex without telling live
// watchers, so a relay that watched through it keeps the old one and a
// relay that read a snapshot since has the new one; with revisions hashed,
// every failover between them would be a snapshot for every client.
// Values are needed: a rebuilt etcd provisioned by the same script writes
// the same keys in the same order, so at the same revisions, and differs
// only in what they hold (generated IDs, certificates).
//
// The hash is XXH64 with seed 0, identical in every process, so that
// relays and clients of different builds agree. Collisions are not a
// security boundary: a relay is trusted with the data anyway.
type Digest uint64

// KeyHash is one key's share of a Digest: XXH64 (seed 0) of the key's
// length (8 bytes, little-endian), the key, and the value. The length
// keeps ("ab", "c") and ("a", "bc") apart.
func KeyHash(key, value string) uint64 {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key)))
	var h xxhash.Digest
	h.Reset()
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(key)
	_, _ = h.WriteString(value)
	return h.Sum64()
}

// With returns the digest of the view with key added at value; the view
// must not hold key (take it out first with Without).
func (d Digest) With(key, value string) Digest { return d ^ Digest(KeyHash(key, value)) }

// Without returns the digest of the view with key, which held value,
// taken out.
func (d Digest) Without(key, value string) Digest { return d ^ Digest(KeyHash(key, value)) }

// Put returns the digest after key is set to value, where prev is its
// value before, if had.
func (d Digest) Put(key, value, prev string, had bool) Digest {
	if had {
		d = d.Without(key, prev)
	}
	return d.With(key, value)
}

// DigestOf returns the digest of a whole view; value says what a map value
// holds. For tests and checks: a view's owner keeps its digest as it goes.
func DigestOf[V any](view map[string]V, value func(V) string) Digest {
	var d Digest
	for k, v := range view {
		d = d.With(k, value(v))
	}
	return d
}

// String returns the wire form: 16 lower-case hex digits.
func (d Digest) String() string { return fmt.Sprintf("%016x", uint64(d)) }

// ParseDigest is the inverse of String; the error wraps ErrBadFrame.
func ParseDigest(s string) (Digest, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("%w: digest %q is not 16 hex digits", ErrBadFrame, s)
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, fmt.Errorf("%w: digest %q is not 16 lower-case hex digits", ErrBadFrame, s)
		}
	}
	n, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: digest %q: %w", ErrBadFrame, s, err)
	}
	return Digest(n), nil
}

// Position is what a client resumes from (PROTOCOL.md, "Resume
// positions"): a state of etcd, named by its cluster ID and revision, and
// the digest of the view there (wire form; "" from a relay that sends
// none). The zero Position is none: the client asks for a snapshot.
type Position struct {
	ClusterID string
	Revision  uint64
	Digest    string
}

// IsZero reports whether p is no position.
func (p Position) IsZero() bool { return p.ClusterID == "" || p.Revision == 0 }

// AddTo sets the handshake parameters that resume from p in q, if p is a
// position.
func (p Position) AddTo(q url.Values) {
	if p.IsZero() {
		return
	}
	q.Set(ParamClusterID, p.ClusterID)
	q.Set(ParamRevision, strconv.FormatUint(p.Revision, 10))
	if p.Digest != "" {
		q.Set(ParamDigest, p.Digest)
	}
}
