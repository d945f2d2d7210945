package calicov1_test

import (
	"errors"
	"net/netip"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/model/calicov1"
)

func rulesKey(name string) calicov1.ProfileRulesKey {
	return calicov1.ProfileRulesKey{ProfileKey: calicov1.ProfileKey{Name: name}}
}

func tagsKey(name string) calicov1.ProfileTagsKey {
	return calicov1.ProfileTagsKey{ProfileKey: calicov1.ProfileKey{Name: name}}
}

func labelsKey(name string) calicov1.ProfileLabelsKey {
	return calicov1.ProfileLabelsKey{ProfileKey: calicov1.ProfileKey{Name: name}}
}

func poolKey(cidr string) calicov1.IPPoolKey {
	return calicov1.IPPoolKey{CIDR: netip.MustParsePrefix(cidr)}
}

// oneOfEachKind holds a key of every kind, for the specs that must cover
// them all.
var oneOfEachKind = []calicov1.Key{
	calicov1.ReadyFlagKey{},
	calicov1.GlobalConfigKey{Name: "LogSeverityScreen"},
	calicov1.HostConfigKey{Hostname: "h1", Name: "LogSeverityScreen"},
	calicov1.HostIPKey{Hostname: "h1"},
	calicov1.WorkloadEndpointKey{Hostname: "h1", OrchestratorID: "k8s", WorkloadID: "ns/pod", EndpointID: "eth0"},
	calicov1.HostEndpointKey{Hostname: "h1", EndpointID: "eth0"},
	calicov1.TierKey{Name: "default"},
	calicov1.PolicyKey{Tier: "default", Name: "allow-dns"},
	rulesKey("prof"),
	tagsKey("prof"),
	labelsKey("prof"),
	poolKey("10.0.0.0/24"),
	poolKey("fd00::/64"),
}

func roundTripEntries() []TableEntry {
	entries := make([]TableEntry, len(oneOfEachKind))
	for i, k := range oneOfEachKind {
		entries[i] = Entry(k.String(), k)
	}
	return entries
}

var _ = Describe("KeyFromDefaultPath", func() {
	DescribeTable("parses a path written as DefaultPath writes it, and DefaultPath writes it back",
		func(path string, want calicov1.Key) {
			got := calicov1.KeyFromDefaultPath(path)
			Expect(got).To(Equal(want))
			back, err := want.DefaultPath()
			Expect(err).NotTo(HaveOccurred())
			Expect(back).To(Equal(path))
		},
		// The entries of the original's keys_test.go, the policy key now
		// carrying its tier.
		Entry("profile rules with a /", "/calico/v1/policy/profile/foo%2fbar/rules", rulesKey("foo/bar")),
		Entry("profile tags with a /", "/calico/v1/policy/profile/foo%2fbar/tags", tagsKey("foo/bar")),
		Entry("profile labels with a /", "/calico/v1/policy/profile/foo%2fbar/labels", labelsKey("foo/bar")),
		Entry("policy with a /", "/calico/v1/policy/tier/default/policy/biff%2fbop",
			calicov1.PolicyKey{Tier: "default", Name: "biff/bop"}),
		Entry("workload with a /", "/calico/v1/host/foobar/workload/open%2fstack/work%2fload/endpoint/end%2fpoint",
			calicov1.WorkloadEndpointKey{Hostname: "foobar", OrchestratorID: "open/stack", WorkloadID: "work/load", EndpointID: "end/point"}),
		Entry("host endpoint with a /", "/calico/v1/host/foobar/endpoint/end%2fpoint",
			calicov1.HostEndpointKey{Hostname: "foobar", EndpointID: "end/point"}),
		Entry("host IP", "/calico/v1/host/foobar/bird_ip", calicov1.HostIPKey{Hostname: "foobar"}),
		Entry("IP pool", "/calico/v1/ipam/v4/pool/10.0.0.0-8", poolKey("10.0.0.0/8")),
		Entry("global felix config", "/calico/v1/config/foo", calicov1.GlobalConfigKey{Name: "foo"}),
		Entry("host config", "/calico/v1/host/hostname/config/foo", calicov1.HostConfigKey{Hostname: "hostname", Name: "foo"}),
		Entry("ready flag", "/calico/v1/Ready", calicov1.ReadyFlagKey{}),

		// Further forms.
		Entry("tier", "/calico/v1/policy/tier/gold/metadata", calicov1.TierKey{Name: "gold"}),
		Entry("tier with a /", "/calico/v1/policy/tier/go%2fld/metadata", calicov1.TierKey{Name: "go/ld"}),
		Entry("policy in a named tier", "/calico/v1/policy/tier/gold/policy/p1", calicov1.PolicyKey{Tier: "gold", Name: "p1"}),
		Entry("policy in a tier with a /", "/calico/v1/policy/tier/go%2fld/policy/p1", calicov1.PolicyKey{Tier: "go/ld", Name: "p1"}),
		Entry("workload", "/calico/v1/host/h1/workload/k8s/ns%2fpod-1/endpoint/eth0",
			calicov1.WorkloadEndpointKey{Hostname: "h1", OrchestratorID: "k8s", WorkloadID: "ns/pod-1", EndpointID: "eth0"}),
		Entry("IPv6 pool", "/calico/v1/ipam/v6/pool/fd00::-64", poolKey("fd00::/64")),
		Entry("IPv6 pool of everything", "/calico/v1/ipam/v6/pool/::-0", poolKey("::/0")),
		Entry("IPv4-mapped IPv6 pool", "/calico/v1/ipam/v6/pool/::ffff:10.0.0.0-104", poolKey("::ffff:10.0.0.0/104")),
		Entry("global config name with slashes", "/calico/v1/config/a/b/c", calicov1.GlobalConfigKey{Name: "a/b/c"}),
		Entry("host config name with slashes", "/calico/v1/host/h1/config/a/b", calicov1.HostConfigKey{Hostname: "h1", Name: "a/b"}),
		Entry("host named config", "/calico/v1/host/config/endpoint/eth0", calicov1.HostEndpointKey{Hostname: "config", EndpointID: "eth0"}),
		Entry("host named bird_ip", "/calico/v1/host/bird_ip/bird_ip", calicov1.HostIPKey{Hostname: "bird_ip"}),

		// Escaping.
		Entry("%25 is a %", "/calico/v1/policy/profile/100%25/tags", tagsKey("100%")),
		Entry("%252f is a literal %2f", "/calico/v1/policy/profile/a%252fb/tags", tagsKey("a%2fb")),
		Entry("%25 then %2f", "/calico/v1/host/h1/endpoint/%25%2f", calicov1.HostEndpointKey{Hostname: "h1", EndpointID: "%/"}),
		Entry("host names are not unescaped", "/calico/v1/host/foo%2fbar/bird_ip", calicov1.HostIPKey{Hostname: "foo%2fbar"}),
		Entry("config names are not unescaped", "/calico/v1/config/a%2fb", calicov1.GlobalConfigKey{Name: "a%2fb"}),
	)

	DescribeTable("parses a path DefaultPath writes differently",
		func(path string, want calicov1.Key, canonical string) {
			got := calicov1.KeyFromDefaultPath(path)
			Expect(got).To(Equal(want))
			Expect(got.DefaultPath()).To(Equal(canonical))
		},
		Entry("config without the leading /", "calico/v1/config/foo", calicov1.GlobalConfigKey{Name: "foo"}, "/calico/v1/config/foo"),
		Entry("workload without the leading /", "calico/v1/host/h/workload/o/w/endpoint/e",
			calicov1.WorkloadEndpointKey{Hostname: "h", OrchestratorID: "o", WorkloadID: "w", EndpointID: "e"},
			"/calico/v1/host/h/workload/o/w/endpoint/e"),
		Entry("pool with host bits set", "/calico/v1/ipam/v4/pool/10.0.0.1-8", poolKey("10.0.0.0/8"), "/calico/v1/ipam/v4/pool/10.0.0.0-8"),
		Entry("unescaped % in a name", "/calico/v1/policy/profile/a%zz/rules", rulesKey("a%zz"), "/calico/v1/policy/profile/a%25zz/rules"),
		Entry("upper-case %2F", "/calico/v1/policy/profile/a%2Fb/rules", rulesKey("a%2Fb"), "/calico/v1/policy/profile/a%252Fb/rules"),
	)

	DescribeTable("returns nil for a path that is not a v1 key",
		func(path string) {
			Expect(calicov1.KeyFromDefaultPath(path)).To(BeNil())
		},
		Entry("empty", ""),
		Entry("root", "/"),
		Entry("calico", "/calico"),
		Entry("v1 without a slash", "/calico/v1"),
		Entry("v1 directory", "/calico/v1/"),
		Entry("other version", "/calico/v2/config/foo"),
		Entry("two leading slashes", "//calico/v1/config/foo"),
		Entry("unknown kind", "/calico/v1/foo/bar"),
		Entry("BGP data", "/calico/bgp/v1/global/as_num"),
		Entry("Felix status", "/calico/felix/v1/host/h1/status"),
		Entry("IPAM block", "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26"),

		Entry("ready flag without the leading /", "calico/v1/Ready"),
		Entry("ready flag with a trailing /", "/calico/v1/Ready/"),
		Entry("ready flag in lower case", "/calico/v1/ready"),

		Entry("config directory", "/calico/v1/config"),
		Entry("config without a name", "/calico/v1/config/"),

		Entry("host directory", "/calico/v1/host"),
		Entry("host without a name", "/calico/v1/host/"),
		Entry("host alone", "/calico/v1/host/h1"),
		Entry("host directory with a slash", "/calico/v1/host/h1/"),
		Entry("host metadata (not in the 2017 model)", "/calico/v1/host/h1/metadata"),
		Entry("bird_ip with an empty host", "/calico/v1/host//bird_ip"),
		Entry("bird_ip with a trailing /", "/calico/v1/host/h1/bird_ip/"),
		Entry("bird_ip with a child", "/calico/v1/host/h1/bird_ip/x"),
		Entry("host config directory", "/calico/v1/host/h1/config"),
		Entry("host config without a name", "/calico/v1/host/h1/config/"),
		Entry("host config with an empty host", "/calico/v1/host//config/foo"),
		Entry("host endpoint directory", "/calico/v1/host/h1/endpoint"),
		Entry("host endpoint without a name", "/calico/v1/host/h1/endpoint/"),
		Entry("host endpoint with a child", "/calico/v1/host/h1/endpoint/eth0/x"),
		Entry("host endpoint with an empty host", "/calico/v1/host//endpoint/eth0"),
		Entry("workload directory", "/calico/v1/host/h1/workload/k8s/w"),
		Entry("workload endpoint directory", "/calico/v1/host/h1/workload/k8s/w/endpoint"),
		Entry("workload endpoint without a name", "/calico/v1/host/h1/workload/k8s/w/endpoint/"),
		Entry("workload endpoint with a child", "/calico/v1/host/h1/workload/k8s/w/endpoint/eth0/x"),
		Entry("workload without an orchestrator", "/calico/v1/host/h1/workload//w/endpoint/eth0"),
		Entry("workload without a workload", "/calico/v1/host/h1/workload/k8s//endpoint/eth0"),
		Entry("workload without the endpoint directory", "/calico/v1/host/h1/workload/k8s/w/eth0"),
		Entry("workload with an unescaped / in its name", "/calico/v1/host/h1/workload/k8s/ns/pod/endpoint/eth0"),

		Entry("policy directory", "/calico/v1/policy"),
		Entry("tier directory", "/calico/v1/policy/tier"),
		Entry("tier alone", "/calico/v1/policy/tier/default"),
		Entry("tier without a name", "/calico/v1/policy/tier//metadata"),
		Entry("tier metadata with a child", "/calico/v1/policy/tier/default/metadata/x"),
		Entry("policies directory", "/calico/v1/policy/tier/default/policy"),
		Entry("policy without a name", "/calico/v1/policy/tier/default/policy/"),
		Entry("policy without a tier", "/calico/v1/policy/tier//policy/p1"),
		Entry("policy with a child", "/calico/v1/policy/tier/default/policy/p1/x"),
		Entry("policy outside a tier", "/calico/v1/policy/policy/p1"),

		Entry("profile directory", "/calico/v1/policy/profile"),
		Entry("profile alone", "/calico/v1/policy/profile/foo"),
		Entry("profile without a name", "/calico/v1/policy/profile//rules"),
		Entry("profile with an unknown part", "/calico/v1/policy/profile/foo/bar"),
		Entry("profile part with a child", "/calico/v1/policy/profile/foo/rules/x"),
		Entry("profile with an unescaped / in its name", "/calico/v1/policy/profile/foo/bar/rules"),

		Entry("pool directory", "/calico/v1/ipam/v4/pool"),
		Entry("pool without a CIDR", "/calico/v1/ipam/v4/pool/"),
		Entry("pool without a length", "/calico/v1/ipam/v4/pool/10.0.0.0"),
		Entry("pool with an unescaped /", "/calico/v1/ipam/v4/pool/10.0.0.0/8"),
		Entry("pool with a length out of range", "/calico/v1/ipam/v4/pool/10.0.0.0-33"),
		Entry("pool that is not a CIDR (the original panicked)", "/calico/v1/ipam/v4/pool/nonsense"),
		Entry("pool with two dashes", "/calico/v1/ipam/v4/pool/10.0.0.0-8-8"),
		Entry("IPv4 pool under v6", "/calico/v1/ipam/v6/pool/10.0.0.0-8"),
		Entry("IPv6 pool under v4", "/calico/v1/ipam/v4/pool/fd00::-64"),
		Entry("pool under v5", "/calico/v1/ipam/v5/pool/10.0.0.0-8"),
		Entry("pool with a zone", "/calico/v1/ipam/v6/pool/fe80::%eth0-64"),
		Entry("pool with a child", "/calico/v1/ipam/v4/pool/10.0.0.0-8/x"),
		Entry("IPAM other than pools", "/calico/v1/ipam/v4/block/10.0.0.0-26"),
	)
})

var _ = Describe("DefaultPath", func() {
	DescribeTable("round-trips every kind of key through KeyFromDefaultPath",
		func(k calicov1.Key) {
			path, err := k.DefaultPath()
			Expect(err).NotTo(HaveOccurred())
			Expect(calicov1.KeyFromDefaultPath(path)).To(Equal(k), "via %s", path)
		},
		roundTripEntries(),
	)

	DescribeTable("escapes names so that they round-trip",
		func(name string, wantSegment string) {
			keys := []calicov1.Key{
				calicov1.WorkloadEndpointKey{Hostname: "h", OrchestratorID: name, WorkloadID: name, EndpointID: name},
				calicov1.HostEndpointKey{Hostname: "h", EndpointID: name},
				calicov1.TierKey{Name: name},
				calicov1.PolicyKey{Tier: name, Name: name},
				rulesKey(name), tagsKey(name), labelsKey(name),
			}
			for _, k := range keys {
				path, err := k.DefaultPath()
				Expect(err).NotTo(HaveOccurred())
				Expect(path).To(ContainSubstring("/"+wantSegment), "%v", k)
				Expect(calicov1.KeyFromDefaultPath(path)).To(Equal(k), "%v via %s", k, path)
			}
		},
		Entry("plain", "abc", "abc"),
		Entry("a /", "ns/pod", "ns%2fpod"),
		Entry("only a /", "/", "%2f"),
		Entry("a %", "100%", "100%25"),
		Entry("an escaped-looking name", "a%2fb", "a%252fb"),
		Entry("an escaped % looking name", "a%25b", "a%2525b"),
		Entry("% and /", "%/%/", "%25%2f%25%2f"),
		Entry("upper-case %2F", "a%2Fb", "a%252Fb"),
	)

	DescribeTable("fails, naming the key, when the path cannot be written",
		func(k calicov1.Key, field string) {
			path, err := k.DefaultPath()
			Expect(path).To(BeEmpty())
			Expect(err).To(MatchError(calicov1.ErrInvalidKey))
			Expect(err.Error()).To(ContainSubstring(k.String()))
			Expect(err.Error()).To(ContainSubstring(field))
		},
		Entry("global config without a name", calicov1.GlobalConfigKey{}, "name"),
		Entry("host config without a host", calicov1.HostConfigKey{Name: "x"}, "hostname"),
		Entry("host config with a / in the host", calicov1.HostConfigKey{Hostname: "a/b", Name: "x"}, "hostname"),
		Entry("host config without a name", calicov1.HostConfigKey{Hostname: "h"}, "name"),
		Entry("host IP without a host", calicov1.HostIPKey{}, "hostname"),
		Entry("host IP with a / in the host", calicov1.HostIPKey{Hostname: "a/b"}, "hostname"),
		Entry("workload without a host", calicov1.WorkloadEndpointKey{OrchestratorID: "o", WorkloadID: "w", EndpointID: "e"}, "hostname"),
		Entry("workload with a / in the host", calicov1.WorkloadEndpointKey{Hostname: "a/b", OrchestratorID: "o", WorkloadID: "w", EndpointID: "e"}, "hostname"),
		Entry("workload without an orchestrator", calicov1.WorkloadEndpointKey{Hostname: "h", WorkloadID: "w", EndpointID: "e"}, "orchestrator"),
		Entry("workload without a workload", calicov1.WorkloadEndpointKey{Hostname: "h", OrchestratorID: "o", EndpointID: "e"}, "workload"),
		Entry("workload without an endpoint", calicov1.WorkloadEndpointKey{Hostname: "h", OrchestratorID: "o", WorkloadID: "w"}, "endpoint"),
		Entry("host endpoint without a host", calicov1.HostEndpointKey{EndpointID: "e"}, "hostname"),
		Entry("host endpoint without an endpoint", calicov1.HostEndpointKey{Hostname: "h"}, "endpoint"),
		Entry("tier without a name", calicov1.TierKey{}, "name"),
		Entry("policy without a tier", calicov1.PolicyKey{Name: "p"}, "tier"),
		Entry("policy without a name", calicov1.PolicyKey{Tier: "t"}, "name"),
		Entry("profile rules without a name", rulesKey(""), "name"),
		Entry("profile tags without a name", tagsKey(""), "name"),
		Entry("profile labels without a name", labelsKey(""), "name"),
		Entry("pool without a CIDR", calicov1.IPPoolKey{}, "cidr"),
		Entry("pool with host bits set", poolKey("10.0.0.1/8"), "10.0.0.0/8"),
	)
})

var _ = Describe("Key", func() {
	It("prints every kind of key distinctly", func() {
		seen := map[string]calicov1.Key{}
		for _, k := range oneOfEachKind {
			s := k.String()
			Expect(seen).NotTo(HaveKey(s), "%v and %v print alike", seen[s], k)
			seen[s] = k
		}
	})

	It("prints keys whose fields differ distinctly", func() {
		a := calicov1.HostConfigKey{Hostname: "a", Name: `b", name="c`}
		b := calicov1.HostConfigKey{Hostname: `a", name="b`, Name: "c"}
		Expect(a.String()).NotTo(Equal(b.String()))
	})

	It("is comparable, so keys serve as map keys", func() {
		m := map[calicov1.Key]int{}
		for i, k := range oneOfEachKind {
			m[k] = i
		}
		Expect(m).To(HaveLen(len(oneOfEachKind)))
		Expect(m[calicov1.KeyFromDefaultPath("/calico/v1/ipam/v4/pool/10.0.0.0-24")]).To(Equal(11))
	})

	It("wraps ErrInvalidKey so that callers can branch on it", func() {
		_, err := calicov1.TierKey{}.DefaultPath()
		Expect(errors.Is(err, calicov1.ErrInvalidKey)).To(BeTrue())
		Expect(errors.Is(err, calicov1.ErrInvalidValue)).To(BeFalse())
	})
})
