// Package pki issues the development certificate authority and the
// service certificates, and builds the TLS configurations services use to
// talk to each other by mutual TLS. A service's identity is the common name
// of its certificate ("secretstore", "resolver", "audit", "gateway").
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Services are the identities the development CA issues certificates for.
var Services = []string{"secretstore", "resolver", "audit", "gateway"}

// Paths of the files of one certificate.
type Paths struct{ Cert, Key string }

// Dir lays out the development PKI under dir.
type Dir string

func (d Dir) CA() string    { return filepath.Join(string(d), "ca.pem") }
func (d Dir) caKey() string { return filepath.Join(string(d), "ca-key.pem") }
func (d Dir) For(name string) Paths {
	return Paths{filepath.Join(string(d), name+".pem"), filepath.Join(string(d), name+"-key.pem")}
}

// EnsureDev creates the CA and one certificate per service under dir,
// keeping what already exists. Keys are written with mode 0600. hosts are
// the DNS names and IPs the certificates are valid for (besides localhost
// and 127.0.0.1).
func EnsureDev(dir Dir, hosts ...string) error {
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return fmt.Errorf("create pki dir: %w", err)
	}
	caCert, caKey, err := loadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = newCA(dir)
	}
	if err != nil {
		return err
	}
	for _, name := range Services {
		p := dir.For(name)
		if _, err := os.Stat(p.Cert); err == nil {
			continue
		}
		if err := Issue(caCert, caKey, name, p, hosts...); err != nil {
			return err
		}
	}
	return nil
}

func newCA(dir Dir) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "oz dev CA", Organization: []string{"oz secrets (development)"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writePair(Paths{dir.CA(), dir.caKey()}, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func loadCA(dir Dir) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(dir.CA(), dir.caKey())
	if err != nil {
		if _, serr := os.Stat(dir.CA()); errors.Is(serr, os.ErrNotExist) {
			return nil, nil, serr
		}
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("load CA: key is not ECDSA")
	}
	return cert, key, nil
}

// Issue writes a certificate for name, signed by the CA, usable both as a
// server and as a client certificate.
func Issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, out Paths, hosts ...string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"oz secrets"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost", name},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	return writePair(out, der, key)
}

func writePair(p Paths, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := os.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write cert: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err)
	}
	return n
}

// ServerConfig is the TLS configuration of a service port: it presents the
// service's certificate and requires a client certificate from the CA.
func ServerConfig(cert Paths, caFile string) (*tls.Config, error) {
	pair, pool, err := load(cert, caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ClientConfig is the TLS configuration for calling another service: it
// presents cert and verifies the server against the CA.
func ClientConfig(cert Paths, caFile string) (*tls.Config, error) {
	pair, pool, err := load(cert, caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func load(cert Paths, caFile string) (tls.Certificate, *x509.CertPool, error) {
	pair, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load certificate %s: %w", cert.Cert, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: no certificate found", caFile)
	}
	return pair, pool, nil
}
