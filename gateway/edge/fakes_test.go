package edge_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// call is one call a fake backend received.
type call struct {
	method string
	md     metadata.MD
	req    proto.Message
}

// backend records what a fake backend receives, and can be told to fail a
// method, so tests check what crossed the gateway, on the backend's side.
type backend struct {
	mu    sync.Mutex
	calls []call
	errs  map[string]error // by full method name
}

// intercept records every unary call, then fails it if told to. The
// backend also sends a header and a trailer, which the gateway must pass
// back.
func (b *backend) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	b.calls = append(b.calls, call{method: info.FullMethod, md: md.Copy(), req: proto.Clone(req.(proto.Message))})
	err := b.errs[info.FullMethod]
	b.mu.Unlock()
	if err == errHang {
		<-ctx.Done() // a hung backend: it never answers
		return nil, ctx.Err()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-backend-header", "h1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-backend-trailer", "t1"))
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// errHang, given to failWith, makes the backend hang on the method until
// the call's deadline passes or it is cancelled, answering nothing.
var errHang = errors.New("hang")

func (b *backend) failWith(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.errs == nil {
		b.errs = make(map[string]error)
	}
	b.errs[method] = err
}

func (b *backend) recorded() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]call(nil), b.calls...)
}

func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls, b.errs = nil, nil
}

// only returns the one call the backend received, failing the test if it
// received none or several.
func (b *backend) only(t *testing.T) call {
	t.Helper()
	calls := b.recorded()
	if len(calls) != 1 {
		var names []string
		for _, c := range calls {
			names = append(names, c.method)
		}
		t.Fatalf("backend calls: got %d %v, want 1", len(calls), names)
	}
	return calls[0]
}

// Canned responses. They say which request they answer so that a test can
// see the response came back intact.

type secretService struct {
	secretsv1.UnimplementedSecretServiceServer
}

var _ secretsv1.SecretServiceServer = secretService{}

func secretFor(name string) *secretsv1.Secret {
	owner, id, _ := strings.Cut(name, "/secrets/")
	return &secretsv1.Secret{
		Name:         name,
		SecretId:     id,
		Scope:        secretsv1.Scope_SCOPE_TEAM,
		Owner:        owner,
		ValueVersion: 1,
		CreateTime:   timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Etag:         "etag-1",
	}
}

func (secretService) CreateSecret(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	s := secretFor(r.Parent + "/secrets/" + r.SecretId)
	s.Description = r.Description
	return &secretsv1.CreateSecretResponse{Secret: s}, nil
}

func (secretService) GetSecret(_ context.Context, r *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error) {
	return &secretsv1.GetSecretResponse{Secret: secretFor(r.Name)}, nil
}

func (secretService) ListSecrets(_ context.Context, r *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	return &secretsv1.ListSecretsResponse{
		Secrets:       []*secretsv1.Secret{secretFor(r.Parent + "/secrets/A"), secretFor(r.Parent + "/secrets/B")},
		NextPageToken: "next",
	}, nil
}

func (secretService) UpdateSecret(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
	s := secretFor(r.Name)
	s.Description, s.ValueVersion = r.Description, 2
	return &secretsv1.UpdateSecretResponse{Secret: s}, nil
}

func (secretService) DeleteSecret(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
	return &secretsv1.DeleteSecretResponse{}, nil
}

func (secretService) ListAvailableSecrets(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
	return &secretsv1.ListAvailableSecretsResponse{Secrets: []*secretsv1.Secret{secretFor("users/alice/secrets/MINE")}}, nil
}

type directoryService struct {
	scopev1.UnimplementedDirectoryServiceServer
}

var _ scopev1.DirectoryServiceServer = directoryService{}

func (directoryService) GetTeam(_ context.Context, r *scopev1.GetTeamRequest) (*scopev1.GetTeamResponse, error) {
	return &scopev1.GetTeamResponse{Team: &scopev1.Team{Name: r.Name, TeamId: strings.TrimPrefix(r.Name, "teams/")}}, nil
}

func (directoryService) GetCaller(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	return &scopev1.GetCallerResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice"}}, nil
}

func (directoryService) DeleteMembership(context.Context, *scopev1.DeleteMembershipRequest) (*scopev1.DeleteMembershipResponse, error) {
	return &scopev1.DeleteMembershipResponse{}, nil
}

type tokenService struct {
	scopev1.UnimplementedTokenServiceServer
}

var _ scopev1.TokenServiceServer = tokenService{}

func (tokenService) CreateToken(_ context.Context, r *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
	return &scopev1.CreateTokenResponse{Token: &scopev1.Token{Name: "tokens/t1", TokenId: "t1", Principal: r.Principal}, BearerToken: "oz_new"}, nil
}

func (tokenService) RevokeToken(_ context.Context, r *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error) {
	return &scopev1.RevokeTokenResponse{Token: &scopev1.Token{Name: r.Name}}, nil
}

// authService is the internal service the resolver serves to the other
// services; the gateway must never forward to it.
type authService struct {
	internalapiv1.UnimplementedAuthServiceServer
}

var _ internalapiv1.AuthServiceServer = authService{}

func (authService) Authenticate(context.Context, *internalapiv1.AuthenticateRequest) (*internalapiv1.AuthenticateResponse, error) {
	return &internalapiv1.AuthenticateResponse{Principal: &scopev1.Principal{Name: "users/alice"}}, nil
}

// echoMethod is a bidirectional streaming method in a routed package, to
// check the proxy streams: the API has no streaming method yet.
const echoMethod = "/oz.secrets.v1.EchoTest/Echo"

var echoDesc = grpc.ServiceDesc{
	ServiceName: "oz.secrets.v1.EchoTest",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Echo",
		ServerStreams: true,
		ClientStreams: true,
		Handler:       echo,
	}},
}

// echo sends a header at once, answers each message with "echo:" + it, and
// fails with Aborted (with details) when it receives "fail".
func echo(_ any, ss grpc.ServerStream) error {
	if err := ss.SendHeader(metadata.Pairs("x-echo-header", "ready")); err != nil {
		return err
	}
	for {
		var in wrapperspb.StringValue
		if err := ss.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(metadata.Pairs("x-echo-trailer", "done"))
				return nil
			}
			return err
		}
		if in.Value == "fail" {
			st, _ := status.New(codes.Aborted, "echo aborted").WithDetails(wrapperspb.String("why"))
			return st.Err()
		}
		if err := ss.SendMsg(wrapperspb.String("echo:" + in.Value)); err != nil {
			return err
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a gateway in front of a secretstore and a resolver, all real
// servers on loopback with mutual TLS between the gateway and backends.
type env struct {
	pki          *edgetest.PKI
	store        *backend // secretstore: SecretService, EchoTest
	resolver     *backend // resolver: the oz.scope.v1 services, AuthService
	storeAddr    string
	resolverAddr string
	gw           *edgetest.Gateway
	logs         *syncBuffer
	http         *http.Client
}

func newEnv(t *testing.T, configure ...func(*edge.Config)) *env {
	t.Helper()
	e := &env{pki: edgetest.NewPKI(t), store: &backend{}, resolver: &backend{}, logs: &syncBuffer{}}
	e.storeAddr = edgetest.StartBackend(t, e.pki, func(s *grpc.Server) {
		secretsv1.RegisterSecretServiceServer(s, secretService{})
		internalapiv1.RegisterRunSecretsServiceServer(s, internalapiv1.UnimplementedRunSecretsServiceServer{})
		s.RegisterService(&echoDesc, struct{}{})
	}, grpc.UnaryInterceptor(e.store.intercept))
	e.resolverAddr = edgetest.StartBackend(t, e.pki, func(s *grpc.Server) {
		scopev1.RegisterDirectoryServiceServer(s, directoryService{})
		scopev1.RegisterTokenServiceServer(s, tokenService{})
		internalapiv1.RegisterAuthServiceServer(s, authService{})
		// Registered but not implemented: enough to see REST reach them.
		scopev1.RegisterAgentServiceServer(s, scopev1.UnimplementedAgentServiceServer{})
		scopev1.RegisterEnvironmentServiceServer(s, scopev1.UnimplementedEnvironmentServiceServer{})
		scopev1.RegisterRunnerServiceServer(s, scopev1.UnimplementedRunnerServiceServer{})
		scopev1.RegisterRunServiceServer(s, scopev1.UnimplementedRunServiceServer{})
	}, grpc.UnaryInterceptor(e.resolver.intercept))

	cfg := edge.Config{
		Backends: map[string]string{
			edge.SecretStore: e.storeAddr,
			edge.Resolver:    e.resolverAddr,
		},
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.gw = edgetest.StartGateway(t, e.pki, cfg)
	e.http = e.gw.HTTPClient(t)
	return e
}

// do sends a REST request to the gateway and returns the response, with
// its body read.
func (e *env) do(t *testing.T, method, path, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return do(t, e.http, method, e.gw.URL+path, body, header)
}

func do(t *testing.T, c *http.Client, method, url, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// bearer is the token every test caller presents.
const bearer = "Bearer oz_test_token"

func authHeader() http.Header { return http.Header{"Authorization": {bearer}} }

func outgoing(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", bearer}, kv...)...)
}
