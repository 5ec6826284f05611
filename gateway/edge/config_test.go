package edge_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
)

func TestNewRefusesBadConfig(t *testing.T) {
	pki := edgetest.NewPKI(t)
	good := func() edge.Config {
		return edge.Config{
			Certificate: pki.Issue(t, "gateway"),
			BackendCAs:  pki.Pool,
			Backends:    map[string]string{edge.SecretStore: "127.0.0.1:1", edge.Resolver: "127.0.0.1:2"},
		}
	}
	tests := []struct {
		name    string
		change  func(*edge.Config)
		wantErr string
	}{
		{"NoCertificate", func(c *edge.Config) { c.Certificate = tls.Certificate{} }, "no tls certificate"},
		{"ServerOnlyCertificate", func(c *edge.Config) { c.Certificate = pki.IssueServerOnly(t, "gateway") }, "client authentication"},
		{"NoCA", func(c *edge.Config) { c.BackendCAs = nil }, "no ca"},
		{"UnknownBackend", func(c *edge.Config) { c.Backends["secretstor"] = "127.0.0.1:3" }, `unknown backend "secretstor"`},
		{"NoSecretStore", func(c *edge.Config) { delete(c.Backends, edge.SecretStore) }, "no address for backend secretstore"},
		{"BlankResolver", func(c *edge.Config) { c.Backends[edge.Resolver] = " , " }, "no address for backend resolver"},
		{"AddressWithoutPort", func(c *edge.Config) { c.Backends[edge.Resolver] = "127.0.0.1:2,resolver" }, `address "resolver"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.change(&cfg)
			s, err := edge.New(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New: got nil error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: got %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}

	t.Run("Good", func(t *testing.T) {
		cfg := good()
		cfg.Backends[edge.Audit] = "127.0.0.1:4,127.0.0.1:5"
		s, err := edge.New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func TestLoadTLSFiles(t *testing.T) {
	pki := edgetest.NewPKI(t)
	certFile, keyFile, caFile := pki.WriteFiles(t, pki.Issue(t, "gateway"))
	if _, _, err := edge.LoadTLSFiles(certFile, keyFile, caFile); err != nil {
		t.Fatalf("LoadTLSFiles: %v", err)
	}
	tests := []struct {
		name                      string
		certFile, keyFile, caFile string
		wantErr                   string
	}{
		{"MissingCert", certFile + ".nope", keyFile, caFile, "load tls certificate"},
		{"KeyAsCA", certFile, keyFile, keyFile, "no certificate in"},
		{"MissingCA", certFile, keyFile, caFile + ".nope", "load tls ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := edge.LoadTLSFiles(tt.certFile, tt.keyFile, tt.caFile)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadTLSFiles: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
