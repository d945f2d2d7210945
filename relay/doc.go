// Package relay is the server side of etcdsync's fan-out: a Server is the
// host of one upstream syncer (it implements messages.Callbacks) and serves
// what that syncer delivered to any number of remote clients over HTTP
// (it implements http.Handler), so that etcd sees one watch however many
// hosts sync. The protocol is in PROTOCOL.md beside this file; the frames
// and their codec are package relay/wire.
//
// # Usage
//
//	rs, err := relay.New(relay.Config{Prefix: "/calico/v1", Logger: logger})
//	s, err := supervisor.Start(system, cfg, rs) // hands rs s.ClusterID before any delivery
//	srv := rs.HTTPServer()     // handshake and header timeouts, one request a connection
//	go srv.Serve(rs.Listener(ln)) // at most MaxConns connections; TLS: tls.NewListener around it
//	...
//	rs.Close()                 // ends the streams, which never go idle by themselves
//	srv.Shutdown(ctx)
//
// # How it holds many clients
//
// The server keeps the view it was delivered and a bounded, immutable log of
// frames, each encoded once (and compressed once, on first demand) and
// written as the same bytes to every client. Each stream is its own
// goroutine (the HTTP handler's), reading the log from its own position and
// waking on a channel closed whenever the log grows. Nothing is queued per
// client, so a slow client costs its position and a socket buffer, never
// memory that grows, and never delays the syncer or another client. A client
// that falls behind the log's start gets a fresh snapshot on the same
// stream. A snapshot is built from memory and shared by every client that
// asks within Config.SnapshotShare, or while the view has not changed, or
// while any stream still writes it and the log still holds what followed
// it. So a slow client pins a snapshot only once the log has moved past
// it, and the snapshots streams hold are bounded by Config.SnapshotBytes
// plus the one being built: to build one more, the server sheds the
// streams that hold the oldest such snapshots (Stats.Ended[EndShed]); they
// reconnect.
//
// What it must not do: call etcd, hold merge logic (a relay's client feeds
// the merge core, which does mark and sweep), import package actors or
// e2e, or block a callback on a client.
package relay
