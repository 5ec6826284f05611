package main

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/pki"
)

// seen is a call a fake service received: method, the caller's
// certificate and its bearer token.
type seen struct{ method, peer, authorization string }

type recorder struct {
	mu    sync.Mutex
	calls []seen
}

func (r *recorder) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s := seen{method: info.FullMethod, peer: auth.PeerService(ctx)}
	if v := md.Get("authorization"); len(v) > 0 {
		s.authorization = v[0]
	}
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
	return handler(ctx, req)
}

func (r *recorder) recorded() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.calls...)
}

// startFake serves what register adds with the certificate of name,
// requiring client certificates, recording every call.
func startFake(t *testing.T, dir pki.Dir, name string, rec *recorder, register func(*grpc.Server)) string {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(dir.For(name), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)), grpc.UnaryInterceptor(rec.intercept))
	register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

type fakeSecrets struct {
	secretsv1.UnimplementedSecretServiceServer
}

func (fakeSecrets) ListSecrets(_ context.Context, r *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	if r.GetParent() == "users/me" {
		return &secretsv1.ListSecretsResponse{}, nil
	}
	return &secretsv1.ListSecretsResponse{Secrets: []*secretsv1.Secret{{
		Name: r.GetParent() + "/secrets/API_KEY", SecretId: "API_KEY", Scope: secretsv1.Scope_SCOPE_TEAM, ValueVersion: 1,
	}}}, nil
}

type fakeAgents struct {
	scopev1.UnimplementedAgentServiceServer
}

func (fakeAgents) ListAgents(_ context.Context, r *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
	return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{{Name: r.GetParent() + "/agents/deployer", SecretNames: []string{"API_KEY"}}}}, nil
}

type fakeEnvironments struct {
	scopev1.UnimplementedEnvironmentServiceServer
}

func (fakeEnvironments) ListEnvironments(context.Context, *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
	return &scopev1.ListEnvironmentsResponse{}, nil
}

// TestServeReview: ReviewSecrets reads from --secretstore-addr and
// --resolver-addr, presenting the audit certificate and the caller's own
// bearer token.
func TestServeReview(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolverCalls, storeCalls := &recorder{}, &recorder{}
	resolver := startFake(t, dir, "resolver", resolverCalls, func(s *grpc.Server) {
		internalapiv1.RegisterAuthServiceServer(s, fakeResolver{})
		scopev1.RegisterAgentServiceServer(s, fakeAgents{})
		scopev1.RegisterEnvironmentServiceServer(s, fakeEnvironments{})
	})
	store := startFake(t, dir, "secretstore", storeCalls, func(s *grpc.Server) {
		secretsv1.RegisterSecretServiceServer(s, fakeSecrets{})
	})
	d := startDaemon(t, "--data-dir", data, "--resolver-addr", resolver, "--secretstore-addr", store)

	resp, err := dial(t, dir, "gateway", d.addrs.GRPC.String()).audit.ReviewSecrets(as("tok-alice"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSecrets()) != 1 || resp.GetSecrets()[0].GetName() != "teams/acme/secrets/API_KEY" ||
		len(resp.GetSecrets()[0].GetAgents()) != 1 {
		t.Errorf("got %v, want API_KEY referenced by deployer", resp.GetSecrets())
	}
	want := map[string]bool{
		"/oz.secrets.v1.SecretService/ListSecrets":         true,
		"/oz.scope.v1.AgentService/ListAgents":             true,
		"/oz.scope.v1.EnvironmentService/ListEnvironments": true,
		"/oz.internalapi.v1.AuthService/Authenticate":      false, // as the audit service itself
	}
	for _, c := range append(resolverCalls.recorded(), storeCalls.recorded()...) {
		asCaller, ok := want[c.method]
		if !ok {
			t.Errorf("unexpected call %s", c.method)
			continue
		}
		if c.peer != "audit" {
			t.Errorf("%s: peer %q, want the audit certificate", c.method, c.peer)
		}
		if wantAuth := map[bool]string{true: "Bearer tok-alice", false: ""}[asCaller]; c.authorization != wantAuth {
			t.Errorf("%s: authorization %q, want %q", c.method, c.authorization, wantAuth)
		}
	}
	if n := len(storeCalls.recorded()); n != 2 { // the team's and the caller's own
		t.Errorf("secretstore calls: got %d, want 2", n)
	}
}
