package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/etcdsync/etcdsync/messages"
)

// Version is the protocol version this package speaks. It is part of the
// stream's path, so a server can serve several versions side by side.
const Version = 1

// StreamPath is the HTTP path of the version-1 stream.
const StreamPath = "/etcdsync/relay/v1/stream"

// The handshake's query parameters (PROTOCOL.md, "Handshake").
const (
	ParamPrefix    = "prefix"
	ParamClusterID = "clusterID"
	ParamRevision  = "revision"
	ParamDigest    = "digest"
	ParamFeatures  = "features"
)

// Features a client may advertise in ParamFeatures. A server sends a frame
// type that is behind a feature only to a client that advertised it.
const (
	// FeaturePing: the client accepts ping frames (keep-alives).
	FeaturePing = "ping"
)

// Type is a frame's type, the "type" member of its JSON object.
type Type string

// The frame types of version 1.
const (
	TypeHello         Type = "hello"          // first frame of every accepted stream
	TypeSnapshotBegin Type = "snapshot-begin" // replace your view with what follows
	TypeKVs           Type = "kvs"            // some keys of the snapshot being sent
	TypeSnapshotEnd   Type = "snapshot-end"   // the snapshot is complete
	TypeDelta         Type = "delta"          // changes after the snapshot, in order
	TypeStatus        Type = "status"         // the relay's sync status changed
	TypePing          Type = "ping"           // nothing happened (FeaturePing only)
	TypeError         Type = "error"          // refusal or failure; the stream ends
)

// Frame is one protocol message. Which members are set depends on Type
// (PROTOCOL.md, "Messages"); the zero value of each member is left out of
// the encoding. One struct for all types keeps decoding to a single
// Unmarshal, and lets a frame be inspected with jq without a schema.
type Frame struct {
	Type Type `json:"type"`

	// hello: the server's protocol version and the features it will use
	// with this client (those both sides know).
	Version  int      `json:"version,omitempty"`
	Features []string `json:"features,omitempty"`
	Prefix   string   `json:"prefix,omitempty"`
	// hello: whether the stream resumes the client's position (no
	// snapshot follows).
	Resume bool `json:"resume,omitempty"`

	// snapshot-begin, delta: a resume position, present only where the
	// relay's view is etcd's state at Revision of cluster ClusterID (after
	// a whole batch delivered in sync). A client resumes with the last pair
	// it applied. hello: the relay's cluster and highest revision now,
	// for information.
	ClusterID string `json:"clusterID,omitempty"`
	Revision  uint64 `json:"revision,omitempty"`
	// snapshot-begin, delta, status: with a resume position, the Digest of
	// the relay's view there (Digest.String: the empty view's is
	// "0000000000000000", so present whenever the position is). A client
	// resumes with it; one that keeps its own checks it.
	Digest string `json:"digest,omitempty"`

	// snapshot-begin: how many keys follow in kvs frames.
	Count int `json:"count,omitempty"`
	// status, snapshot-end, hello: the relay's status
	// ("wait-for-datastore", "resync", "in-sync").
	Status string `json:"status,omitempty"`

	// kvs: keys of the snapshot.
	KVs []KV `json:"kvs,omitempty"`
	// delta: changes, oldest first.
	Changes []Change `json:"changes,omitempty"`

	// error
	Code       string `json:"code,omitempty"`       // machine-readable reason, e.g. "too-many-clients"
	Field      string `json:"field,omitempty"`      // the handshake parameter at fault, if any
	Message    string `json:"message,omitempty"`    // for people
	RetryAfter int    `json:"retryAfter,omitempty"` // seconds before retrying; 0: do not retry as is
}

// KV is a key of a snapshot: its value and modifiedIndex.
type KV struct {
	Key      string `json:"k"`
	Value    string `json:"v"`
	Revision uint64 `json:"r"`
}

// Change is one update of a delta frame.
type Change struct {
	Op       string `json:"op"` // "new", "updated" or "deleted"
	Key      string `json:"k"`
	Value    string `json:"v,omitempty"`
	Revision uint64 `json:"r"`
}

// Error codes of error frames.
const (
	CodeBadRequest     = "bad-request"       // a malformed handshake; Field names the parameter
	CodeBadVersion     = "bad-version"       // the path names a version this server does not speak
	CodeTooLarge       = "request-too-large" // the request is over the server's limit
	CodeTooManyClients = "too-many-clients"  // retry after RetryAfter seconds, elsewhere if possible
	CodeNotFound       = "not-found"         // not a relay path
	CodeShuttingDown   = "shutting-down"     // the relay is stopping; reconnect elsewhere
)

// ErrFrameTooLarge is returned by Decoder.Next for a frame over its limit.
var ErrFrameTooLarge = errors.New("relay/wire: frame too large")

// ErrBadFrame wraps every reason a line is not a valid frame.
var ErrBadFrame = errors.New("relay/wire: bad frame")

// ChangeOf returns the wire form of an update.
func ChangeOf(u messages.Update) Change {
	return Change{Op: u.Type.String(), Key: u.Key, Value: u.Value, Revision: u.Revision}
}

// Update returns the update a change stands for; the error wraps
// ErrBadFrame for an unknown op.
func (c Change) Update() (messages.Update, error) {
	t, err := ParseUpdateType(c.Op)
	if err != nil {
		return messages.Update{}, err
	}
	return messages.Update{Key: c.Key, Value: c.Value, Revision: c.Revision, Type: t}, nil
}

// ParseUpdateType is the inverse of messages.UpdateType.String.
func ParseUpdateType(s string) (messages.UpdateType, error) {
	for _, t := range []messages.UpdateType{messages.UpdateTypeNew, messages.UpdateTypeUpdated, messages.UpdateTypeDeleted} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: op %q is not new, updated or deleted", ErrBadFrame, s)
}

// ParseStatus is the inverse of messages.SyncStatus.String.
func ParseStatus(s string) (messages.SyncStatus, error) {
	for _, st := range []messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: status %q is not wait-for-datastore, resync or in-sync", ErrBadFrame, s)
}

// Append appends f's encoding, one line of JSON ending in '\n', to dst.
// Values are written as etcd holds them (no HTML escaping).
func Append(dst []byte, f *Frame) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil { // Encode ends the line
		return dst, fmt.Errorf("relay/wire: encoding a %s frame: %w", f.Type, err)
	}
	return buf.Bytes(), nil
}

// Validate checks what a receiver relies on: a known type and, for each
// type, the members it must have. The error wraps ErrBadFrame.
func (f *Frame) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s frame: %s", ErrBadFrame, f.Type, fmt.Sprintf(format, args...))
	}
	if f.Digest != "" {
		if _, err := ParseDigest(f.Digest); err != nil {
			return err
		}
	}
	switch f.Type {
	case TypeHello:
		if f.Version <= 0 {
			return bad("version %d", f.Version)
		}
		if f.Status != "" {
			if _, err := ParseStatus(f.Status); err != nil {
				return err
			}
		}
	case TypeSnapshotBegin:
		if f.Count < 0 {
			return bad("count %d", f.Count)
		}
	case TypeKVs, TypePing:
	case TypeSnapshotEnd, TypeStatus:
		if _, err := ParseStatus(f.Status); err != nil {
			return err
		}
	case TypeDelta:
		for _, c := range f.Changes {
			if _, err := ParseUpdateType(c.Op); err != nil {
				return err
			}
		}
	case TypeError:
		if f.Code == "" {
			return bad("no code")
		}
	case "":
		return fmt.Errorf("%w: no type", ErrBadFrame)
	default:
		return bad("unknown type")
	}
	return nil
}
