package wire

import "fmt"

// Order checks that the frames of one stream come in the order PROTOCOL.md
// promises, and that a snapshot brings no more keys than it announced. It
// is the one check every client applies (Mirror, and the relay client's
// core), so that they cannot disagree on what a relay may send. The zero
// value expects the first frame of a stream. Not safe for concurrent use.
//
// A snapshot-begin inside a snapshot is out of order: a server writes each
// snapshot whole before anything else, so a second begin means a broken
// relay, and taking it would let the first snapshot's count go unchecked.
// A key past the announced count is refused at once, not at snapshot-end,
// so a relay that never ends its snapshot cannot grow a client without
// bound. A count only bounds: it never sizes an allocation.
type Order struct {
	hello  bool
	inSnap bool
	left   int // keys the snapshot being received may still bring
	// synced: a snapshot has ended on this stream, and no other begun, or
	// the stream resumed: deltas may come.
	synced bool
}

// Step checks f against the frames before it, and takes it. A frame out of
// order is an error wrapping ErrBadFrame, and the stream must then be
// dropped. Error and ping frames are always in order.
func (o *Order) Step(f *Frame) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s frame %s", ErrBadFrame, f.Type, fmt.Sprintf(format, args...))
	}
	if !o.hello && f.Type != TypeHello && f.Type != TypeError {
		return bad("before hello")
	}
	switch f.Type {
	case TypeHello:
		if o.hello {
			return bad("after a hello")
		}
		if f.Version != Version {
			return bad("of version %d, not %d", f.Version, Version)
		}
		o.hello, o.synced = true, f.Resume
	case TypeSnapshotBegin:
		if o.inSnap {
			return bad("inside a snapshot")
		}
		o.inSnap, o.left, o.synced = true, f.Count, false
	case TypeKVs:
		if !o.inSnap {
			return bad("outside a snapshot")
		}
		if len(f.KVs) > o.left {
			return bad("of %d keys, past the snapshot's count (%d more)", len(f.KVs), o.left)
		}
		o.left -= len(f.KVs)
	case TypeSnapshotEnd:
		if !o.inSnap {
			return bad("outside a snapshot")
		}
		if o.left != 0 {
			return bad("%d keys short of the snapshot's count", o.left)
		}
		o.inSnap, o.synced = false, true
	case TypeDelta:
		if o.inSnap || !o.synced {
			return bad("before a snapshot ended")
		}
	}
	return nil
}

// InSnapshot reports whether a snapshot has begun and not ended.
func (o *Order) InSnapshot() bool { return o.inSnap }

// Synced reports whether deltas may come: a snapshot has ended on this
// stream and no other begun, or the stream resumed.
func (o *Order) Synced() bool { return o.synced }
