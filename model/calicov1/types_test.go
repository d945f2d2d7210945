package calicov1_test

import (
	"encoding/json"
	"net"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/model/calicov1"
)

var _ = Describe("Port", func() {
	DescribeTable("decodes a number or a string, and encodes back",
		func(raw string, want calicov1.Port, encoded string) {
			var p calicov1.Port
			Expect(json.Unmarshal([]byte(raw), &p)).To(Succeed())
			Expect(p).To(Equal(want))
			Expect(json.Marshal(p)).To(MatchJSON(encoded))
		},
		Entry("a number", `80`, singlePort(80), `80`),
		Entry("zero", `0`, singlePort(0), `0`),
		Entry("the highest", `65535`, singlePort(65535), `65535`),
		Entry("a string of digits", `"80"`, singlePort(80), `80`),
		Entry("a range", `"10:20"`, calicov1.Port{MinPort: 10, MaxPort: 20}, `"10:20"`),
		Entry("a range of one", `"10:10"`, singlePort(10), `10`),
		Entry("a name", `"http-alt_2.x"`, calicov1.Port{PortName: "http-alt_2.x"}, `"http-alt_2.x"`),
	)

	DescribeTable("rejects what is not a port",
		func(raw string) {
			var p calicov1.Port
			Expect(json.Unmarshal([]byte(raw), &p)).NotTo(Succeed())
		},
		Entry("a negative number", `-1`),
		Entry("a number too high", `65536`),
		Entry("a fraction", `8.5`),
		Entry("a string too high", `"65536"`),
		Entry("a reversed range", `"20:10"`),
		Entry("a range too high", `"10:70000"`),
		Entry("a half range", `"10:"`),
		Entry("an empty string", `""`),
		Entry("a name with a space", `"a b"`),
		Entry("a name too long", `"`+strings.Repeat("a", 129)+`"`),
		Entry("a bool", `true`),
		Entry("an object", `{}`),
	)

	It("leaves the port unchanged on a JSON null", func() {
		p := singlePort(5)
		Expect(json.Unmarshal([]byte(`null`), &p)).To(Succeed())
		Expect(p).To(Equal(singlePort(5)))
	})

	It("prints its string form", func() {
		Expect(singlePort(80).String()).To(Equal("80"))
		Expect(calicov1.Port{MinPort: 1, MaxPort: 2}.String()).To(Equal("1:2"))
		Expect(calicov1.Port{PortName: "http"}.String()).To(Equal("http"))
	})
})

var _ = Describe("Protocol", func() {
	DescribeTable("decodes a name or a number, and encodes back",
		func(raw string, want calicov1.Protocol, printed string) {
			var p calicov1.Protocol
			Expect(json.Unmarshal([]byte(raw), &p)).To(Succeed())
			Expect(p).To(Equal(want))
			Expect(p.String()).To(Equal(printed))
			again, err := json.Marshal(p)
			Expect(err).NotTo(HaveOccurred())
			var back calicov1.Protocol
			Expect(json.Unmarshal(again, &back)).To(Succeed())
			Expect(back).To(Equal(want))
		},
		Entry("a name", `"tcp"`, calicov1.Protocol{Name: "tcp"}, "tcp"),
		Entry("a number", `6`, calicov1.Protocol{Number: 6}, "6"),
		Entry("zero", `0`, calicov1.Protocol{}, "0"),
		Entry("a string of digits", `"17"`, calicov1.Protocol{Number: 17}, "17"),
		Entry("a string of digits too high is a name, as in the original", `"256"`, calicov1.Protocol{Name: "256"}, "256"),
	)

	DescribeTable("rejects what is not a protocol",
		func(raw string) {
			var p calicov1.Protocol
			Expect(json.Unmarshal([]byte(raw), &p)).NotTo(Succeed())
		},
		Entry("a number too high", `256`),
		Entry("a negative number", `-1`),
		Entry("an empty string", `""`),
		Entry("a bool", `false`),
		Entry("an array", `[6]`),
	)
})

var _ = Describe("IPNet", func() {
	DescribeTable("decodes a CIDR, keeping the address, or a bare address",
		func(raw, printed string, addrLen int) {
			var n calicov1.IPNet
			Expect(json.Unmarshal([]byte(raw), &n)).To(Succeed())
			Expect(n.String()).To(Equal(printed))
			Expect(n.IP).To(HaveLen(addrLen))
			Expect(n.Mask).To(HaveLen(addrLen))
			Expect(json.Marshal(n)).To(MatchJSON(`"` + printed + `"`))
		},
		Entry("an IPv4 network", `"10.0.0.0/8"`, "10.0.0.0/8", net.IPv4len),
		Entry("an IPv4 CIDR with host bits", `"10.0.0.1/8"`, "10.0.0.1/8", net.IPv4len),
		Entry("a bare IPv4 address", `"10.0.0.1"`, "10.0.0.1/32", net.IPv4len),
		Entry("an IPv6 network", `"fd00::/64"`, "fd00::/64", net.IPv6len),
		Entry("a bare IPv6 address", `"fd00::1"`, "fd00::1/128", net.IPv6len),
	)

	DescribeTable("rejects what is not a network",
		func(raw string) {
			var n calicov1.IPNet
			Expect(json.Unmarshal([]byte(raw), &n)).NotTo(Succeed())
		},
		Entry("a word", `"nonsense"`),
		Entry("a length out of range", `"10.0.0.0/33"`),
		Entry("an empty string", `""`),
		Entry("a number", `10`),
	)
})

var _ = Describe("MAC", func() {
	It("decodes and encodes a hardware address", func() {
		var m calicov1.MAC
		Expect(json.Unmarshal([]byte(`"EE:ee:ee:ee:ee:01"`), &m)).To(Succeed())
		Expect(m.String()).To(Equal("ee:ee:ee:ee:ee:01"))
		Expect(json.Marshal(m)).To(MatchJSON(`"ee:ee:ee:ee:ee:01"`))
	})

	It("rejects what is not one", func() {
		var m calicov1.MAC
		Expect(json.Unmarshal([]byte(`"ee:ee"`), &m)).NotTo(Succeed())
		Expect(json.Unmarshal([]byte(`[1,2]`), &m)).NotTo(Succeed())
	})
})

var _ = Describe("Rule", func() {
	It("combines a single net with the list, the single one last", func() {
		one, two, three := mustIPNet("10.0.0.0/8"), mustIPNet("10.1.0.0/16"), mustIPNet("10.2.0.0/16")
		r := calicov1.Rule{SrcNet: &one, SrcNets: []calicov1.IPNet{two, three}, DstNets: []calicov1.IPNet{two}, NotSrcNet: &one}
		Expect(r.AllSrcNets()).To(Equal([]calicov1.IPNet{two, three, one}))
		Expect(r.AllDstNets()).To(Equal([]calicov1.IPNet{two}))
		Expect(r.AllNotSrcNets()).To(Equal([]calicov1.IPNet{one}))
		Expect(r.AllNotDstNets()).To(BeNil())
	})

	It("does not alias the rule's list", func() {
		one, two := mustIPNet("10.0.0.0/8"), mustIPNet("10.1.0.0/16")
		r := calicov1.Rule{DstNets: []calicov1.IPNet{two}}
		all := r.AllDstNets()
		all[0] = one
		Expect(r.DstNets[0]).To(Equal(two))
	})
})
