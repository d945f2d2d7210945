package calico

import (
	"fmt"
	"math/rand/v2"
)

// Prefix is the key prefix every generated key lives under.
const Prefix = "/calico/v1"

// KV is one generated key and its value.
type KV struct {
	Key, Value string
}

// Shape fixes how many keys of each kind a set of n keys holds.
type Shape struct {
	Hosts, WorkloadsPerHost, Policies, Profiles, Config int
}

// ShapeFor returns the shape of an n-key set: about one host per 100 keys,
// one policy per 20, one profile (three keys) per 60, 20 global config keys,
// and workload endpoints for the rest. Each host also has a bird_ip, a config
// key and a host endpoint.
func ShapeFor(n int) Shape {
	s := Shape{Hosts: max(1, n/100), Policies: n / 20, Profiles: n / 60, Config: min(20, n)}
	rest := n - s.Config - s.Policies - 3*s.Profiles - 3*s.Hosts
	s.WorkloadsPerHost = max(0, rest) / s.Hosts
	return s
}

// HostDir returns the directory holding everything of host i.
func HostDir(i int) string {
	return fmt.Sprintf("%s/host/host-%05d", Prefix, i)
}

// KVs returns exactly n distinct key/value pairs in a fixed pseudo-random
// order (etcd returns a directory's children in no particular order either).
func KVs(n int) []KV {
	s := ShapeFor(n)
	kvs := make([]KV, 0, n)
	add := func(k, v string) {
		if len(kvs) < n {
			kvs = append(kvs, KV{k, v})
		}
	}
	for i := range s.Config {
		add(fmt.Sprintf("%s/config/Setting%02d", Prefix, i), "value")
	}
	for i := range s.Policies {
		add(fmt.Sprintf("%s/policy/tier/default/policy/policy-%06d", Prefix, i), policyValue(i))
	}
	for i := range s.Profiles {
		p := fmt.Sprintf("%s/policy/profile/profile-%05d", Prefix, i)
		add(p+"/rules", `{"inbound_rules":[{"action":"allow","src_tag":"`+fmt.Sprint(i)+`"}],"outbound_rules":[{"action":"allow"}]}`)
		add(p+"/tags", fmt.Sprintf(`["profile-%05d"]`, i))
		add(p+"/labels", fmt.Sprintf(`{"app":"app-%d","tier":"backend"}`, i%50))
	}
	for h := range s.Hosts {
		dir := HostDir(h)
		add(dir+"/bird_ip", fmt.Sprintf(`"10.%d.%d.1"`, h/250%250, h%250))
		add(dir+"/config/LogSeverityScreen", `"Info"`)
		add(dir+"/endpoint/eth0", hostEndpointValue(h))
		for w := range s.WorkloadsPerHost {
			add(fmt.Sprintf("%s/workload/k8s/ns-%d%%2fpod-%05d-%04d/endpoint/eth0", dir, w%7, h, w), workloadValue(h, w))
		}
	}
	// Top up with workloads on extra hosts when rounding left room.
	for w := 0; len(kvs) < n; w++ {
		add(fmt.Sprintf("%s/workload/k8s/ns-x%%2fpod-%07d/endpoint/eth0", HostDir(s.Hosts), w), workloadValue(s.Hosts, w))
	}
	r := rand.New(rand.NewPCG(uint64(n), 0x5eed))
	r.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
	return kvs
}

// Keys returns the keys of KVs(n).
func Keys(n int) []string {
	kvs := KVs(n)
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	return keys
}

func workloadValue(h, w int) string {
	return fmt.Sprintf(`{"state":"active","name":"cali%07x%04x","mac":"ee:ee:ee:ee:ee:ee",`+
		`"profile_ids":["ns-%d"],"ipv4_nets":["10.%d.%d.%d/32"],"ipv6_nets":[],`+
		`"labels":{"app":"app-%d","pod-template-hash":"%08x","namespace":"ns-%d"}}`,
		h, w, w%7, 64+h/256%64, h%256, w%256, w%50, h*7919+w, w%7)
}

func hostEndpointValue(h int) string {
	return fmt.Sprintf(`{"name":"eth0","expected_ipv4_addrs":["10.%d.%d.1"],"profile_ids":["host"],"labels":{"host":"host-%05d"}}`,
		h/250%250, h%250, h)
}

func policyValue(i int) string {
	return fmt.Sprintf(`{"order":%d,"selector":"app == 'app-%d'","inbound_rules":[{"action":"allow","protocol":"tcp",`+
		`"src_selector":"app == 'app-%d'","dst_ports":[%d]}],"outbound_rules":[{"action":"allow"}]}`,
		i, i%50, (i+1)%50, 1000+i%1000)
}
