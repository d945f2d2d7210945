package calicov1

import (
	"encoding/json"
	"fmt"
	"net"
)

// IPNet is an IP network that is a JSON string. It decodes a CIDR, keeping
// the address unmasked ("10.0.0.1/24" stays 10.0.0.1 with a /24 mask), or a
// bare address, as the network of that address alone (/32 or /128). An IPv4
// network holds a 4-byte address and mask.
type IPNet struct {
	net.IPNet
}

// ParseIPNet parses a CIDR or a bare address as IPNet's JSON form does.
func ParseIPNet(s string) (IPNet, error) {
	if ip, n, err := net.ParseCIDR(s); err == nil {
		if len(n.Mask) == net.IPv4len {
			ip = ip.To4()
		}
		return IPNet{net.IPNet{IP: ip, Mask: n.Mask}}, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return IPNet{}, fmt.Errorf("calicov1: %s is neither a CIDR nor an IP address", quoteShort(s))
	}
	if ip4 := ip.To4(); ip4 != nil {
		return IPNet{net.IPNet{IP: ip4, Mask: net.CIDRMask(8*net.IPv4len, 8*net.IPv4len)}}, nil
	}
	return IPNet{net.IPNet{IP: ip, Mask: net.CIDRMask(8*net.IPv6len, 8*net.IPv6len)}}, nil
}

// String returns the CIDR form, e.g. "10.0.0.1/24".
func (n IPNet) String() string { return n.IPNet.String() }

// MarshalJSON writes the CIDR form as a JSON string.
func (n IPNet) MarshalJSON() ([]byte, error) { return json.Marshal(n.String()) }

// UnmarshalJSON reads a JSON string; a JSON null leaves n unchanged.
func (n *IPNet) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b, "IP network")
	if err != nil || s == nil {
		return err
	}
	v, err := ParseIPNet(*s)
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// MAC is a hardware address that is a JSON string ("ee:ee:ee:ee:ee:ee").
type MAC struct {
	net.HardwareAddr
}

// MarshalJSON writes the address as a JSON string.
func (m MAC) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads a JSON string; a JSON null leaves m unchanged.
func (m *MAC) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b, "MAC address")
	if err != nil || s == nil {
		return err
	}
	hw, err := net.ParseMAC(*s)
	if err != nil {
		return fmt.Errorf("calicov1: MAC address: %w", err)
	}
	m.HardwareAddr = hw
	return nil
}

// jsonString decodes a JSON string; it returns nil, nil for a JSON null.
func jsonString(b []byte, what string) (*string, error) {
	if string(b) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("calicov1: %s: want a JSON string: %w", what, err)
	}
	return &s, nil
}

// quoteShort quotes s for an error message, cut to 64 bytes.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
