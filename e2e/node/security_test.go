package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
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

// v2auth sends one request of etcd's v2 auth API, as root if password is
// not empty.
func v2auth(ctx context.Context, etcdURL, method, path, body, password string) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, method, etcdURL+"/v2/auth"+path, strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	if password != "" {
		req.SetBasicAuth("root", password)
	}
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	Expect(resp.StatusCode).To(BeNumerically("<", 300), "%s %s", method, path)
}

var _ = Describe("The node on an etcd with v2 basic auth", func() {
	It("syncs with the right password, says why it cannot with a wrong one, and writes the password nowhere", func(ctx SpecContext) {
		const right, wrong = "R1ght-pw-7c41", "Wr0ng-pw-93b2"
		cluster, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Stop)
		etcdURL := cluster.Endpoints()[0]
		v2auth(ctx, etcdURL, http.MethodPut, "/users/root", `{"user":"root","password":"`+right+`"}`, "")
		v2auth(ctx, etcdURL, http.MethodPut, "/enable", "", "")
		// The guest role may read and write everything until told otherwise.
		v2auth(ctx, etcdURL, http.MethodPut, "/roles/guest", `{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}`, right)

		ok := startExternalNodeEnv([]string{etcdURL}, []string{"ETCDSYNC_ETCD_PASSWORD=" + right}, "--etcd-username", "root")
		bad := startExternalNodeEnv([]string{etcdURL}, []string{"ETCDSYNC_ETCD_PASSWORD=" + wrong}, "--etcd-username", "root")
		Eventually(ok.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		Eventually(func() string { return string(bad.session.Err.Contents()) }).WithContext(ctx).
			Should(ContainSubstring("The request requires user authentication (Insufficient credentials)"))
		Expect(statusCode(ctx, Default, bad.httpURL+"/readyz")).To(Equal(http.StatusServiceUnavailable))
		Expect(bad.lastStatus(Default)).To(Equal("wait-for-datastore"))

		for _, n := range []*node{ok, bad} {
			_, metrics := get(ctx, Default, n.httpURL+"/metrics")
			_, st := get(ctx, Default, n.httpURL+"/state")
			for _, text := range []string{string(n.session.Err.Contents()), string(n.session.Out.Contents()), metrics, st} {
				Expect(text).NotTo(Or(ContainSubstring(right), ContainSubstring(wrong)))
			}
		}
	}, SpecTimeout(60*time.Second))
})

var _ = Describe("The node on an etcd that requires client certificates", func() {
	It("syncs with --etcd-cert-file and --etcd-key-file, and is not ready without them", func(ctx SpecContext) {
		ca := newTestCA()
		etcdCert, etcdKey := ca.issue("etcd")
		nodeCert, nodeKey := ca.issue("node")
		harnessCert, harnessKey := ca.issue("harness")
		pair, err := tls.LoadX509KeyPair(harnessCert, harnessKey)
		Expect(err).NotTo(HaveOccurred())
		roots := x509.NewCertPool()
		roots.AddCert(ca.cert)
		cluster, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter, ClientTLS: &etcdproc.ClientTLS{
			CertFile: etcdCert, KeyFile: etcdKey, TrustedCAFile: ca.file, ClientCertAuth: true,
			Harness: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Stop)
		eps := cluster.Endpoints()
		Expect(eps[0]).To(HavePrefix("https://"))

		ok := startExternalNode(eps, "--etcd-ca-file", ca.file, "--etcd-cert-file", nodeCert, "--etcd-key-file", nodeKey)
		none := startExternalNode(eps, "--etcd-ca-file", ca.file)
		Eventually(ok.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		keys, err := cluster.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		_, err = keys.Set(ctx, "/calico/v1/config/MTLS", "yes", nil)
		Expect(err).NotTo(HaveOccurred())
		Eventually(ok.state).WithContext(ctx).Should(Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/config/MTLS": "yes"}}))

		Eventually(func() string { return string(none.session.Err.Contents()) }).WithContext(ctx).
			Should(ContainSubstring("certificate"), "the refusal is a TLS one")
		Expect(statusCode(ctx, Default, none.httpURL+"/readyz")).To(Equal(http.StatusServiceUnavailable))
		Expect(none.lastStatus(Default)).To(Equal("wait-for-datastore"))
	}, SpecTimeout(60*time.Second))
})
