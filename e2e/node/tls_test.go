package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// testCA is a certificate authority a spec makes, to sign the
// certificates it hands to processes.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	file string // the CA's PEM certificate
	n    int64
}

func newTestCA() *testCA {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdsync spec CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	ca := &testCA{cert: cert, key: key, dir: GinkgoT().TempDir(), n: 1}
	ca.file = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, kind string, der []byte) string {
	GinkgoHelper()
	path := filepath.Join(ca.dir, name)
	Expect(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)).To(Succeed())
	return path
}

// issue signs a certificate for name (its common name), valid for a server
// on 127.0.0.1 and for a client, and returns its certificate and key files.
func (ca *testCA) issue(name string) (certFile, keyFile string) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	ca.n++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.n),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+"-key.pem", "PRIVATE KEY", keyDER)
}

var _ = Describe("The node's relay over mutual TLS", func() {
	It("serves a leaf whose certificate is on --relay-allowed-names, and refuses one that is not, or has none", func(ctx SpecContext) {
		ca := newTestCA()
		relayCert, relayKey := ca.issue("relay")
		okCert, okKey := ca.issue("leaf-ok")
		otherCert, otherKey := ca.issue("leaf-other")

		relayPort := freePorts(1)[0]
		relayURL := "https://" + addr(relayPort)
		r := startEmbeddedNode("--relay-listen", addr(relayPort),
			"--relay-tls-cert-file", relayCert, "--relay-tls-key-file", relayKey,
			"--relay-client-ca-file", ca.file, "--relay-allowed-names", "leaf-ok,spiffe://example/leaf")
		ok := startLeafNode([]string{relayURL}, "--relay-ca-file", ca.file, "--relay-cert-file", okCert, "--relay-key-file", okKey)
		other := startLeafNode([]string{relayURL}, "--relay-ca-file", ca.file,
			"--relay-cert-file", otherCert, "--relay-key-file", otherKey)
		none := startLeafNode([]string{relayURL}, "--relay-ca-file", ca.file)

		Eventually(ok.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		putKey(ctx, r.etcdURL, "/calico/v1/config/TLS", "yes")
		Eventually(ok.state).WithContext(ctx).Should(Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/config/TLS": "yes"}}))

		Eventually(func() string { return string(r.session.Err.Contents()) }).WithContext(ctx).
			Should(ContainSubstring(`client certificate \"leaf-other\" carries none of --relay-allowed-names`))
		for _, refused := range []*node{other, none} {
			Expect(statusCode(ctx, Default, refused.httpURL+"/readyz")).To(Equal(http.StatusServiceUnavailable))
			Expect(refused.lastStatus(Default)).To(Equal("wait-for-datastore"))
			Eventually(func() string { return string(refused.session.Err.Contents()) }).WithContext(ctx).
				Should(And(ContainSubstring("relay stream failed"), ContainSubstring(relayURL)), "the refusal names the relay")
		}
	}, SpecTimeout(60*time.Second))
})
