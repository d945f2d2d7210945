package actors

import (
	"fmt"
	"time"

	"github.com/etcdsync/etcdsync/messages"
)

// StaleCheck judges snapshot reads that came back below the index the
// merger requires. A member behind the leader catches up within moments; a
// datastore restored from a backup never does, since the merger never
// requires less than it has applied. Reads that stay behind for Timeout,
// under one cluster ID, mean the datastore went back in time. Time is an
// input; not safe for concurrent use.
type StaleCheck struct {
	Timeout time.Duration

	since time.Time // of the first stale read under id
	id    string
}

// Observe records a read at index, below minIndex, answered at now by
// cluster id ("" if unknown). The error wraps messages.ErrIndexRegressed
// once reads have stayed behind for Timeout.
func (c *StaleCheck) Observe(now time.Time, id string, index, minIndex uint64) error {
	if c.since.IsZero() || (id != "" && id != c.id) {
		c.since, c.id = now, id
	}
	if now.Sub(c.since) >= c.Timeout {
		return fmt.Errorf("%w: snapshots stayed at index %d, below the %d already applied, for %v",
			messages.ErrIndexRegressed, index, minIndex, c.Timeout)
	}
	return nil
}
