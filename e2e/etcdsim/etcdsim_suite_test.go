package etcdsim_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

func TestEtcdsim(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "etcdsim Suite")
}

// realEtcd is the suite's real etcd endpoint, "" when the label filter
// leaves out every spec that needs it.
var realEtcd string

// One real etcd per suite, started by the first process and shared
// (SynchronizedBeforeSuite); specs that use it are Serial.
var _ = SynchronizedBeforeSuite(func() []byte {
	if !Label("etcd").MatchesLabelFilter(GinkgoLabelFilter()) {
		return nil
	}
	c, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.Stop)
	return []byte(c.Endpoints()[0])
}, func(endpoint []byte) {
	realEtcd = string(endpoint)
})

// realKeysAPI is a client/v2 KeysAPI for the suite's real etcd.
func realKeysAPI() client.KeysAPI {
	GinkgoHelper()
	Expect(realEtcd).NotTo(BeEmpty(), "no real etcd: is the spec labelled \"etcd\"?")
	return keysAPIFor(realEtcd)
}

func keysAPIFor(endpoint string) client.KeysAPI {
	GinkgoHelper()
	c, err := client.New(client.Config{Endpoints: []string{endpoint}, HeaderTimeoutPerRequest: 5 * time.Second})
	Expect(err).NotTo(HaveOccurred())
	return client.NewKeysAPI(c)
}
