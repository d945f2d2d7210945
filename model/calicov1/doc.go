// Package calicov1 decodes Calico's v1 data model: the etcd v2 keys under
// /calico/v1 and their values, as libcalico-go's lib/backend/model read and
// wrote them in 2017. KeyFromDefaultPath turns a path into a typed key,
// ParseValue turns a raw value into a typed value, and Decoder wraps the two
// as a messages.Decoder for supervisor.Config.Decoder.
//
// # Usage
//
//	cfg.Decoder = calicov1.Decoder{} // every Update then carries typed keys and values
//
//	k := calicov1.KeyFromDefaultPath("/calico/v1/host/h1/endpoint/eth0")
//	// k == calicov1.HostEndpointKey{Hostname: "h1", EndpointID: "eth0"}
//	v, err := calicov1.ParseValue(k, raw) // v is a *calicov1.HostEndpoint
//
// # Keys
//
// The paths KeyFromDefaultPath accepts, and the key type each gives:
//
//	/calico/v1/Ready                                      ReadyFlagKey
//	/calico/v1/config/<name>                              GlobalConfigKey
//	/calico/v1/host/<host>/config/<name>                  HostConfigKey
//	/calico/v1/host/<host>/bird_ip                        HostIPKey
//	/calico/v1/host/<host>/endpoint/<endpoint>            HostEndpointKey
//	/calico/v1/host/<host>/workload/<orchestrator>/<workload>/endpoint/<endpoint>
//	                                                      WorkloadEndpointKey
//	/calico/v1/policy/tier/<tier>/metadata                TierKey
//	/calico/v1/policy/tier/<tier>/policy/<policy>         PolicyKey
//	/calico/v1/policy/profile/<profile>/rules             ProfileRulesKey
//	/calico/v1/policy/profile/<profile>/tags              ProfileTagsKey
//	/calico/v1/policy/profile/<profile>/labels            ProfileLabelsKey
//	/calico/v1/ipam/v4/pool/<address>-<bits>              IPPoolKey
//	/calico/v1/ipam/v6/pool/<address>-<bits>              IPPoolKey
//
// Every other path, including these forms with an empty segment or an extra
// one, gives nil. The leading "/" is optional except on the Ready flag, as in
// the original.
//
// Orchestrator, workload, endpoint, tier, policy and profile names are escaped
// in their path segment: "%" is written "%25" and "/" is written "%2f", and
// KeyFromDefaultPath undoes both ("foo%2fbar" is the name "foo/bar"). Host
// names are written as they are and so may not contain "/". Config names are
// written as they are and take the rest of the path, slashes included. An IP
// pool's CIDR is written with its "/" replaced by "-" ("10.0.0.0-24") under
// v4 or v6 according to its family.
//
// Each key's DefaultPath writes the path back, so a key round-trips: for any
// k that KeyFromDefaultPath returns, KeyFromDefaultPath(p) == k where p is
// k.DefaultPath(). Keys are comparable structs: compare them with == and use
// them as map keys.
//
// # Values
//
// ParseValue decodes a value according to its key:
//
//	ReadyFlagKey                     bool, from exactly "true" or "false"
//	GlobalConfigKey, HostConfigKey   string, the raw value unchanged
//	HostIPKey                        net.IP, from a bare address ("10.0.0.1")
//	WorkloadEndpointKey              *WorkloadEndpoint, from JSON
//	HostEndpointKey                  *HostEndpoint, from JSON
//	TierKey                          *Tier, from JSON
//	PolicyKey                        *Policy, from JSON
//	ProfileRulesKey                  *ProfileRules, from JSON
//	ProfileTagsKey                   []string, from JSON
//	ProfileLabelsKey                 map[string]string, from JSON
//	IPPoolKey                        *IPPool, from JSON
//
// A value that does not decode gives a nil value and an error wrapping
// ErrInvalidValue and naming the key. JSON decoding follows encoding/json:
// unknown fields are ignored and a JSON null gives the zero value.
//
// # What it does not do
//
// The package only parses. It does no I/O, knows nothing of etcd clients,
// watches or the syncer, does not log, and checks nothing beyond what parsing
// needs: selectors, tags, actions and names are passed through unchecked. It
// holds no state, so every function and the Decoder are safe for concurrent
// use, and no input, however malformed, makes it panic.
package calicov1
