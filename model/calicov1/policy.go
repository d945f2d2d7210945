package calicov1

import "fmt"

// TierKey is /calico/v1/policy/tier/<tier>/metadata, a tier of policies. Its
// value is a *Tier. The name is escaped in the path.
type TierKey struct {
	Name string
}

var _ Key = TierKey{}

// DefaultPath returns the key's path; it fails when Name is empty.
func (k TierKey) DefaultPath() (string, error) {
	if err := checkName(k, "name", k.Name); err != nil {
		return "", err
	}
	return "/" + prefix + "policy/tier/" + escapeName(k.Name) + "/metadata", nil
}

func (k TierKey) String() string { return fmt.Sprintf("Tier(name=%q)", k.Name) }

func (TierKey) isKey() {}

// PolicyKey is /calico/v1/policy/tier/<tier>/policy/<name>, a policy in a
// tier. Its value is a *Policy. Both names are escaped in the path. Before
// tiers, every policy lived in the tier named "default".
type PolicyKey struct {
	Tier string
	Name string
}

var _ Key = PolicyKey{}

// DefaultPath returns the key's path; it fails when a field is empty.
func (k PolicyKey) DefaultPath() (string, error) {
	if err := checkName(k, "tier", k.Tier); err != nil {
		return "", err
	}
	if err := checkName(k, "name", k.Name); err != nil {
		return "", err
	}
	return "/" + prefix + "policy/tier/" + escapeName(k.Tier) + "/policy/" + escapeName(k.Name), nil
}

func (k PolicyKey) String() string {
	return fmt.Sprintf("Policy(tier=%q, name=%q)", k.Tier, k.Name)
}

func (PolicyKey) isKey() {}

// Tier is the value of a TierKey.
type Tier struct {
	Order *float64 `json:"order,omitempty"` // nil: after every ordered tier
}

// Policy is the value of a PolicyKey.
type Policy struct {
	Order         *float64          `json:"order,omitempty"` // nil: after every ordered policy
	InboundRules  []Rule            `json:"inbound_rules,omitempty"`
	OutboundRules []Rule            `json:"outbound_rules,omitempty"`
	Selector      string            `json:"selector"` // the endpoints it applies to
	DoNotTrack    bool              `json:"untracked,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	PreDNAT       bool              `json:"pre_dnat,omitempty"`
	Types         []string          `json:"types,omitempty"` // "ingress", "egress"
}
