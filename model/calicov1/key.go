package calicov1

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors that callers can match with errors.Is.
var (
	// ErrInvalidKey: a key's DefaultPath cannot be written because a field
	// the path needs is empty or cannot be put in a path.
	ErrInvalidKey = errors.New("calicov1: invalid key")
	// ErrInvalidValue: a raw value does not decode into its key's value type.
	ErrInvalidValue = errors.New("calicov1: invalid value")
	// ErrUnknownKey: ParseValue or Decoder.DecodeValue was given something
	// that is not a key of this package (nil, say).
	ErrUnknownKey = errors.New("calicov1: not a v1 key")
)

// Key is a parsed v1 key. Its implementations are this package's key types
// only; they are comparable structs, so keys can be compared with == and used
// as map keys.
type Key interface {
	// DefaultPath returns the key's etcd path, the one KeyFromDefaultPath
	// parses back into an equal key. It fails with an error wrapping
	// ErrInvalidKey when a field the path needs is empty or cannot be put
	// in a path.
	DefaultPath() (string, error)
	// String names the key's kind and fields; distinct keys give distinct
	// strings.
	String() string

	isKey() // seals the interface
}

const (
	prefix        = "calico/v1/"       // of every path; the leading "/" is optional
	readyFlagPath = "/calico/v1/Ready" // the one path whose leading "/" is required
)

// KeyFromDefaultPath parses an etcd path into the key it names, or returns
// nil when the path is not one of the v1 forms listed in the package
// documentation. It is safe for concurrent use and never panics.
func KeyFromDefaultPath(path string) Key {
	if path == readyFlagPath {
		return ReadyFlagKey{}
	}
	rest, ok := strings.CutPrefix(strings.TrimPrefix(path, "/"), prefix)
	if !ok {
		return nil
	}
	kind, rest, _ := strings.Cut(rest, "/")
	switch kind {
	case "config":
		if rest == "" {
			return nil
		}
		return GlobalConfigKey{Name: rest}
	case "host":
		return parseHostPath(rest)
	case "policy":
		return parsePolicyPath(rest)
	case "ipam":
		return parsePoolPath(rest)
	}
	return nil
}

// parseHostPath parses what follows "/calico/v1/host/".
func parseHostPath(rest string) Key {
	host, sub, ok := strings.Cut(rest, "/")
	if !ok || host == "" {
		return nil
	}
	if name, ok := strings.CutPrefix(sub, "config/"); ok {
		if name == "" {
			return nil
		}
		return HostConfigKey{Hostname: host, Name: name}
	}
	seg := strings.SplitN(sub, "/", 6) // the longest form has 5 segments
	switch {
	case len(seg) == 1 && seg[0] == "bird_ip":
		return HostIPKey{Hostname: host}
	case len(seg) == 2 && seg[0] == "endpoint" && seg[1] != "":
		return HostEndpointKey{Hostname: host, EndpointID: unescapeName(seg[1])}
	case len(seg) == 5 && seg[0] == "workload" && seg[3] == "endpoint" &&
		seg[1] != "" && seg[2] != "" && seg[4] != "":
		return WorkloadEndpointKey{
			Hostname:       host,
			OrchestratorID: unescapeName(seg[1]),
			WorkloadID:     unescapeName(seg[2]),
			EndpointID:     unescapeName(seg[4]),
		}
	}
	return nil
}

// parsePolicyPath parses what follows "/calico/v1/policy/".
func parsePolicyPath(rest string) Key {
	seg := strings.SplitN(rest, "/", 5) // the longest form has 4 segments
	switch {
	case len(seg) == 3 && seg[0] == "tier" && seg[1] != "" && seg[2] == "metadata":
		return TierKey{Name: unescapeName(seg[1])}
	case len(seg) == 4 && seg[0] == "tier" && seg[2] == "policy" && seg[1] != "" && seg[3] != "":
		return PolicyKey{Tier: unescapeName(seg[1]), Name: unescapeName(seg[3])}
	case len(seg) == 3 && seg[0] == "profile" && seg[1] != "":
		p := ProfileKey{Name: unescapeName(seg[1])}
		switch seg[2] {
		case "rules":
			return ProfileRulesKey{ProfileKey: p}
		case "tags":
			return ProfileTagsKey{ProfileKey: p}
		case "labels":
			return ProfileLabelsKey{ProfileKey: p}
		}
	}
	return nil
}

// parsePoolPath parses what follows "/calico/v1/ipam/".
func parsePoolPath(rest string) Key {
	seg := strings.SplitN(rest, "/", 4) // the only form has 3 segments
	if len(seg) != 3 || seg[1] != "pool" {
		return nil
	}
	cidr, err := netip.ParsePrefix(strings.Replace(seg[2], "-", "/", 1))
	if err != nil {
		return nil
	}
	cidr = cidr.Masked()
	if seg[0] != versionDir(cidr) {
		return nil
	}
	return IPPoolKey{CIDR: cidr}
}

// escapeName makes a name fit in one path segment: "%" becomes "%25" and
// "/" becomes "%2f".
func escapeName(name string) string {
	name = strings.ReplaceAll(name, "%", "%25")
	return strings.ReplaceAll(name, "/", "%2f")
}

// unescapeName undoes escapeName: "%2f" becomes "/", then "%25" becomes "%".
// Other "%" sequences, "%2F" among them, are left as they are.
func unescapeName(segment string) string {
	segment = strings.ReplaceAll(segment, "%2f", "/")
	return strings.ReplaceAll(segment, "%25", "%")
}

// invalidKey reports a key whose path cannot be written.
func invalidKey(k Key, field, problem string) error {
	return fmt.Errorf("%w: %v: %s %s", ErrInvalidKey, k, field, problem)
}

// checkName checks a field that is escaped into its path segment.
func checkName(k Key, field, v string) error {
	if v == "" {
		return invalidKey(k, field, "is empty")
	}
	return nil
}

// checkSegment checks a field that is written into its path segment as it
// is (a host name).
func checkSegment(k Key, field, v string) error {
	if v == "" {
		return invalidKey(k, field, "is empty")
	}
	if strings.Contains(v, "/") {
		return invalidKey(k, field, `contains "/"`)
	}
	return nil
}
