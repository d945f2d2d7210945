package actors

import "github.com/etcdsync/etcdsync/messages"

// Outbox holds what the merger has emitted and the host has not yet been
// given, and hands it over one batch at a time, each once the host is done
// with the last. While the host is busy, updates coalesce per key, so a slow
// host costs memory in proportion to the keys that changed, not to the
// events: the last write wins, a key created and deleted meanwhile is never
// sent, a key deleted and created again is one "updated".
//
// A status change closes the updates before it: they are delivered, in a
// batch that ends with that status, before anything emitted after it, so the
// host never sees InSync before the updates that made it so. Statuses are
// never coalesced away.
//
// It is a plain data structure: no goroutines, no clocks. Not safe for
// concurrent use.
type Outbox struct {
	segments []*segment // oldest first; only the last may still be open
	inflight bool
}

// segment is the updates between two status changes, one entry per key.
type segment struct {
	order  []string // keys in the order they were first emitted
	byKey  map[string]*pendingUpdate
	status messages.SyncStatus // 0 while open
}

type pendingUpdate struct {
	messages.Update
	// hostHad: the host had the key before this segment's first update of
	// it, as that update's type says.
	hostHad bool
}

// Push adds what one merge step emitted: updates, then a status change (0
// for none).
func (o *Outbox) Push(updates []messages.Update, status messages.SyncStatus) {
	if len(updates) > 0 {
		seg := o.open()
		for _, u := range updates {
			if p := seg.byKey[u.Key]; p != nil {
				p.Update = u // the last write wins; hostHad stays
				continue
			}
			seg.order = append(seg.order, u.Key)
			seg.byKey[u.Key] = &pendingUpdate{Update: u, hostHad: u.Type != messages.UpdateTypeNew}
		}
	}
	if status != 0 {
		o.open().status = status
	}
}

// open returns the open segment, starting one if needed.
func (o *Outbox) open() *segment {
	if n := len(o.segments); n > 0 && o.segments[n-1].status == 0 {
		return o.segments[n-1]
	}
	seg := &segment{byKey: map[string]*pendingUpdate{}}
	o.segments = append(o.segments, seg)
	return seg
}

// Take returns the next batch for the host, if there is one and the last is
// done (see Done). The batch's updates are what the host must apply to
// reach the state the merger had emitted at the batch's end.
func (o *Outbox) Take() (messages.Deliver, bool) {
	for !o.inflight && len(o.segments) > 0 {
		seg := o.segments[0]
		o.segments[0] = nil
		o.segments = o.segments[1:]
		d := messages.Deliver{Status: seg.status, Updates: make([]messages.Update, 0, len(seg.order))}
		for _, k := range seg.order {
			p := seg.byKey[k]
			switch {
			case p.Type == messages.UpdateTypeDeleted && !p.hostHad:
				continue // created and deleted meanwhile: the host never needs to know
			case p.Type == messages.UpdateTypeDeleted:
			case p.hostHad:
				p.Type = messages.UpdateTypeUpdated
			default:
				p.Type = messages.UpdateTypeNew
			}
			d.Updates = append(d.Updates, p.Update)
		}
		if len(d.Updates) > 0 || d.Status != 0 {
			o.inflight = true
			return d, true
		}
	}
	return messages.Deliver{}, false
}

// Done records that the host has finished with the batch Take returned.
func (o *Outbox) Done() { o.inflight = false }

// InFlight reports whether a batch is with the host.
func (o *Outbox) InFlight() bool { return o.inflight }

// Pending returns how many updates wait, one per key and segment.
func (o *Outbox) Pending() int {
	n := 0
	for _, s := range o.segments {
		n += len(s.order)
	}
	return n
}
