// Package edgetest starts gateways and mutual-TLS backends on loopback
// listeners, with a throwaway certificate authority, for tests and
// benchmarks of the gateway (and of anything behind it).
//
// Every function takes a testing.TB, so the same helpers serve tests and
// benchmarks (REST vs native gRPC through the gateway, for instance), and
// registers its cleanup with it.
package edgetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ozsecrets/oz/gateway/edge"
)

// PKI is a certificate authority made for one test. Its certificates are
// valid for 127.0.0.1, ::1 and localhost.
type PKI struct {
	// Pool holds the CA certificate: the trust anchor of everything issued.
	Pool *x509.CertPool
	// CAPEM is the CA certificate, PEM-encoded.
	CAPEM []byte

	ca  *x509.Certificate
	key *ecdsa.PrivateKey
}

// NewPKI generates a CA (ECDSA P-256).
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate ca key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "oz test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create ca certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse ca certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &PKI{
		Pool:  pool,
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ca:    ca,
		key:   key,
	}
}

// Issue returns a service certificate for name, valid for both server and
// client authentication, as the dev CA issues them.
func (p *PKI) Issue(tb testing.TB, name string) tls.Certificate {
	tb.Helper()
	return p.issue(tb, name, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

// IssueServerOnly returns a certificate valid only for server
// authentication, which backends refuse as a client certificate.
func (p *PKI) IssueServerOnly(tb testing.TB, name string) tls.Certificate {
	tb.Helper()
	return p.issue(tb, name, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
}

func (p *PKI) issue(tb testing.TB, name string, usage []x509.ExtKeyUsage) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{"localhost", name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		tb.Fatalf("create certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// WriteFiles writes cert, its key and the CA as PEM files in a temporary
// directory, for code that takes file names.
func (p *PKI) WriteFiles(tb testing.TB, cert tls.Certificate) (certFile, keyFile, caFile string) {
	tb.Helper()
	dir := tb.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		tb.Fatalf("marshal key: %v", err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	caFile = filepath.Join(dir, "ca.pem")
	for name, data := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		caFile:   p.CAPEM,
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			tb.Fatalf("write %s: %v", name, err)
		}
	}
	return certFile, keyFile, caFile
}

// ServerTLS is the TLS configuration of a backend: its own certificate, and
// a client certificate issued by this CA required from every caller.
func (p *PKI) ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.Pool,
		MinVersion:   tls.VersionTLS13,
	}
}

// ClientTLS trusts this CA and, when cert is not nil, presents it.
func (p *PKI) ClientTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatalf("serial: %v", err)
	}
	return n
}

// StartBackend starts a gRPC server on 127.0.0.1 with mutual TLS (a client
// certificate from p is required), lets register add services to it, and
// returns its address. The server stops when the test ends.
func StartBackend(tb testing.TB, p *PKI, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	creds := credentials.NewTLS(p.ServerTLS(p.Issue(tb, "backend")))
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(creds)}, opts...)...)
	register(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	tb.Cleanup(func() {
		s.Stop()
		<-done
	})
	return l.Addr().String()
}

// Gateway is a gateway serving on a loopback listener.
type Gateway struct {
	*edge.Server
	// Addr is the "host:port" it listens on.
	Addr string
	// URL is "https://" + Addr.
	URL string

	pki *PKI
}

// StartGateway starts a gateway for cfg on 127.0.0.1. A zero
// cfg.Certificate or nil cfg.BackendCAs is filled from p. When the test
// ends, the gateway is stopped, and the test fails unless Serve returned
// nil.
func StartGateway(tb testing.TB, p *PKI, cfg edge.Config) *Gateway {
	tb.Helper()
	if len(cfg.Certificate.Certificate) == 0 {
		cfg.Certificate = p.Issue(tb, "gateway")
	}
	if cfg.BackendCAs == nil {
		cfg.BackendCAs = p.Pool
	}
	srv, err := edge.New(cfg)
	if err != nil {
		tb.Fatalf("edge.New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			tb.Errorf("Serve: got %v, want nil", err)
		}
		if err := srv.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	addr := l.Addr().String()
	return &Gateway{Server: srv, Addr: addr, URL: "https://" + addr, pki: p}
}

// HTTPClient returns a client that trusts the gateway and speaks HTTP/2.
func (g *Gateway) HTTPClient(tb testing.TB) *http.Client {
	tb.Helper()
	return g.httpClient(tb, true)
}

// HTTP1Client returns a client that trusts the gateway and speaks only
// HTTP/1.1.
func (g *Gateway) HTTP1Client(tb testing.TB) *http.Client {
	tb.Helper()
	return g.httpClient(tb, false)
}

func (g *Gateway) httpClient(tb testing.TB, h2 bool) *http.Client {
	tb.Helper()
	tr := &http.Transport{TLSClientConfig: g.pki.ClientTLS(nil)}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(!h2)
	tr.Protocols.SetHTTP2(h2)
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Dial returns a gRPC client connection to the gateway, trusting its
// certificate (and presenting none: callers authenticate with tokens).
func (g *Gateway) Dial(tb testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	return Dial(tb, g.Addr, g.pki.ClientTLS(nil), opts...)
}

// Dial returns a gRPC client connection to addr with TLS config cfg, closed
// when the test ends.
func Dial(tb testing.TB, addr string, cfg *tls.Config, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)...)
	if err != nil {
		tb.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	tb.Cleanup(func() {
		if err := conn.Close(); err != nil && !errors.Is(err, context.Canceled) {
			tb.Logf("close grpc client: %v", err)
		}
	})
	return conn
}
