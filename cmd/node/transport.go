package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
)

// etcdTLS returns the TLS configuration the TLS flags name (nil if none):
// the CA and the client certificate. A file that cannot be used is a
// *flagError. The syncer's own transport uses it, and closes every
// connection it opened when the syncer stops.
func etcdTLS(c config) (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, badFlag("etcd-ca-file", "reading the CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, badFlag("etcd-ca-file", "%s holds no PEM certificate", c.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, badFlag("etcd-cert-file", "loading the client certificate and --etcd-key-file: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	return tlsConfig, nil
}

// describeEndpoints is for logs: the endpoints and whether TLS and auth are
// on, never the password.
func describeEndpoints(c config) []any {
	eps := make([]string, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		eps[i] = ep
		if u, err := url.Parse(ep); err == nil {
			eps[i] = u.Redacted() // http://user:xxxxx@host
		}
	}
	return []any{"endpoints", eps, "tls", c.CAFile != "" || c.CertFile != "", "user", c.Username}
}
