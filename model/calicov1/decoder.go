package calicov1

import (
	"fmt"

	"github.com/etcdsync/etcdsync/messages"
)

// Decoder decodes the v1 data model for the syncer: set it as
// supervisor.Config.Decoder. The zero value is ready to use; it holds no
// state, so it is safe for concurrent use and never blocks.
type Decoder struct{}

var _ messages.Decoder = Decoder{}

// DecodeKey parses an etcd key with KeyFromDefaultPath. The key it returns
// is a Key; ok is false, and k nil, for a key that is not a v1 key.
func (Decoder) DecodeKey(key string) (k any, ok bool) {
	parsed := KeyFromDefaultPath(key)
	if parsed == nil {
		return nil, false
	}
	return parsed, true
}

// DecodeValue parses a raw value with ParseValue. k must be a key DecodeKey
// returned; anything else gives an error wrapping ErrUnknownKey.
func (Decoder) DecodeValue(k any, value string) (v any, err error) {
	key, ok := k.(Key)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnknownKey, k)
	}
	return ParseValue(key, []byte(value))
}
