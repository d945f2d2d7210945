package calicov1

import "fmt"

// ProfileKey names a profile. A profile is stored as three keys under
// /calico/v1/policy/profile/<name>, each of which embeds a ProfileKey; it is
// not a Key itself, since the profile's directory holds no value.
type ProfileKey struct {
	Name string
}

// profilePath returns the path of one of the profile's keys.
func (p ProfileKey) profilePath(k Key, leaf string) (string, error) {
	if err := checkName(k, "name", p.Name); err != nil {
		return "", err
	}
	return "/" + prefix + "policy/profile/" + escapeName(p.Name) + "/" + leaf, nil
}

// ProfileRulesKey is /calico/v1/policy/profile/<name>/rules. Its value is a
// *ProfileRules. The name is escaped in the path.
type ProfileRulesKey struct {
	ProfileKey
}

var _ Key = ProfileRulesKey{}

// DefaultPath returns the key's path; it fails when Name is empty.
func (k ProfileRulesKey) DefaultPath() (string, error) { return k.profilePath(k, "rules") }

func (k ProfileRulesKey) String() string { return fmt.Sprintf("ProfileRules(name=%q)", k.Name) }

func (ProfileRulesKey) isKey() {}

// ProfileTagsKey is /calico/v1/policy/profile/<name>/tags. Its value is a
// []string. The name is escaped in the path.
type ProfileTagsKey struct {
	ProfileKey
}

var _ Key = ProfileTagsKey{}

// DefaultPath returns the key's path; it fails when Name is empty.
func (k ProfileTagsKey) DefaultPath() (string, error) { return k.profilePath(k, "tags") }

func (k ProfileTagsKey) String() string { return fmt.Sprintf("ProfileTags(name=%q)", k.Name) }

func (ProfileTagsKey) isKey() {}

// ProfileLabelsKey is /calico/v1/policy/profile/<name>/labels. Its value is a
// map[string]string. The name is escaped in the path.
type ProfileLabelsKey struct {
	ProfileKey
}

var _ Key = ProfileLabelsKey{}

// DefaultPath returns the key's path; it fails when Name is empty.
func (k ProfileLabelsKey) DefaultPath() (string, error) { return k.profilePath(k, "labels") }

func (k ProfileLabelsKey) String() string { return fmt.Sprintf("ProfileLabels(name=%q)", k.Name) }

func (ProfileLabelsKey) isKey() {}

// ProfileRules is the value of a ProfileRulesKey.
type ProfileRules struct {
	InboundRules  []Rule `json:"inbound_rules,omitempty"`
	OutboundRules []Rule `json:"outbound_rules,omitempty"`
}
