package calicov1_test

import (
	"net"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/model/calicov1"
)

func mustIPNet(s string) calicov1.IPNet {
	n, err := calicov1.ParseIPNet(s)
	Expect(err).NotTo(HaveOccurred())
	return n
}

func mustMAC(s string) *calicov1.MAC {
	hw, err := net.ParseMAC(s)
	Expect(err).NotTo(HaveOccurred())
	return &calicov1.MAC{HardwareAddr: hw}
}

func ptr[T any](v T) *T { return &v }

func singlePort(n uint16) calicov1.Port { return calicov1.Port{MinPort: n, MaxPort: n} }

var (
	wepKey    = calicov1.WorkloadEndpointKey{Hostname: "h1", OrchestratorID: "k8s", WorkloadID: "ns/pod", EndpointID: "eth0"}
	hepKey    = calicov1.HostEndpointKey{Hostname: "h1", EndpointID: "eth0"}
	tierKey   = calicov1.TierKey{Name: "gold"}
	policyKey = calicov1.PolicyKey{Tier: "gold", Name: "p1"}
)

// isUntypedNil reports whether v is a nil interface, not a nil pointer in
// one (which gomega's BeNil also accepts).
func isUntypedNil(v any) bool { return v == nil }

var _ = Describe("ParseValue", func() {
	When("the key is the Ready flag", func() {
		DescribeTable("decodes true and false",
			func(raw string, want bool) {
				Expect(calicov1.ParseValue(calicov1.ReadyFlagKey{}, []byte(raw))).To(Equal(want))
			},
			Entry("true", "true", true),
			Entry("false", "false", false),
		)

		DescribeTable("fails on anything else",
			func(raw string) {
				v, err := calicov1.ParseValue(calicov1.ReadyFlagKey{}, []byte(raw))
				Expect(isUntypedNil(v)).To(BeTrue())
				Expect(err).To(MatchError(calicov1.ErrInvalidValue))
				Expect(err.Error()).To(ContainSubstring("ReadyFlag()"))
			},
			Entry("empty", ""),
			Entry("capitalised", "True"),
			Entry("a number", "1"),
			Entry("a JSON string", `"true"`),
			Entry("with a newline", "true\n"),
		)
	})

	When("the key is a config key", func() {
		DescribeTable("returns the raw value unchanged",
			func(raw string) {
				for _, k := range []calicov1.Key{calicov1.GlobalConfigKey{Name: "x"}, calicov1.HostConfigKey{Hostname: "h", Name: "x"}} {
					Expect(calicov1.ParseValue(k, []byte(raw))).To(Equal(raw))
				}
			},
			Entry("a word", "Info"),
			Entry("empty", ""),
			Entry("JSON-looking", `"Info"`),
			Entry("not JSON", "{"),
			Entry("with spaces and newlines", " a b\n"),
		)
	})

	When("the key is a host IP", func() {
		DescribeTable("decodes a bare address, or one in a JSON string",
			func(raw string, want string) {
				v, err := calicov1.ParseValue(calicov1.HostIPKey{Hostname: "h1"}, []byte(raw))
				Expect(err).NotTo(HaveOccurred())
				Expect(v).To(BeAssignableToTypeOf(net.IP{}))
				Expect(v.(net.IP).Equal(net.ParseIP(want))).To(BeTrue(), "%v", v)
			},
			Entry("IPv4", "10.0.0.1", "10.0.0.1"),
			Entry("IPv6", "fd00::1", "fd00::1"),
			Entry("IPv4 as a JSON string", `"10.0.0.1"`, "10.0.0.1"),
		)

		DescribeTable("fails on anything else, naming the key",
			func(raw string) {
				v, err := calicov1.ParseValue(calicov1.HostIPKey{Hostname: "h1"}, []byte(raw))
				Expect(isUntypedNil(v)).To(BeTrue())
				Expect(err).To(MatchError(calicov1.ErrInvalidValue))
				Expect(err.Error()).To(ContainSubstring(`HostIP(hostname="h1")`))
			},
			Entry("empty", ""),
			Entry("a word", "nonsense"),
			Entry("an octet out of range", "10.0.0.256"),
			Entry("a CIDR", "10.0.0.1/32"),
			Entry("with a newline", "10.0.0.1\n"),
			Entry("a JSON string of a word", `"nonsense"`),
			Entry("an unterminated JSON string", `"10.0.0.1`),
			Entry("a JSON number", "10"),
		)
	})

	When("the key is a workload endpoint", func() {
		It("decodes every field", func() {
			raw := `{"state":"active","name":"cali1234","active_instance_id":"i-1",
				"mac":"ee:ee:ee:ee:ee:ee","profile_ids":["prof-a","prof-b"],
				"ipv4_nets":["10.65.0.2/32","10.65.0.3"],"ipv6_nets":["fd00::2/128"],
				"ipv4_nat":[{"int_ip":"10.65.0.2","ext_ip":"172.16.0.2"}],
				"ipv6_nat":[{"int_ip":"fd00::2","ext_ip":"2001:db8::2"}],
				"labels":{"app":"web","calico/k8s_ns":"ns"},
				"ipv4_gateway":"10.65.0.1","ipv6_gateway":"fd00::1",
				"ports":[{"name":"http","protocol":"tcp","port":80},{"name":"dns","protocol":17,"port":53}],
				"unknown_field":"ignored"}`
			Expect(calicov1.ParseValue(wepKey, []byte(raw))).To(Equal(&calicov1.WorkloadEndpoint{
				State:            "active",
				Name:             "cali1234",
				ActiveInstanceID: "i-1",
				Mac:              mustMAC("ee:ee:ee:ee:ee:ee"),
				ProfileIDs:       []string{"prof-a", "prof-b"},
				IPv4Nets:         []calicov1.IPNet{mustIPNet("10.65.0.2/32"), mustIPNet("10.65.0.3/32")},
				IPv6Nets:         []calicov1.IPNet{mustIPNet("fd00::2/128")},
				IPv4NAT:          []calicov1.IPNAT{{IntIP: net.ParseIP("10.65.0.2"), ExtIP: net.ParseIP("172.16.0.2")}},
				IPv6NAT:          []calicov1.IPNAT{{IntIP: net.ParseIP("fd00::2"), ExtIP: net.ParseIP("2001:db8::2")}},
				Labels:           map[string]string{"app": "web", "calico/k8s_ns": "ns"},
				IPv4Gateway:      net.ParseIP("10.65.0.1"),
				IPv6Gateway:      net.ParseIP("fd00::1"),
				Ports: []calicov1.EndpointPort{
					{Name: "http", Protocol: calicov1.Protocol{Name: "tcp"}, Port: 80},
					{Name: "dns", Protocol: calicov1.Protocol{Number: 17}, Port: 53},
				},
			}))
		})

		It("leaves absent fields at their zero values", func() {
			Expect(calicov1.ParseValue(wepKey, []byte(`{"state":"active","mac":null}`))).To(Equal(
				&calicov1.WorkloadEndpoint{State: "active"}))
		})
	})

	When("the key is a host endpoint", func() {
		It("decodes every field", func() {
			raw := `{"name":"eth0","expected_ipv4_addrs":["10.0.0.1","10.0.0.2"],
				"expected_ipv6_addrs":["fd00::1"],"labels":{"host":"h1"},
				"profile_ids":["host"],"ports":[{"name":"ssh","protocol":"tcp","port":22}]}`
			Expect(calicov1.ParseValue(hepKey, []byte(raw))).To(Equal(&calicov1.HostEndpoint{
				Name:              "eth0",
				ExpectedIPv4Addrs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")},
				ExpectedIPv6Addrs: []net.IP{net.ParseIP("fd00::1")},
				Labels:            map[string]string{"host": "h1"},
				ProfileIDs:        []string{"host"},
				Ports:             []calicov1.EndpointPort{{Name: "ssh", Protocol: calicov1.Protocol{Name: "tcp"}, Port: 22}},
			}))
		})
	})

	When("the key is a tier", func() {
		DescribeTable("decodes the order",
			func(raw string, want *calicov1.Tier) {
				Expect(calicov1.ParseValue(tierKey, []byte(raw))).To(Equal(want))
			},
			Entry("set", `{"order":10.5}`, &calicov1.Tier{Order: ptr(10.5)}),
			Entry("unset", `{}`, &calicov1.Tier{}),
		)
	})

	When("the key is a policy", func() {
		It("decodes every field, rules included", func() {
			raw := `{"order":100,"selector":"role == 'db'","untracked":true,"pre_dnat":true,
				"types":["ingress","egress"],"annotations":{"owner":"ops"},
				"inbound_rules":[
					{"action":"allow","ip_version":4,"protocol":"tcp","src_tag":"web",
					 "src_net":"10.0.0.0/16","src_nets":["10.1.0.0/16"],"src_selector":"a == 'b'",
					 "src_ports":[1234,"10:20","http"],"dst_tag":"db","dst_selector":"c == 'd'",
					 "dst_net":"10.2.0.1/16","dst_nets":["10.3.0.0/16"],"dst_ports":["5432"]},
					{"action":"deny","protocol":1,"icmp_type":8,"icmp_code":0,"!icmp_type":3,"!icmp_code":4}
				],
				"outbound_rules":[
					{"action":"log","log_prefix":"calico","!protocol":"udp",
					 "!src_tag":"t","!src_net":"192.168.0.0/24","!src_nets":["192.168.1.0/24"],
					 "!src_selector":"x == 'y'","!src_ports":[53],
					 "!dst_tag":"u","!dst_net":"fd00::/64","!dst_nets":["fd01::/64"],
					 "!dst_selector":"z == 'w'","!dst_ports":["100:200"]},
					{"action":"next-tier"}
				]}`
			net16 := mustIPNet("10.0.0.0/16")
			dstNet := mustIPNet("10.2.0.1/16")
			notSrcNet := mustIPNet("192.168.0.0/24")
			notDstNet := mustIPNet("fd00::/64")
			Expect(calicov1.ParseValue(policyKey, []byte(raw))).To(Equal(&calicov1.Policy{
				Order:       ptr(100.0),
				Selector:    "role == 'db'",
				DoNotTrack:  true,
				PreDNAT:     true,
				Types:       []string{"ingress", "egress"},
				Annotations: map[string]string{"owner": "ops"},
				InboundRules: []calicov1.Rule{
					{
						Action: "allow", IPVersion: ptr(4), Protocol: &calicov1.Protocol{Name: "tcp"},
						SrcTag: "web", SrcNet: &net16, SrcNets: []calicov1.IPNet{mustIPNet("10.1.0.0/16")},
						SrcSelector: "a == 'b'",
						SrcPorts:    []calicov1.Port{singlePort(1234), {MinPort: 10, MaxPort: 20}, {PortName: "http"}},
						DstTag:      "db", DstSelector: "c == 'd'",
						DstNet: &dstNet, DstNets: []calicov1.IPNet{mustIPNet("10.3.0.0/16")},
						DstPorts: []calicov1.Port{singlePort(5432)},
					},
					{
						Action: "deny", Protocol: &calicov1.Protocol{Number: 1},
						ICMPType: ptr(8), ICMPCode: ptr(0), NotICMPType: ptr(3), NotICMPCode: ptr(4),
					},
				},
				OutboundRules: []calicov1.Rule{
					{
						Action: "log", LogPrefix: "calico", NotProtocol: &calicov1.Protocol{Name: "udp"},
						NotSrcTag: "t", NotSrcNet: &notSrcNet, NotSrcNets: []calicov1.IPNet{mustIPNet("192.168.1.0/24")},
						NotSrcSelector: "x == 'y'", NotSrcPorts: []calicov1.Port{singlePort(53)},
						NotDstTag: "u", NotDstNet: &notDstNet, NotDstNets: []calicov1.IPNet{mustIPNet("fd01::/64")},
						NotDstSelector: "z == 'w'", NotDstPorts: []calicov1.Port{{MinPort: 100, MaxPort: 200}},
					},
					{Action: "next-tier"},
				},
			}))
		})

		It("keeps a net's address unmasked, as the original does", func() {
			v, err := calicov1.ParseValue(policyKey, []byte(`{"inbound_rules":[{"dst_net":"10.2.0.1/16"}]}`))
			Expect(err).NotTo(HaveOccurred())
			Expect(v.(*calicov1.Policy).InboundRules[0].DstNet.String()).To(Equal("10.2.0.1/16"))
		})
	})

	When("the key is a profile's", func() {
		It("decodes rules", func() {
			raw := `{"inbound_rules":[{"action":"allow","src_tag":"prof"}],"outbound_rules":[{"action":"allow"}]}`
			Expect(calicov1.ParseValue(rulesKey("prof"), []byte(raw))).To(Equal(&calicov1.ProfileRules{
				InboundRules:  []calicov1.Rule{{Action: "allow", SrcTag: "prof"}},
				OutboundRules: []calicov1.Rule{{Action: "allow"}},
			}))
		})

		It("decodes tags as a slice", func() {
			Expect(calicov1.ParseValue(tagsKey("prof"), []byte(`["a","b"]`))).To(Equal([]string{"a", "b"}))
		})

		It("decodes labels as a map", func() {
			Expect(calicov1.ParseValue(labelsKey("prof"), []byte(`{"app":"web","tier":"backend"}`))).To(Equal(
				map[string]string{"app": "web", "tier": "backend"}))
		})
	})

	When("the key is an IP pool", func() {
		It("decodes every field", func() {
			raw := `{"cidr":"10.0.0.0/24","ipip":"tunl0","ipip_mode":"cross-subnet","masquerade":true,"ipam":true,"disabled":true}`
			Expect(calicov1.ParseValue(poolKey("10.0.0.0/24"), []byte(raw))).To(Equal(&calicov1.IPPool{
				CIDR:          mustIPNet("10.0.0.0/24"),
				IPIPInterface: "tunl0",
				IPIPMode:      calicov1.IPIPModeCrossSubnet,
				Masquerade:    true,
				IPAM:          true,
				Disabled:      true,
			}))
		})
	})

	DescribeTable("fails on a value that does not decode, naming the key, never panicking",
		func(k calicov1.Key, raw string) {
			var v any
			var err error
			Expect(func() { v, err = calicov1.ParseValue(k, []byte(raw)) }).NotTo(Panic())
			Expect(isUntypedNil(v)).To(BeTrue(), "%#v", v)
			Expect(err).To(MatchError(calicov1.ErrInvalidValue))
			Expect(err.Error()).To(ContainSubstring(k.String()))
		},
		Entry("workload: empty", wepKey, ""),
		Entry("workload: truncated", wepKey, `{"state":"active"`),
		Entry("workload: not JSON", wepKey, "state=active"),
		Entry("workload: an array", wepKey, `[]`),
		Entry("workload: trailing garbage", wepKey, `{} x`),
		Entry("workload: state of the wrong type", wepKey, `{"state":5}`),
		Entry("workload: bad MAC", wepKey, `{"mac":"zz:zz"}`),
		Entry("workload: MAC of the wrong type", wepKey, `{"mac":5}`),
		Entry("workload: bad net", wepKey, `{"ipv4_nets":["10.0.0.0/33"]}`),
		Entry("workload: net of the wrong type", wepKey, `{"ipv4_nets":[10]}`),
		Entry("workload: bad NAT address", wepKey, `{"ipv4_nat":[{"int_ip":"x"}]}`),
		Entry("workload: port out of range", wepKey, `{"ports":[{"name":"p","protocol":"tcp","port":70000}]}`),
		Entry("workload: empty protocol", wepKey, `{"ports":[{"name":"p","protocol":"","port":80}]}`),
		Entry("host endpoint: not JSON", hepKey, "{"),
		Entry("host endpoint: bad address", hepKey, `{"expected_ipv4_addrs":["10.0.0.256"]}`),
		Entry("tier: order of the wrong type", tierKey, `{"order":"first"}`),
		Entry("tier: not JSON", tierKey, "10"),
		Entry("policy: not JSON", policyKey, "{{"),
		Entry("policy: protocol out of range", policyKey, `{"inbound_rules":[{"protocol":300}]}`),
		Entry("policy: negative protocol", policyKey, `{"inbound_rules":[{"protocol":-1}]}`),
		Entry("policy: reversed port range", policyKey, `{"inbound_rules":[{"src_ports":["20:10"]}]}`),
		Entry("policy: port number out of range", policyKey, `{"inbound_rules":[{"dst_ports":[65536]}]}`),
		Entry("policy: port string out of range", policyKey, `{"inbound_rules":[{"dst_ports":["65536"]}]}`),
		Entry("policy: bad port name", policyKey, `{"inbound_rules":[{"dst_ports":["no spaces"]}]}`),
		Entry("policy: port of the wrong type", policyKey, `{"inbound_rules":[{"dst_ports":[true]}]}`),
		Entry("policy: bad net", policyKey, `{"outbound_rules":[{"!dst_net":"nonsense"}]}`),
		Entry("policy: rules of the wrong type", policyKey, `{"inbound_rules":{}}`),
		Entry("profile rules: not JSON", rulesKey("p"), "allow"),
		Entry("profile tags: an object", tagsKey("p"), `{"a":1}`),
		Entry("profile tags: numbers", tagsKey("p"), `[1,2]`),
		Entry("profile tags: not JSON", tagsKey("p"), `a,b`),
		Entry("profile labels: an array", labelsKey("p"), `["a"]`),
		Entry("profile labels: a number value", labelsKey("p"), `{"a":1}`),
		Entry("pool: bad CIDR", poolKey("10.0.0.0/8"), `{"cidr":"x"}`),
		Entry("pool: flag of the wrong type", poolKey("10.0.0.0/8"), `{"masquerade":"yes"}`),
	)

	It("fails with ErrUnknownKey on a nil key", func() {
		v, err := calicov1.ParseValue(nil, []byte("true"))
		Expect(isUntypedNil(v)).To(BeTrue())
		Expect(err).To(MatchError(calicov1.ErrUnknownKey))
	})

	It("decodes a JSON null as the zero value, as encoding/json does", func() {
		Expect(calicov1.ParseValue(policyKey, []byte("null"))).To(Equal(&calicov1.Policy{}))
		Expect(calicov1.ParseValue(tagsKey("p"), []byte("null"))).To(BeNil())
	})
})
