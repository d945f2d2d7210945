package wire

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Encodings a stream may have, as HTTP content codings: the client asks with
// Accept-Encoding, the server answers with Content-Encoding.
const (
	EncodingIdentity = "identity"
	EncodingZstd     = "zstd"
)

// MaxFrameChanges is the most keys a server puts in one kvs frame or
// changes in one delta frame, and MaxFrameValueBytes the most bytes of keys
// and values, so that frames stay small next to DefaultMaxFrame (JSON
// escaping grows a value at most sixfold) and a client applies a snapshot
// in steps. A single entry larger than that still gets a frame of its own.
const (
	MaxFrameChanges    = 512
	MaxFrameValueBytes = 1 << 20
)

// Chunks splits n entries, the i-th of size(i) bytes, into the runs [start,
// end) that frames carry: at most MaxFrameChanges entries and, but for a
// run of one, MaxFrameValueBytes.
func Chunks(n int, size func(i int) int) [][2]int {
	var out [][2]int
	start, bytes := 0, 0
	for i := range n {
		b := size(i)
		if i > start && (i-start == MaxFrameChanges || bytes+b > MaxFrameValueBytes) {
			out = append(out, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += b
	}
	if n > start {
		out = append(out, [2]int{start, n})
	}
	return out
}

// zstdWindow bounds the decoder's window, and so its memory per stream. The
// server compresses each shared entry as an independent zstd frame, never
// larger than a snapshot chunk, so a small window loses little.
const zstdWindow = 8 << 20

var encoder = sync.OnceValue(func() *zstd.Encoder {
	// EncodeAll is safe for concurrent use; one encoder serves every
	// goroutine. SpeedDefault: a snapshot is compressed once per burst, so
	// its ratio matters more than its speed.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(fmt.Errorf("relay/wire: zstd encoder: %w", err)) // only for bad options
	}
	return enc
})

// Compress returns src as one complete zstd frame, appended to dst. A
// stream of such frames, one after the other, is a valid zstd stream, so a
// server can compress each shared entry once and write the same bytes to
// every client that negotiated zstd. Safe for concurrent use.
func Compress(dst, src []byte) []byte {
	return encoder().EncodeAll(src, dst)
}

// NewZstdReader returns a reader of the stream r decompressed. Its memory is
// bounded by the window limit; Close releases it.
func NewZstdReader(r io.Reader) (io.ReadCloser, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdWindow),
		zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("relay/wire: zstd decoder: %w", err)
	}
	return dec.IOReadCloser(), nil
}
