package calicov1

// Rule is one rule of a Policy or of a profile's ProfileRules. Every match
// that is set must hold for the rule to apply; the fields whose JSON names
// start with "!" are negated matches. A nil pointer or empty field does not
// match on that attribute.
type Rule struct {
	Action string `json:"action,omitempty"` // "allow", "deny", "next-tier", "log"; "" is allow

	IPVersion *int `json:"ip_version,omitempty"` // 4 or 6

	Protocol    *Protocol `json:"protocol,omitempty"`
	NotProtocol *Protocol `json:"!protocol,omitempty"`

	ICMPType    *int `json:"icmp_type,omitempty"`
	ICMPCode    *int `json:"icmp_code,omitempty"`
	NotICMPType *int `json:"!icmp_type,omitempty"`
	NotICMPCode *int `json:"!icmp_code,omitempty"`

	SrcTag      string  `json:"src_tag,omitempty"`
	SrcNet      *IPNet  `json:"src_net,omitempty"`
	SrcNets     []IPNet `json:"src_nets,omitempty"`
	SrcSelector string  `json:"src_selector,omitempty"`
	SrcPorts    []Port  `json:"src_ports,omitempty"`
	DstTag      string  `json:"dst_tag,omitempty"`
	DstSelector string  `json:"dst_selector,omitempty"`
	DstNet      *IPNet  `json:"dst_net,omitempty"`
	DstNets     []IPNet `json:"dst_nets,omitempty"`
	DstPorts    []Port  `json:"dst_ports,omitempty"`

	NotSrcTag      string  `json:"!src_tag,omitempty"`
	NotSrcNet      *IPNet  `json:"!src_net,omitempty"`
	NotSrcNets     []IPNet `json:"!src_nets,omitempty"`
	NotSrcSelector string  `json:"!src_selector,omitempty"`
	NotSrcPorts    []Port  `json:"!src_ports,omitempty"`
	NotDstTag      string  `json:"!dst_tag,omitempty"`
	NotDstSelector string  `json:"!dst_selector,omitempty"`
	NotDstNet      *IPNet  `json:"!dst_net,omitempty"`
	NotDstNets     []IPNet `json:"!dst_nets,omitempty"`
	NotDstPorts    []Port  `json:"!dst_ports,omitempty"`

	LogPrefix string `json:"log_prefix,omitempty"` // for the "log" action
}

// AllSrcNets returns SrcNets and SrcNet together, SrcNet last.
func (r Rule) AllSrcNets() []IPNet { return combineNets(r.SrcNet, r.SrcNets) }

// AllDstNets returns DstNets and DstNet together, DstNet last.
func (r Rule) AllDstNets() []IPNet { return combineNets(r.DstNet, r.DstNets) }

// AllNotSrcNets returns NotSrcNets and NotSrcNet together, NotSrcNet last.
func (r Rule) AllNotSrcNets() []IPNet { return combineNets(r.NotSrcNet, r.NotSrcNets) }

// AllNotDstNets returns NotDstNets and NotDstNet together, NotDstNet last.
func (r Rule) AllNotDstNets() []IPNet { return combineNets(r.NotDstNet, r.NotDstNets) }

// combineNets returns a new slice; it never aliases nets.
func combineNets(n *IPNet, nets []IPNet) []IPNet {
	if n == nil && len(nets) == 0 {
		return nil
	}
	out := make([]IPNet, 0, len(nets)+1)
	out = append(out, nets...)
	if n != nil {
		out = append(out, *n)
	}
	return out
}
