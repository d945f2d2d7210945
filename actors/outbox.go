package actors

import "github.com/etcdsync/etcdsync/messages"

// Outbox holds what the merger has emitted and the host has not yet been
// given, and hands it over one batch at a time, each once the host is done
// with the last. While the host is busy, updates coalesce per key (once
// more than a few thousand wait), so a slow host costs memory in proportion
// to the keys that changed, not to the events: the last write wins, a key
// created and deleted meanwhile is never sent, a key deleted and created
// again is one "updated". A host that keeps up gets the merger's batches as
// they are.
//
// A status change closes the updates before it: they are delivered, in a
// batch that ends with that status, before anything emitted after it, so the
// host never sees InSync before the updates that made it so. Statuses are
// never coalesced away.
//
// Updates pushed as Partial (their etcd index is not whole yet) wait until
// a Push ends the index, or a status closes them: every batch the host gets
// ends at the end of an etcd index, so a host in sync (a relay announcing a
// resume position) is never at a state between two of one index's changes.
//
// It is a plain data structure: no goroutines, no clocks. Not safe for
// concurrent use.
type Outbox struct {
	// FoldAt is how many updates may wait as they came before they are
	// folded into one entry per key; 0 means DefaultFoldAt. Below it a host
	// that keeps up pays nothing for coalescing.
	FoldAt int

	segments []*segment        // oldest first; only the last may still be open
	inflight *messages.Deliver // the batch with the host, until Done
}

// DefaultFoldAt is the default Outbox.FoldAt.
const DefaultFoldAt = 4096

// segment is the updates between two status changes.
type segment struct {
	batches [][]messages.Update // as pushed, not yet folded
	pending int                 // updates in batches
	foldAt  int                 // the Outbox's FoldAt
	limit   int                 // fold when pending exceeds it

	// The folded form, one entry per key.
	order  []string // keys in the order they were first emitted
	byKey  map[string]*pendingUpdate
	status messages.SyncStatus // 0 while open
	index  uint64              // the status's Deliver.Index
	// partial: open, and its last update's etcd index is not whole: not
	// to be taken yet.
	partial bool
}

type pendingUpdate struct {
	messages.Update
	// hostHad: the host had the key before this segment's first update of
	// it, as that update's type says.
	hostHad bool
}

// Push adds what one merge step emitted: updates, then a status change (0
// for none) with its Index; d.Partial holds them back until a later Push
// ends their index. The Outbox keeps the slice of updates; the caller must
// not change it.
func (o *Outbox) Push(d messages.Deliver) {
	if len(d.Updates) > 0 {
		seg := o.open()
		seg.batches = append(seg.batches, d.Updates)
		seg.pending += len(d.Updates)
		if seg.pending > seg.limit {
			seg.fold()
		}
	}
	if n := len(o.segments); n > 0 && o.segments[n-1].status == 0 {
		o.segments[n-1].partial = d.Partial
	}
	if d.Status != 0 {
		seg := o.open()
		seg.status, seg.index, seg.partial = d.Status, d.Index, false
	}
}

// open returns the open segment, starting one if needed.
func (o *Outbox) open() *segment {
	if n := len(o.segments); n > 0 && o.segments[n-1].status == 0 {
		return o.segments[n-1]
	}
	seg := &segment{foldAt: o.FoldAt}
	if seg.foldAt <= 0 {
		seg.foldAt = DefaultFoldAt
	}
	seg.limit = seg.foldAt
	o.segments = append(o.segments, seg)
	return seg
}

// fold merges the waiting batches into one entry per key, and sets the next
// fold for when as many updates again have come, so that folding stays
// linear in the updates however far behind the host falls.
func (s *segment) fold() {
	if s.byKey == nil {
		s.byKey = map[string]*pendingUpdate{}
	}
	for _, b := range s.batches {
		for _, u := range b {
			if p := s.byKey[u.Key]; p != nil {
				p.Update = u // the last write wins; hostHad stays
				continue
			}
			s.order = append(s.order, u.Key)
			s.byKey[u.Key] = &pendingUpdate{Update: u, hostHad: u.Type != messages.UpdateTypeNew}
		}
	}
	clear(s.batches)
	s.batches, s.pending = s.batches[:0], 0
	s.limit = max(s.foldAt, len(s.order))
}

// Take returns the next batch for the host, if there is one and the last is
// done (see Done). The batch's updates are what the host must apply to
// reach the state the merger had emitted at the batch's end.
func (o *Outbox) Take() (messages.Deliver, bool) {
	for o.inflight == nil && len(o.segments) > 0 && !o.segments[0].partial {
		seg := o.segments[0]
		o.segments[0] = nil
		o.segments = o.segments[1:]
		d := messages.Deliver{Status: seg.status, Index: seg.index, Updates: seg.updates()}
		if len(d.Updates) > 0 || d.Status != 0 {
			o.inflight = &d
			return d, true
		}
	}
	return messages.Deliver{}, false
}

// updates returns the segment's updates for the host: its one batch as it
// came, its batches one after the other, or its folded entries.
func (s *segment) updates() []messages.Update {
	switch {
	case s.byKey == nil && len(s.batches) == 1:
		return s.batches[0]
	case s.byKey == nil:
		out := make([]messages.Update, 0, s.pending)
		for _, b := range s.batches {
			out = append(out, b...)
		}
		return out
	}
	s.fold()
	out := make([]messages.Update, 0, len(s.order))
	for _, k := range s.order {
		p := s.byKey[k]
		switch {
		case p.Type == messages.UpdateTypeDeleted && !p.hostHad:
			continue // created and deleted meanwhile: the host never needs to know
		case p.Type == messages.UpdateTypeDeleted:
		case p.hostHad:
			p.Type = messages.UpdateTypeUpdated
		default:
			p.Type = messages.UpdateTypeNew
		}
		out = append(out, p.Update)
	}
	return out
}

// Done records that the host has finished with the batch Take returned.
func (o *Outbox) Done() { o.inflight = nil }

// InFlight returns the batch Take returned, while the host has it (until
// Done): a batch whose delivery failed is delivered again from here.
func (o *Outbox) InFlight() (messages.Deliver, bool) {
	if o.inflight == nil {
		return messages.Deliver{}, false
	}
	return *o.inflight, true
}

// Pending returns how many updates wait: one per key in a folded segment,
// one per update in batches not yet folded.
func (o *Outbox) Pending() int {
	n := 0
	for _, s := range o.segments {
		n += len(s.order) + s.pending
	}
	return n
}
