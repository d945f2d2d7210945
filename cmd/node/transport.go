package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
)

// etcdTLS returns the TLS configuration the etcd TLS flags name (nil if
// none): the CA and the client certificate. A file that cannot be used is a
// *flagError. The syncer's own transport uses it, and closes every
// connection it opened when the syncer stops.
func etcdTLS(c config) (*tls.Config, error) {
	if c.leaf() {
		return clientTLS("relay-ca-file", c.RelayCAFile, "relay-cert-file", c.RelayCertFile, c.RelayKeyFile)
	}
	return clientTLS("etcd-ca-file", c.CAFile, "etcd-cert-file", c.CertFile, c.KeyFile)
}

// clientTLS loads a CA bundle and a client certificate for a client's TLS
// (nil if neither is named); errors name the flags.
func clientTLS(caFlag, caFile, certFlag, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, badFlag(caFlag, "reading the CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, badFlag(caFlag, "%s holds no PEM certificate", caFile)
		}
		tlsConfig.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, badFlag(certFlag, "loading the client certificate and its key file: %w", err)
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
