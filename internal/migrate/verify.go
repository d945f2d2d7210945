package migrate

import (
	"context"
	"errors"
	"fmt"
)

// ErrSourceChanging: v2 kept changing, so that v3 still differed from it
// after the bound on verify rounds.
var ErrSourceChanging = errors.New("migrate: etcd v2 kept changing")

// Verified is what Verify found and did.
type Verified struct {
	Keys     int                 // keys under the prefix, on both sides
	Rounds   int                 // rounds run, the last one finding them equal
	Written  Result              // what the rounds before the last wrote
	Revision int64               // v3's revision at the last read
	Put      map[string]struct{} // the keys the rounds put
	Snapshot V2Snapshot          // v2 at the last read
}

// Verify reads the prefix from both sides and compares them: values,
// and expiry seconds. Where they differ (v2 changed after the copy), it
// writes the difference and reads again, up to rounds times; v3 still
// differing then is an error wrapping ErrSourceChanging that names the
// bound and how many keys differ.
func Verify(ctx context.Context, v2 V2, v3 V3, prefix string, rounds int) (Verified, error) {
	var out Verified
	out.Put = map[string]struct{}{}
	for out.Rounds = 1; ; out.Rounds++ {
		read := readBoth(ctx, v2, v3, prefix)
		snap, have, rev := read.v2, read.v3, read.rev
		if read.v2Err != nil {
			return out, fmt.Errorf("verifying: reading %s from etcd v2: %w", prefix, read.v2Err)
		}
		if read.v3Err != nil {
			return out, fmt.Errorf("verifying: %w", read.v3Err)
		}
		ops, _ := Diff(snap.Entries(), have)
		if len(ops) == 0 {
			out.Keys, out.Revision, out.Snapshot = len(snap.Keys), rev, snap
			return out, nil
		}
		if out.Rounds > rounds {
			return out, fmt.Errorf("%w: v3 still differs from v2 in %d keys (first %q) after %d verify rounds (--max-verify-rounds)",
				ErrSourceChanging, len(ops), ops[0].Key, rounds)
		}
		res, err := v3.Apply(ctx, ops)
		out.Written.Put += res.Put
		out.Written.Deleted += res.Deleted
		out.Written.Txns += res.Txns
		for _, k := range res.PutKeys {
			out.Put[k] = struct{}{}
		}
		if err != nil {
			return out, fmt.Errorf("verifying: writing what v2 changed since the copy: %w", err)
		}
	}
}
