package messages

// Decoder turns raw etcd keys and values into a host's typed ones. Set one in
// supervisor.Config.Decoder: each Update then carries DecodedKey and
// DecodedValue; a key the decoder does not accept goes to the host's
// ParseFailed (when it implements ParseFailedCallback) instead of the stream,
// and a value that does not decode is delivered with a nil DecodedValue.
//
// Its methods are called from one goroutine at a time; they must not block.
type Decoder interface {
	// DecodeKey parses an etcd key; ok is false for a key that is not one
	// of the model's.
	DecodeKey(key string) (k any, ok bool)
	// DecodeValue parses the raw value of a key DecodeKey accepted.
	DecodeValue(k any, value string) (v any, err error)
}
