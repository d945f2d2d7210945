package calicov1

import (
	"fmt"
	"net/netip"
	"strings"
)

// IPPoolKey is /calico/v1/ipam/v4/pool/<address>-<bits> (or v6), a pool of
// addresses for workloads. Its value is an *IPPool. The CIDR is a masked
// netip.Prefix, so that the key stays comparable; KeyFromDefaultPath masks
// what it parses ("10.0.0.1-8" is 10.0.0.0/8), and an IPv4-mapped IPv6 prefix
// is a v6 pool.
type IPPoolKey struct {
	CIDR netip.Prefix
}

var _ Key = IPPoolKey{}

// DefaultPath returns the key's path; it fails when CIDR is not valid or not
// masked (10.0.0.1/8 rather than 10.0.0.0/8).
func (k IPPoolKey) DefaultPath() (string, error) {
	if !k.CIDR.IsValid() {
		return "", invalidKey(k, "cidr", "is not set")
	}
	if m := k.CIDR.Masked(); m != k.CIDR {
		return "", invalidKey(k, "cidr", "is not masked (want "+m.String()+")")
	}
	c := strings.Replace(k.CIDR.String(), "/", "-", 1)
	return "/" + prefix + "ipam/" + versionDir(k.CIDR) + "/pool/" + c, nil
}

func (k IPPoolKey) String() string { return fmt.Sprintf("IPPool(cidr=%s)", k.CIDR) }

func (IPPoolKey) isKey() {}

// versionDir returns the directory a pool of the prefix's family lives in.
func versionDir(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "v4"
	}
	return "v6"
}

// IPIPMode says when traffic to a pool's addresses is IP-in-IP encapsulated.
type IPIPMode string

// The IP-in-IP modes; the original's data holds no others, but any string
// decodes.
const (
	IPIPModeUndefined   IPIPMode = ""             // see IPPool.IPIPInterface
	IPIPModeAlways      IPIPMode = "always"       // always encapsulate
	IPIPModeCrossSubnet IPIPMode = "cross-subnet" // only across subnets
)

// IPPool is the value of an IPPoolKey.
type IPPool struct {
	CIDR          IPNet    `json:"cidr"`
	IPIPInterface string   `json:"ipip"` // "tunl0" when IP-in-IP is on; "" when off
	IPIPMode      IPIPMode `json:"ipip_mode"`
	Masquerade    bool     `json:"masquerade"` // NAT outgoing traffic
	IPAM          bool     `json:"ipam"`       // Calico IPAM allocates from it
	Disabled      bool     `json:"disabled"`   // no new allocations
}
