package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame is the default limit on one frame's encoding: well above
// what a server writes (it splits snapshots and deltas into frames of at most
// MaxFrameChanges entries) plus a large etcd value, and low enough that a
// garbage stream without newlines cannot exhaust memory.
const DefaultMaxFrame = 8 << 20

// Decoder reads frames from a stream, one line each. Not safe for
// concurrent use.
type Decoder struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewDecoder returns a decoder of r refusing frames over maxFrame bytes
// (DefaultMaxFrame if maxFrame <= 0).
func NewDecoder(r io.Reader, maxFrame int) *Decoder {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10), max: maxFrame}
}

// Next returns the next frame. It returns io.EOF at a clean end of stream,
// io.ErrUnexpectedEOF for a stream cut inside a frame, an error wrapping
// ErrFrameTooLarge for a line over the limit, and one wrapping ErrBadFrame
// for a line that is not a valid frame; after an error the stream is no
// longer in step and must be dropped.
func (d *Decoder) Next() (*Frame, error) {
	line, err := d.line()
	if err != nil {
		return nil, err
	}
	f := &Frame{}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value on a line", ErrBadFrame)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// line returns the next line without its '\n', valid until the next call.
func (d *Decoder) line() ([]byte, error) {
	d.buf = d.buf[:0]
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(d.buf)+len(chunk) > d.max+1 { // +1: the newline is not the frame's
			return nil, fmt.Errorf("%w: over %d bytes", ErrFrameTooLarge, d.max)
		}
		switch {
		case err == nil:
			if len(d.buf) == 0 {
				return chunk[:len(chunk)-1], nil
			}
			d.buf = append(d.buf, chunk[:len(chunk)-1]...)
			return d.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			d.buf = append(d.buf, chunk...)
		case errors.Is(err, io.EOF):
			if len(d.buf)+len(chunk) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, fmt.Errorf("relay/wire: reading a frame: %w", err)
		}
	}
}
