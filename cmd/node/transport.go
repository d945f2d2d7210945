package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/etcdsync/etcdsync/internal/redact"
)

// etcdTLS returns the TLS configuration of the syncer's upstream (nil if
// none): the etcd TLS flags', or a leaf's relay TLS flags'. A file that cannot be used is a
// *flagError. The syncer's own transport uses it, and closes every
// connection it opened when the syncer stops.
func etcdTLS(c config) (*tls.Config, error) {
	if c.Role == roleLeaf {
		return c.RelayTLS.load()
	}
	return c.EtcdTLS.load()
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

// relayTLS returns the relay listener's TLS configuration (nil without
// --relay-tls-cert-file): its certificate, and, with --relay-client-ca-file,
// client certificates required, verified against that CA and, with
// --relay-allowed-names, carrying one of the names.
func relayTLS(c config) (*tls.Config, error) {
	if c.RelayTLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.RelayTLSCertFile, c.RelayTLSKeyFile)
	if err != nil {
		return nil, badFlag("relay-tls-cert-file", "loading the certificate and --relay-tls-key-file: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.RelayClientCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(c.RelayClientCAFile)
	if err != nil {
		return nil, badFlag("relay-client-ca-file", "reading the CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, badFlag("relay-client-ca-file", "%s holds no PEM certificate", c.RelayClientCAFile)
	}
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	if len(c.RelayAllowedNames) > 0 {
		allowed := c.RelayAllowedNames
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			if allowedName(cs.PeerCertificates[0], allowed) {
				return nil
			}
			return fmt.Errorf("client certificate %q carries none of --relay-allowed-names", cs.PeerCertificates[0].Subject.CommonName)
		}
	}
	return cfg, nil
}

// allowedName reports whether cert carries a name in allowed: as its common
// name, a DNS SAN or a URI SAN.
func allowedName(cert *x509.Certificate, allowed []string) bool {
	names := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && slices.Contains(allowed, n) {
			return true
		}
	}
	return false
}

// describeEndpoints is for logs: the endpoints and whether TLS and auth are
// on, never the password.
func describeEndpoints(c config) []any {
	return []any{"endpoints", redact.URLs(c.Endpoints), // http://user:xxxxx@host
		"tls", c.EtcdTLS.on(), "user", c.EtcdLogin.Username}
}
