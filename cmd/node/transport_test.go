package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
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

func TestEtcdTransport(t *testing.T) {
	tr, _, err := etcdTransport(config{Endpoints: []string{"http://a:1"}})
	if err != nil || tr.TLSClientConfig != nil {
		t.Errorf("no TLS flags: %v, TLS config %v", err, tr.TLSClientConfig)
	}
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tr, _, err = etcdTransport(config{CAFile: cert, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatalf("etcdTransport: %v", err)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil || len(tr.TLSClientConfig.Certificates) != 1 {
		t.Errorf("transport %#v lacks the CA or the client certificate", tr)
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    config
		flag string
	}{
		{config{CAFile: filepath.Join(dir, "missing.pem")}, "--etcd-ca-file"},
		{config{CAFile: notPEM}, "--etcd-ca-file"},
		{config{CertFile: cert, KeyFile: notPEM}, "--etcd-cert-file"},
	} {
		_, _, err := etcdTransport(tc.c)
		var fe *flagError
		if !errors.As(err, &fe) || fe.Flag != tc.flag {
			t.Errorf("etcdTransport(%+v) = %v, want a %s error", tc.c, err, tc.flag)
		}
	}
}

// TestConnTrackerClosesIdleConnections leaves a connection idle in the
// transport's pool, as a cancelled request can, and checks that CloseAll
// closes it (the server sees EOF) and that later dials fail.
func TestConnTrackerClosesIdleConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	serverSideClosed := make(chan struct{}, 10)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			serverSideClosed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	tr, conns, err := etcdTransport(config{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // the connection goes back to the pool, idle
	if n := conns.open(); n != 1 {
		t.Fatalf("%d connections open, want the idle one", n)
	}
	conns.CloseAll()
	<-serverSideClosed // the server saw the idle connection close
	if n := conns.open(); n != 0 {
		t.Errorf("%d connections open after CloseAll", n)
	}
	if _, err := (&http.Client{Transport: tr}).Get(srv.URL); !errors.Is(err, errConnsClosed) {
		t.Errorf("a request after CloseAll: %v, want errConnsClosed", err)
	}
}

func TestDescribeEndpointsHidesPasswords(t *testing.T) {
	args := describeEndpoints(config{Endpoints: []string{"http://u:hunter2@a:1"}, Password: "s3cret", Username: "u"})
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
