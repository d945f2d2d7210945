package etcdproc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// clientTLS makes a CA, a server certificate for the members and a client
// certificate for the harness, all in a temporary directory, and returns
// the members' TLS with client certificates required.
func clientTLS() *etcdproc.ClientTLS {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		Expect(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)).To(Succeed())
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcdproc spec CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	Expect(err).NotTo(HaveOccurred())
	ca, err := x509.ParseCertificate(caDER)
	Expect(err).NotTo(HaveOccurred())
	issue := func(serial int64, name string) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		Expect(err).NotTo(HaveOccurred())
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		Expect(err).NotTo(HaveOccurred())
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", keyDER)
	}
	etcdCert, etcdKey := issue(2, "etcd")
	harnessCert, harnessKey := issue(3, "harness")
	pair, err := tls.LoadX509KeyPair(harnessCert, harnessKey)
	Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &etcdproc.ClientTLS{
		CertFile: etcdCert, KeyFile: etcdKey, TrustedCAFile: write("ca.pem", "CERTIFICATE", caDER), ClientCertAuth: true,
		Harness: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}
}

var _ = Describe("Cluster with client TLS", Label("etcd"), func() {
	DescribeTable("waits, leads, backs up and serves Client over https with client certificates",
		func(ctx SpecContext, v etcdproc.Version) {
			c, err := etcdproc.StartMember(etcdproc.Options{Version: v, Output: GinkgoWriter, ClientTLS: clientTLS()})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(c.Stop)
			Expect(c.Endpoints()[0]).To(HavePrefix("https://"))
			Expect(c.Leader()).To(Equal(0))
			cl := v3Client(c)
			put, err := cl.Put(ctx, "/etcdproc/tls", "1")
			Expect(err).NotTo(HaveOccurred())
			b, err := c.Backup()
			Expect(err).NotTo(HaveOccurred())
			Expect(b.Revision()).To(Equal(put.Header.Revision))
			Expect(value(ctx, cl, "/etcdproc/tls")).To(Equal("1"))
		},
		Entry("on etcd 3.5", etcdproc.V35, SpecTimeout(30*time.Second)),
		Entry("on etcd 3.7", etcdproc.V37, SpecTimeout(30*time.Second)),
	)
})
