package calicov1

import (
	"encoding/json"
	"fmt"
	"net"
)

// ParseValue decodes the raw value stored at key's path into the key's value
// type (see the package documentation for the table). On failure it returns
// a nil value and an error that wraps ErrInvalidValue, names the key and
// wraps the cause; a nil key gives an error wrapping ErrUnknownKey. It never
// keeps raw, is safe for concurrent use and never panics.
func ParseValue(key Key, raw []byte) (any, error) {
	switch k := key.(type) {
	case ReadyFlagKey:
		switch string(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, invalidValue(k, fmt.Errorf("want true or false, got %s", quoteShort(string(raw))))
	case GlobalConfigKey, HostConfigKey:
		return string(raw), nil
	case HostIPKey:
		return parseHostIP(k, raw)
	case WorkloadEndpointKey:
		return decodeStruct[WorkloadEndpoint](k, raw)
	case HostEndpointKey:
		return decodeStruct[HostEndpoint](k, raw)
	case TierKey:
		return decodeStruct[Tier](k, raw)
	case PolicyKey:
		return decodeStruct[Policy](k, raw)
	case ProfileRulesKey:
		return decodeStruct[ProfileRules](k, raw)
	case ProfileTagsKey:
		var tags []string
		if err := json.Unmarshal(raw, &tags); err != nil {
			return nil, invalidValue(k, err)
		}
		return tags, nil
	case ProfileLabelsKey:
		var labels map[string]string
		if err := json.Unmarshal(raw, &labels); err != nil {
			return nil, invalidValue(k, err)
		}
		return labels, nil
	case IPPoolKey:
		return decodeStruct[IPPool](k, raw)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownKey, key)
}

// decodeStruct decodes a JSON object into a new T. It returns an untyped nil
// on failure, never a nil *T in an interface.
func decodeStruct[T any](k Key, raw []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, invalidValue(k, err)
	}
	return v, nil
}

// parseHostIP decodes a bird_ip value: a bare address, as the original
// wrote it, or, tolerated, the same address as a JSON string.
func parseHostIP(k HostIPKey, raw []byte) (any, error) {
	s := string(raw)
	if len(s) > 0 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalidValue(k, err)
		}
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, invalidValue(k, fmt.Errorf("%s is not an IP address", quoteShort(s)))
	}
	return ip, nil
}

// invalidValue reports a value that does not decode for key k.
func invalidValue(k Key, err error) error {
	return fmt.Errorf("%w: %v: %w", ErrInvalidValue, k, err)
}
