package calicov1

import (
	"fmt"
	"net"
)

// WorkloadEndpointKey is
// /calico/v1/host/<hostname>/workload/<orchestrator>/<workload>/endpoint/<endpoint>,
// one interface of a workload (a container or VM). Its value is a
// *WorkloadEndpoint. The three IDs are escaped in the path; the host name is
// not.
type WorkloadEndpointKey struct {
	Hostname       string
	OrchestratorID string // e.g. "k8s", "openstack"
	WorkloadID     string // e.g. "namespace/pod"
	EndpointID     string // e.g. "eth0"
}

var _ Key = WorkloadEndpointKey{}

// DefaultPath returns the key's path; it fails when a field is empty or
// Hostname contains "/".
func (k WorkloadEndpointKey) DefaultPath() (string, error) {
	if err := checkSegment(k, "hostname", k.Hostname); err != nil {
		return "", err
	}
	if err := checkName(k, "orchestrator", k.OrchestratorID); err != nil {
		return "", err
	}
	if err := checkName(k, "workload", k.WorkloadID); err != nil {
		return "", err
	}
	if err := checkName(k, "endpoint", k.EndpointID); err != nil {
		return "", err
	}
	return "/" + prefix + "host/" + k.Hostname +
		"/workload/" + escapeName(k.OrchestratorID) + "/" + escapeName(k.WorkloadID) +
		"/endpoint/" + escapeName(k.EndpointID), nil
}

func (k WorkloadEndpointKey) String() string {
	return fmt.Sprintf("WorkloadEndpoint(hostname=%q, orchestrator=%q, workload=%q, endpoint=%q)",
		k.Hostname, k.OrchestratorID, k.WorkloadID, k.EndpointID)
}

func (WorkloadEndpointKey) isKey() {}

// HostEndpointKey is /calico/v1/host/<hostname>/endpoint/<endpoint>, one
// interface of a host. Its value is a *HostEndpoint. The endpoint ID is
// escaped in the path; the host name is not.
type HostEndpointKey struct {
	Hostname   string
	EndpointID string
}

var _ Key = HostEndpointKey{}

// DefaultPath returns the key's path; it fails when a field is empty or
// Hostname contains "/".
func (k HostEndpointKey) DefaultPath() (string, error) {
	if err := checkSegment(k, "hostname", k.Hostname); err != nil {
		return "", err
	}
	if err := checkName(k, "endpoint", k.EndpointID); err != nil {
		return "", err
	}
	return "/" + prefix + "host/" + k.Hostname + "/endpoint/" + escapeName(k.EndpointID), nil
}

func (k HostEndpointKey) String() string {
	return fmt.Sprintf("HostEndpoint(hostname=%q, endpoint=%q)", k.Hostname, k.EndpointID)
}

func (HostEndpointKey) isKey() {}

// WorkloadEndpoint is the value of a WorkloadEndpointKey.
type WorkloadEndpoint struct {
	State            string            `json:"state"` // "active" or "inactive"
	Name             string            `json:"name"`  // the host-side interface, e.g. "cali1234"
	ActiveInstanceID string            `json:"active_instance_id"`
	Mac              *MAC              `json:"mac"`
	ProfileIDs       []string          `json:"profile_ids"`
	IPv4Nets         []IPNet           `json:"ipv4_nets"`
	IPv6Nets         []IPNet           `json:"ipv6_nets"`
	IPv4NAT          []IPNAT           `json:"ipv4_nat,omitempty"`
	IPv6NAT          []IPNAT           `json:"ipv6_nat,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	IPv4Gateway      net.IP            `json:"ipv4_gateway,omitempty"`
	IPv6Gateway      net.IP            `json:"ipv6_gateway,omitempty"`
	Ports            []EndpointPort    `json:"ports,omitempty"`
}

// HostEndpoint is the value of a HostEndpointKey.
type HostEndpoint struct {
	Name              string            `json:"name,omitempty"` // the interface, e.g. "eth0"
	ExpectedIPv4Addrs []net.IP          `json:"expected_ipv4_addrs,omitempty"`
	ExpectedIPv6Addrs []net.IP          `json:"expected_ipv6_addrs,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	ProfileIDs        []string          `json:"profile_ids,omitempty"`
	Ports             []EndpointPort    `json:"ports,omitempty"`
}

// EndpointPort is a named port of an endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

// IPNAT is one 1:1 NAT mapping of a workload endpoint.
type IPNAT struct {
	IntIP net.IP `json:"int_ip"` // the endpoint's own address
	ExtIP net.IP `json:"ext_ip"` // the address it is reached at
}
