package migrate

import "context"

// both is a read of the whole prefix on both sides.
type both struct {
	v2    V2Snapshot
	v2Err error
	v3    map[string]Entry
	rev   int64
	v3Err error
}

// readBoth reads the prefix from v2 and from v3 at once: the two reads
// wait on different servers (or different stores of one), and each takes
// seconds at 10^5 keys.
func readBoth(ctx context.Context, v2 V2, v3 V3, prefix string) both {
	var b both
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.v3, b.rev, b.v3Err = v3.ReadAll(ctx)
	}()
	b.v2, b.v2Err = v2.Snapshot(ctx, prefix)
	<-done
	return b
}
