package actors

import (
	"fmt"

	"github.com/etcdsync/etcdsync/internal/source"
	"github.com/etcdsync/etcdsync/messages"
)

// WatchErrors counts consecutive retryable watch errors and gives up after
// Limit of them: a watch that cannot reach etcd that long has probably
// fallen out of etcd's history anyway. Not safe for concurrent use.
type WatchErrors struct {
	Limit int
	// Classify says what one error means on its own (the Source's
	// Classify).
	Classify    func(error) source.Verdict
	consecutive int
}

// Observe classifies err, counting it against the limit.
func (w *WatchErrors) Observe(err error) source.Verdict {
	v := w.Classify(err)
	if v != source.Retry {
		return v
	}
	w.consecutive++
	if w.consecutive >= w.Limit {
		return source.LostSync
	}
	return source.Retry
}

// Succeeded resets the count after an answer was received.
func (w *WatchErrors) Succeeded() { w.consecutive = 0 }

// Consecutive returns the retryable errors counted since the last success.
func (w *WatchErrors) Consecutive() int { return w.consecutive }

// CheckReconnect judges etcd as a watch finds it after its connection broke:
// the watch started on cluster startID and has seen index seen; etcd now
// answers with cluster id at index now. Another cluster, or the same one
// below what the watch has seen (restored from a backup), means the watch's
// position is meaningless; the error wraps messages.ErrClusterIDChanged or
// messages.ErrIndexRegressed.
func CheckReconnect(startID string, seen uint64, id string, now uint64) error {
	switch {
	case startID != "" && id != "" && id != startID:
		return fmt.Errorf("%w: was %s, now %s after a reconnect", messages.ErrClusterIDChanged, startID, id)
	case now < seen:
		return fmt.Errorf("%w: etcd is at index %d after a reconnect; the watch had seen %d",
			messages.ErrIndexRegressed, now, seen)
	}
	return nil
}
