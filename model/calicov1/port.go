package calicov1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Protocol is an IP protocol given by name ("tcp") or by number (6). In JSON
// it is a string or a number; a string of digits ("6") is taken as the
// number, as in the original.
type Protocol struct {
	Name   string // e.g. "tcp"; "" when the protocol is given by number
	Number uint8  // the protocol's number when Name is ""
}

// String returns the name, or the number in decimal.
func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// MarshalJSON writes the name as a string or the number as a number.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

// UnmarshalJSON reads a string or a number from 0 to 255; a JSON null leaves
// p unchanged. The empty string is not a protocol.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("calicov1: protocol: %w", err)
		}
		if n, err := strconv.ParseUint(s, 10, 8); err == nil {
			*p = Protocol{Number: uint8(n)}
			return nil
		}
		if s == "" {
			return errors.New("calicov1: protocol: empty name")
		}
		*p = Protocol{Name: s}
		return nil
	}
	var n uint8
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("calicov1: protocol: want a name or a number from 0 to 255: %w", err)
	}
	*p = Protocol{Number: n}
	return nil
}

// Port is a port number, an inclusive range of port numbers, or a named
// port. A single port has MinPort == MaxPort; a named port has PortName set
// and both numbers zero.
type Port struct {
	MinPort  uint16
	MaxPort  uint16
	PortName string
}

// maxPortName is the longest port name accepted.
const maxPortName = 128

// ParsePort parses the string form of a Port: "80", "1000:2000" (MinPort
// must not exceed MaxPort) or a name of 1 to 128 letters, digits, "_", "."
// and "-" ("http").
func ParsePort(s string) (Port, error) {
	if allDigits(s) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("calicov1: port %s: out of range", quoteShort(s))
		}
		return Port{MinPort: uint16(n), MaxPort: uint16(n)}, nil
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok && allDigits(lo) && allDigits(hi) {
		minPort, err1 := strconv.ParseUint(lo, 10, 16)
		maxPort, err2 := strconv.ParseUint(hi, 10, 16)
		switch {
		case err1 != nil || err2 != nil:
			return Port{}, fmt.Errorf("calicov1: port range %s: out of range", quoteShort(s))
		case minPort > maxPort:
			return Port{}, fmt.Errorf("calicov1: port range %s: minimum above maximum", quoteShort(s))
		}
		return Port{MinPort: uint16(minPort), MaxPort: uint16(maxPort)}, nil
	}
	if !validPortName(s) {
		return Port{}, fmt.Errorf("calicov1: port %s: neither a number, a range nor a valid name", quoteShort(s))
	}
	return Port{PortName: s}, nil
}

// String returns the string form ParsePort reads.
func (p Port) String() string {
	switch {
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	}
	return strconv.Itoa(int(p.MinPort)) + ":" + strconv.Itoa(int(p.MaxPort))
}

// MarshalJSON writes a single port as a number, anything else as a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.PortName == "" && p.MinPort == p.MaxPort {
		return json.Marshal(p.MinPort)
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON reads a number from 0 to 65535 or a string ParsePort
// accepts; a JSON null leaves p unchanged.
func (p *Port) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("calicov1: port: %w", err)
		}
		v, err := ParsePort(s)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	var n uint16
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("calicov1: port: want a string or a number from 0 to 65535: %w", err)
	}
	*p = Port{MinPort: n, MaxPort: n}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validPortName(s string) bool {
	if s == "" || len(s) > maxPortName {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
