package migrate

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Entry is one key's content on either side: its value and, for a key
// with a TTL, the wall-clock second it expires at (0: never). On v3 the
// second is read from the key's lease (ExpirySecond); a key on a lease
// that is not one of ours has Foreign set.
type Entry struct {
	Value   string
	Expires int64 // Unix second; 0: no TTL
	Foreign bool  // v3 only: on a lease this package did not grant
}

// Op is one write: a put of Value (on the lease of Expires, if not 0), or
// a delete.
type Op struct {
	Key     string
	Value   string
	Expires int64
	Delete  bool
}

// size is what the op adds to a txn request, as etcd counts it against
// --max-request-bytes: the key and value, plus protobuf framing and the
// lease ID.
func (o Op) size() int {
	if o.Delete {
		return len(o.Key) + opOverhead
	}
	return len(o.Key) + len(o.Value) + opOverhead
}

// opOverhead bounds the protobuf framing of one RequestOp (tags, lengths,
// the lease ID) from above.
const opOverhead = 32

// Diff returns the ops that make have equal to want, ordered by key, and
// how many keys of want were already right. A key is right when its value
// and its expiry second are; a key on a lease of someone else's is
// rewritten onto ours (or onto none). Keys of have that want lacks are
// deleted.
func Diff(want, have map[string]Entry) (ops []Op, unchanged int) {
	for k, w := range want {
		h, ok := have[k]
		if ok && !h.Foreign && h.Value == w.Value && h.Expires == w.Expires {
			unchanged++
			continue
		}
		ops = append(ops, Op{Key: k, Value: w.Value, Expires: w.Expires})
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			ops = append(ops, Op{Key: k, Delete: true})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Key < ops[j].Key })
	return ops, unchanged
}

// Etcd's default limits on one txn: --max-txn-ops, and --max-request-bytes
// less a margin for the request's header.
const (
	DefaultMaxTxnOps   = 128
	DefaultMaxTxnBytes = 3<<19 - 4<<10 // 1.5 MiB - 4 KiB
)

// ErrOpTooLarge is an op that cannot fit in a txn of its own: its key and
// value exceed the request size limit.
var ErrOpTooLarge = errors.New("migrate: value too large for one etcd request")

// Batcher cuts ops into txns of at most MaxOps ops and MaxBytes request
// bytes, in order. Zero fields take the defaults above.
type Batcher struct {
	MaxOps, MaxBytes int
}

// Split returns ops cut into batches, in order; an op bigger than MaxBytes
// on its own is an error wrapping ErrOpTooLarge that names its key.
func (b Batcher) Split(ops []Op) ([][]Op, error) {
	maxOps, maxBytes := b.MaxOps, b.MaxBytes
	if maxOps <= 0 {
		maxOps = DefaultMaxTxnOps
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxTxnBytes
	}
	var batches [][]Op
	start, bytes := 0, 0
	for i, op := range ops {
		s := op.size()
		if s > maxBytes {
			return nil, fmt.Errorf("%w: key %q needs %d bytes, the limit is %d", ErrOpTooLarge, op.Key, s, maxBytes)
		}
		if i-start == maxOps || bytes+s > maxBytes {
			batches = append(batches, ops[start:i:i])
			start, bytes = i, 0
		}
		bytes += s
	}
	if start < len(ops) {
		batches = append(batches, ops[start:])
	}
	return batches, nil
}

// leaseBase tags the leases this package grants: ID leaseBase+S is the
// lease of the keys that expire at Unix second S. Its top bits spell "mig";
// etcd's own IDs start with the granting member's 16-bit ID and a
// timestamp, so a clash needs a member ID of 0x6d69.
const (
	leaseBase = int64(0x6d6967) << 40
	leaseMask = int64(1)<<40 - 1
)

// LeaseID returns the ID of the lease for keys that expire at Unix second
// s (s > 0).
func LeaseID(s int64) int64 { return leaseBase | s&leaseMask }

// ExpirySecond returns the second a lease of LeaseID expires at, and
// whether id is one of ours at all.
func ExpirySecond(id int64) (int64, bool) {
	if id&^leaseMask != leaseBase {
		return 0, false
	}
	return id & leaseMask, true
}

// ExpirySecondOf returns the second a v2 expiration falls in, rounded up:
// the first whole second at which the key is gone.
func ExpirySecondOf(expiration time.Time) int64 {
	s := expiration.Unix()
	if expiration.Nanosecond() > 0 {
		s++
	}
	return s
}

// LeaseTTL returns the TTL to grant the lease of second s at now: the
// seconds left, at least 1 (a key about to expire still expires in v3).
func LeaseTTL(s int64, now time.Time) int64 {
	return max(s-now.Unix(), 1)
}
