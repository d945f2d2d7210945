// Package wire is the wire format of the etcdsync relay protocol
// (relay/PROTOCOL.md): the frames a relay server writes, how they
// are encoded (one JSON object per line) and decoded under a size limit, the
// optional zstd layer, Order, the frame-order check every client applies,
// and Mirror, a map that frames are applied to.
//
// It is a pure codec, shared by the relay server (package relay)
// and the relay client that will feed the merge core (package actors): it
// depends on package messages and on no other package of ours, it starts no
// goroutine and performs no network I/O beyond the io.Reader and io.Writer it
// is handed. Encoding a frame never depends on who will read it, so a server
// encodes each frame once and writes the same bytes to every client.
package wire
