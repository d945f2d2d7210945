package calicov1

import "fmt"

// ReadyFlagKey is /calico/v1/Ready, the flag that says the data model may be
// read. Its value is a bool.
type ReadyFlagKey struct{}

var _ Key = ReadyFlagKey{}

// DefaultPath returns /calico/v1/Ready; it never fails.
func (k ReadyFlagKey) DefaultPath() (string, error) { return readyFlagPath, nil }

func (k ReadyFlagKey) String() string { return "ReadyFlag()" }

func (ReadyFlagKey) isKey() {}

// GlobalConfigKey is /calico/v1/config/<name>, a Felix setting for every
// host. Its value is the raw string. The name is written unescaped and may
// contain "/".
type GlobalConfigKey struct {
	Name string
}

var _ Key = GlobalConfigKey{}

// DefaultPath returns the key's path; it fails when Name is empty.
func (k GlobalConfigKey) DefaultPath() (string, error) {
	if k.Name == "" {
		return "", invalidKey(k, "name", "is empty")
	}
	return "/" + prefix + "config/" + k.Name, nil
}

func (k GlobalConfigKey) String() string {
	return fmt.Sprintf("GlobalConfig(name=%q)", k.Name)
}

func (GlobalConfigKey) isKey() {}

// HostConfigKey is /calico/v1/host/<hostname>/config/<name>, a Felix setting
// for one host. Its value is the raw string. The name is written unescaped
// and may contain "/".
type HostConfigKey struct {
	Hostname string
	Name     string
}

var _ Key = HostConfigKey{}

// DefaultPath returns the key's path; it fails when a field is empty or
// Hostname contains "/".
func (k HostConfigKey) DefaultPath() (string, error) {
	if err := checkSegment(k, "hostname", k.Hostname); err != nil {
		return "", err
	}
	if k.Name == "" {
		return "", invalidKey(k, "name", "is empty")
	}
	return "/" + prefix + "host/" + k.Hostname + "/config/" + k.Name, nil
}

func (k HostConfigKey) String() string {
	return fmt.Sprintf("HostConfig(hostname=%q, name=%q)", k.Hostname, k.Name)
}

func (HostConfigKey) isKey() {}

// HostIPKey is /calico/v1/host/<hostname>/bird_ip, the host's IPv4 address.
// Its value is a net.IP.
type HostIPKey struct {
	Hostname string
}

var _ Key = HostIPKey{}

// DefaultPath returns the key's path; it fails when Hostname is empty or
// contains "/".
func (k HostIPKey) DefaultPath() (string, error) {
	if err := checkSegment(k, "hostname", k.Hostname); err != nil {
		return "", err
	}
	return "/" + prefix + "host/" + k.Hostname + "/bird_ip", nil
}

func (k HostIPKey) String() string { return fmt.Sprintf("HostIP(hostname=%q)", k.Hostname) }

func (HostIPKey) isKey() {}
