package calicov1_test

import (
	"net"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/model/calicov1"
)

var _ = Describe("Decoder", func() {
	var d messages.Decoder
	BeforeEach(func() { d = calicov1.Decoder{} })

	It("decodes a v1 key into its typed key", func() {
		k, ok := d.DecodeKey("/calico/v1/host/h1/bird_ip")
		Expect(ok).To(BeTrue())
		Expect(k).To(Equal(calicov1.HostIPKey{Hostname: "h1"}))
	})

	It("refuses a key that is not a v1 key, with a nil key", func() {
		k, ok := d.DecodeKey("/calico/v1/host/h1/metadata")
		Expect(ok).To(BeFalse())
		Expect(isUntypedNil(k)).To(BeTrue())
	})

	It("decodes the value of a key it decoded", func() {
		k, _ := d.DecodeKey("/calico/v1/host/h1/bird_ip")
		v, err := d.DecodeValue(k, "10.0.0.1")
		Expect(err).NotTo(HaveOccurred())
		Expect(v.(net.IP).String()).To(Equal("10.0.0.1"))

		k, _ = d.DecodeKey("/calico/v1/policy/profile/p/tags")
		Expect(d.DecodeValue(k, `["a"]`)).To(Equal([]string{"a"}))
	})

	It("gives a nil value and an error for a value that does not decode", func() {
		k, _ := d.DecodeKey("/calico/v1/policy/tier/default/policy/p1")
		v, err := d.DecodeValue(k, "{")
		Expect(isUntypedNil(v)).To(BeTrue())
		Expect(err).To(MatchError(calicov1.ErrInvalidValue))
		Expect(err.Error()).To(ContainSubstring(`Policy(tier="default", name="p1")`))
	})

	It("refuses a key it did not decode", func() {
		for _, k := range []any{nil, "/calico/v1/Ready", 5} {
			v, err := d.DecodeValue(k, "true")
			Expect(isUntypedNil(v)).To(BeTrue())
			Expect(err).To(MatchError(calicov1.ErrUnknownKey))
		}
	})
})
