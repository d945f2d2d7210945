package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestEtcdTLS(t *testing.T) {
	tc, err := etcdTLS(config{Role: roleExternal, Endpoints: []string{"http://a:1"}, EtcdTLS: tlsFlags{name: "etcd"}})
	if err != nil || tc != nil {
		t.Errorf("no TLS flags: %v, TLS config %v", err, tc)
	}
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tc, err = etcdTLS(config{EtcdTLS: tlsFlags{name: "etcd", CAFile: cert, CertFile: cert, KeyFile: key}})
	if err != nil {
		t.Fatalf("etcdTLS: %v", err)
	}
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Errorf("TLS config %#v lacks the CA or the client certificate", tc)
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    config
		flag string
	}{
		{config{EtcdTLS: tlsFlags{name: "etcd", CAFile: filepath.Join(dir, "missing.pem")}}, "--etcd-ca-file"},
		{config{EtcdTLS: tlsFlags{name: "etcd", CAFile: notPEM}}, "--etcd-ca-file"},
		{config{EtcdTLS: tlsFlags{name: "etcd", CertFile: cert, KeyFile: notPEM}}, "--etcd-cert-file"},
	} {
		_, err := etcdTLS(tc.c)
		var fe *flagError
		if !errors.As(err, &fe) || fe.Flag != tc.flag {
			t.Errorf("etcdTLS(%+v) = %v, want a %s error", tc.c, err, tc.flag)
		}
	}
}

func TestDescribeEndpointsHidesPasswords(t *testing.T) {
	args := describeEndpoints(config{Endpoints: []string{"http://u:hunter2@a:1"}, EtcdLogin: login{Password: "s3cret", Username: "u"}})
	for _, a := range args {
		s, _ := a.(string)
		if ss, ok := a.([]string); ok {
			s = strings.Join(ss, ",")
		}
		if strings.Contains(s, "hunter2") || strings.Contains(s, "s3cret") {
			t.Errorf("describeEndpoints leaks a password: %v", args)
		}
	}
}
