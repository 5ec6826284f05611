package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// backendTLS is the client side of mutual TLS towards the backends: the
// gateway presents its own certificate and trusts only cas.
func backendTLS(cert tls.Certificate, cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
		MinVersion:   tls.VersionTLS13, // service to service: no old clients to support
	}
}

// checkClientUsage refuses a certificate that backends would reject as a
// client certificate, so the mistake shows at start rather than as
// Unavailable on every call.
func checkClientUsage(cert tls.Certificate) error {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return errors.New("tls certificate: empty")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls certificate: %w", err)
		}
	}
	if len(leaf.ExtKeyUsage) == 0 {
		return nil // no restriction
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return errors.New("tls certificate: not valid for client authentication, which the backends require (extended key usage clientAuth)")
}

// LoadTLSFiles reads the gateway's certificate and key (PEM) and the CA
// bundle (PEM) that verifies the backends.
func LoadTLSFiles(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load tls certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("load tls ca: no certificate in %s", caFile)
	}
	return cert, pool, nil
}
