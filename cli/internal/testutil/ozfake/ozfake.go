// Package ozfake runs in-process gRPC servers with fake oz services for
// tests: real TLS on a loopback port, a self-signed certificate written to
// a CA file, and a record of every call with its metadata.
package ozfake

import (
	"context"
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
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/config"
)

// Token is the bearer token Settings carries.
const Token = "oz_test_token_0123456789"

// Call is one request the server received.
type Call struct {
	Method string // full method, e.g. "/oz.secrets.v1.SecretService/CreateSecret"
	MD     metadata.MD
	Req    proto.Message
}

// Server is a running fake gateway.
type Server struct {
	Addr   string
	CAFile string
	// Sealer holds the keys of the SealingKeyService it serves, unless
	// Services.SealingKeys replaced them: open what the CLI sealed with it.
	Sealer *Sealer

	mu    sync.Mutex
	calls []Call
}

// Start serves the given fakes (nil ones answer Unimplemented) and real
// sealing keys (Server.Sealer) until the test ends.
func Start(t testing.TB, secrets *Secrets, dir *Directory, tokens *Tokens) *Server {
	t.Helper()
	return StartServices(t, Services{Secrets: secrets, Directory: dir, Tokens: tokens})
}

// Services are the fakes one server serves; a nil one answers
// Unimplemented, but for SealingKeys.
type Services struct {
	Secrets      *Secrets
	Directory    *Directory
	Tokens       *Tokens
	Agents       *Agents
	Environments *Environments
	Runners      *Runners
	Runs         *Runs
	Integrations *Integrations
	Audit        *Audit
	// SealingKeys, when nil, is Sealer's Fake (Sealer, when nil, a
	// NewSealer): every secret create and update starts by fetching the
	// keys to seal the value to, so the server has real ones by default.
	SealingKeys *SealingKeys
	Sealer      *Sealer
}

// StartServices serves svc until the test ends.
func StartServices(t testing.TB, svc Services) *Server {
	t.Helper()
	sealer := svc.Sealer
	if svc.SealingKeys == nil {
		if sealer == nil {
			sealer = NewSealer(t)
		}
		svc.SealingKeys = sealer.Fake()
	}
	s := serve(t, func(gs *grpc.Server) error {
		for _, f := range []struct {
			desc *grpc.ServiceDesc
			fake any
		}{
			{&secretsv1.SecretService_ServiceDesc, or(svc.Secrets, &Secrets{})},
			{&secretsv1.SealingKeyService_ServiceDesc, svc.SealingKeys},
			{&scopev1.DirectoryService_ServiceDesc, or(svc.Directory, &Directory{})},
			{&scopev1.TokenService_ServiceDesc, or(svc.Tokens, &Tokens{})},
			{&scopev1.AgentService_ServiceDesc, or(svc.Agents, &Agents{})},
			{&scopev1.EnvironmentService_ServiceDesc, or(svc.Environments, &Environments{})},
			{&scopev1.RunnerService_ServiceDesc, or(svc.Runners, &Runners{})},
			{&scopev1.RunService_ServiceDesc, or(svc.Runs, &Runs{})},
			{&scopev1.IntegrationService_ServiceDesc, or(svc.Integrations, &Integrations{})},
			{&auditv1.AuditService_ServiceDesc, or(svc.Audit, &Audit{})},
		} {
			if err := register(gs, f.desc, f.fake); err != nil {
				return err
			}
		}
		return nil
	})
	s.Sealer = sealer
	return s
}

func or[T any](v, def *T) *T {
	if v == nil {
		return def
	}
	return v
}

// serve starts a gRPC server with the services add registers on a real TLS
// loopback port, recording every unary call, until the test ends.
func serve(t testing.TB, add func(*grpc.Server) error) *Server {
	t.Helper()
	cert, caPEM := SelfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: lis.Addr().String(), CAFile: caFile}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(s.record),
	)
	if err := add(gs); err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

func (s *Server) record(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: info.FullMethod, MD: md.Copy(), Req: proto.Clone(req.(proto.Message))})
	s.mu.Unlock()
	return handler(ctx, req)
}

// Calls returns the calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Settings are client settings that reach s with Token.
func (s *Server) Settings() config.Settings {
	return config.Settings{Addr: s.Addr, CAFile: s.CAFile, Token: Token}
}

// Env is the environment that points the oz binary at s.
func (s *Server) Env() []string {
	return []string{
		config.EnvAddr + "=" + s.Addr,
		config.EnvCAFile + "=" + s.CAFile,
		config.EnvToken + "=" + Token,
	}
}

// SelfSigned returns a certificate for 127.0.0.1 and localhost that is its
// own CA, and the CA's PEM for the client to trust: for tests that serve
// TLS on loopback without ozfake's services.
func SelfSigned(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "oz test gateway"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

func unimplemented(method string) error {
	return status.Errorf(codes.Unimplemented, "fake: %s not set", method)
}

// CallsTo returns the calls of one method, named by its short name
// ("CreateSecret").
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if i := strings.LastIndexByte(c.Method, '/'); i >= 0 && c.Method[i+1:] == method {
			out = append(out, c)
		}
	}
	return out
}
