package edge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

func TestGRPCProxiesToOwningBackend(t *testing.T) {
	e := newEnv(t)
	conn := e.gw.Dial(t)
	secrets := secretsv1.NewSecretServiceClient(conn)
	directory := scopev1.NewDirectoryServiceClient(conn)
	tokens := scopev1.NewTokenServiceClient(conn)

	tests := []struct {
		name       string
		call       func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error)
		toStore    bool
		wantMethod string
		wantReq    proto.Message
		wantResp   proto.Message
	}{
		{
			name: "CreateSecret",
			call: func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error) {
				return secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte("v\x00\xff"), Description: "d"}, opts...)
			},
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/CreateSecret",
			wantReq:  &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte("v\x00\xff"), Description: "d"},
			wantResp: &secretsv1.CreateSecretResponse{Secret: func() *secretsv1.Secret { s := secretFor("teams/acme/secrets/API_KEY"); s.Description = "d"; return s }()},
		},
		{
			name: "ListSecrets",
			call: func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error) {
				return secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "users/me", PageSize: 2}, opts...)
			},
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/ListSecrets",
			wantReq: &secretsv1.ListSecretsRequest{Parent: "users/me", PageSize: 2},
			wantResp: &secretsv1.ListSecretsResponse{
				Secrets:       []*secretsv1.Secret{secretFor("users/me/secrets/A"), secretFor("users/me/secrets/B")},
				NextPageToken: "next",
			},
		},
		{
			name: "GetCaller",
			call: func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error) {
				return directory.GetCaller(ctx, &scopev1.GetCallerRequest{}, opts...)
			},
			wantMethod: "/oz.scope.v1.DirectoryService/GetCaller",
			wantReq:    &scopev1.GetCallerRequest{},
			wantResp:   &scopev1.GetCallerResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice"}},
		},
		{
			name: "RevokeToken",
			call: func(ctx context.Context, opts ...grpc.CallOption) (proto.Message, error) {
				return tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: "tokens/t1"}, opts...)
			},
			wantMethod: "/oz.scope.v1.TokenService/RevokeToken",
			wantReq:    &scopev1.RevokeTokenRequest{Name: "tokens/t1"},
			wantResp:   &scopev1.RevokeTokenResponse{Token: &scopev1.Token{Name: "tokens/t1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.reset()
			e.resolver.reset()
			ctx := outgoing(t.Context(), "x-oz-client", "cli", "x-custom", "kept", "x-custom-bin", "\x00\x01")
			var header, trailer metadata.MD
			resp, err := tt.call(ctx, grpc.Header(&header), grpc.Trailer(&trailer))
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if !proto.Equal(resp, tt.wantResp) {
				t.Errorf("response: got %v, want %v", resp, tt.wantResp)
			}

			owner, other := e.resolver, e.store
			if tt.toStore {
				owner, other = e.store, e.resolver
			}
			if n := len(other.recorded()); n != 0 {
				t.Errorf("calls on the other backend: got %d, want 0", n)
			}
			c := owner.only(t)
			if c.method != tt.wantMethod {
				t.Errorf("method: got %s, want %s", c.method, tt.wantMethod)
			}
			if !proto.Equal(c.req, tt.wantReq) {
				t.Errorf("request: got %v, want %v", c.req, tt.wantReq)
			}
			checkMD(t, c.md, "authorization", bearer)
			checkMD(t, c.md, "x-oz-client", "cli") // a native client names itself
			checkMD(t, c.md, "x-custom", "kept")
			checkMD(t, c.md, "x-custom-bin", "\x00\x01")
			checkMD(t, c.md, "x-request-id", first(header["x-request-id"]))
			if got := c.md.Get("x-forwarded-for"); len(got) != 1 || !strings.HasSuffix(got[0], "127.0.0.1") {
				t.Errorf("x-forwarded-for: got %q, want the caller's address", got)
			}
			// The backend's own header and trailer come back unchanged.
			checkMD(t, header, "x-backend-header", "h1")
			checkMD(t, trailer, "x-backend-trailer", "t1")
		})
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func TestGRPCStatusPassesThroughUnchanged(t *testing.T) {
	badName, err := status.New(codes.InvalidArgument, "secret_id: must match [A-Za-z_][A-Za-z0-9_]*").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "secret_id", Description: "must match [A-Za-z_][A-Za-z0-9_]*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		st   *status.Status
	}{
		{"InvalidArgumentWithDetails", badName},
		{"NotFound", status.New(codes.NotFound, "secret teams/acme/secrets/X not found")},
		{"PermissionDenied", status.New(codes.PermissionDenied, "not an admin of teams/acme")},
		{"Unauthenticated", status.New(codes.Unauthenticated, "token expired")},
		{"FailedPrecondition", status.New(codes.FailedPrecondition, "etag mismatch")},
		{"Internal", status.New(codes.Internal, "boom")},
	}
	e := newEnv(t)
	client := secretsv1.NewSecretServiceClient(e.gw.Dial(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.reset()
			e.store.failWith("/oz.secrets.v1.SecretService/DeleteSecret", tt.st.Err())
			var trailer metadata.MD
			_, err := client.DeleteSecret(outgoing(t.Context()), &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/X"}, grpc.Trailer(&trailer))
			got := status.Convert(err)
			if !proto.Equal(got.Proto(), tt.st.Proto()) {
				t.Errorf("status: got %v, want %v", got.Proto(), tt.st.Proto())
			}
			checkMD(t, trailer, "x-backend-trailer", "t1")
		})
	}
}

func TestGRPCRefusesInternalMethods(t *testing.T) {
	e := newEnv(t)
	conn := e.gw.Dial(t)

	_, err := internalapiv1.NewAuthServiceClient(conn).Authenticate(outgoing(t.Context()), &internalapiv1.AuthenticateRequest{BearerToken: "oz_x"})
	if got, want := status.Code(err), codes.PermissionDenied; got != want {
		t.Fatalf("code: got %v, want %v", got, want)
	}
	if got, want := status.Convert(err).Message(), "internal method; not routed"; got != want {
		t.Errorf("message: got %q, want %q", got, want)
	}
	if n := len(e.resolver.recorded()) + len(e.store.recorded()); n != 0 {
		t.Errorf("backend calls: got %d, want 0", n)
	}

	// The refusal is the gateway's: the resolver does serve the method to a
	// service presenting a certificate of the CA.
	cert := e.pki.Issue(t, "secretstore")
	direct := edgetest.Dial(t, e.resolverAddr, e.pki.ClientTLS(&cert))
	if _, err := internalapiv1.NewAuthServiceClient(direct).Authenticate(t.Context(), &internalapiv1.AuthenticateRequest{}); err != nil {
		t.Fatalf("direct Authenticate: %v", err)
	}
}

func TestGRPCUnroutedMethods(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		wantCode codes.Code
	}{
		{"UnknownPackage", "/oz.unknown.v1.ThingService/Do", codes.Unimplemented},
		{"ForeignPackage", "/grpc.testing.TestService/EmptyCall", codes.Unimplemented},
		{"VersionPrefixIsNotAMatch", "/oz.secrets.v10.SecretService/GetSecret", codes.Unimplemented},
		{"UnknownMethodOfRoutedPackage", "/oz.secrets.v1.SecretService/NoSuchMethod", codes.Unimplemented}, // the backend's answer
		{"InternalAPIPackage", "/oz.internalapi.v1.RunSecretsService/SealRunSecrets", codes.PermissionDenied},
		{"InternalPackage", "/oz.internal.v1.AuthService/Authenticate", codes.PermissionDenied},
		{"InternalSegment", "/oz.secrets.internal.v1.KeyService/Unwrap", codes.PermissionDenied},
		{"UnconfiguredBackend", "/oz.audit.v1.AuditService/ListEvents", codes.Unavailable},
	}
	e := newEnv(t)
	conn := e.gw.Dial(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := conn.Invoke(outgoing(t.Context()), tt.method, &emptypb.Empty{}, &emptypb.Empty{})
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code: got %v (%v), want %v", got, err, tt.wantCode)
			}
		})
	}
	if n := len(e.resolver.recorded()); n != 0 {
		t.Errorf("resolver calls: got %d, want 0", n)
	}
	for _, c := range e.store.recorded() {
		if strings.Contains(c.method, "internal") {
			t.Errorf("secretstore received %s, want no internal call", c.method)
		}
	}
}

func TestGRPCBidirectionalStream(t *testing.T) {
	e := newEnv(t)
	conn := e.gw.Dial(t)
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

	t.Run("PingPong", func(t *testing.T) {
		cs, err := conn.NewStream(outgoing(t.Context()), desc, echoMethod)
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		// The header arrives before any message is sent: the proxy
		// forwards it as soon as the backend sends it.
		hdr, err := cs.Header()
		if err != nil {
			t.Fatalf("Header: %v", err)
		}
		checkMD(t, hdr, "x-echo-header", "ready")
		// One message at a time, each answered before the next is sent:
		// nothing may wait for the end of the stream.
		for _, v := range []string{"a", "b", "c"} {
			if err := cs.SendMsg(wrapperspb.String(v)); err != nil {
				t.Fatalf("SendMsg: %v", err)
			}
			var got wrapperspb.StringValue
			if err := cs.RecvMsg(&got); err != nil {
				t.Fatalf("RecvMsg: %v", err)
			}
			if want := "echo:" + v; got.Value != want {
				t.Errorf("message: got %q, want %q", got.Value, want)
			}
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := cs.RecvMsg(&wrapperspb.StringValue{}); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: got %v, want io.EOF", err)
		}
		checkMD(t, cs.Trailer(), "x-echo-trailer", "done")
	})

	t.Run("ErrorMidStream", func(t *testing.T) {
		cs, err := conn.NewStream(outgoing(t.Context()), desc, echoMethod)
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		for _, v := range []string{"a", "fail"} {
			if err := cs.SendMsg(wrapperspb.String(v)); err != nil {
				t.Fatalf("SendMsg: %v", err)
			}
		}
		var got wrapperspb.StringValue
		if err := cs.RecvMsg(&got); err != nil || got.Value != "echo:a" {
			t.Fatalf("first message: got %q, %v; want echo:a", got.Value, err)
		}
		err = cs.RecvMsg(&got)
		want, _ := status.New(codes.Aborted, "echo aborted").WithDetails(wrapperspb.String("why"))
		if !proto.Equal(status.Convert(err).Proto(), want.Proto()) {
			t.Errorf("status: got %v, want %v", status.Convert(err).Proto(), want.Proto())
		}
	})

	t.Run("CallerCancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(outgoing(t.Context()))
		cs, err := conn.NewStream(ctx, desc, echoMethod)
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		if err := cs.SendMsg(wrapperspb.String("a")); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := cs.RecvMsg(&wrapperspb.StringValue{}); status.Code(err) != codes.Canceled {
			// Either the answer raced the cancel, or the stream is cancelled.
			if err != nil {
				t.Errorf("after cancel: got %v, want Canceled", err)
			}
		}
	})
}

func TestGRPCRequestID(t *testing.T) {
	tests := []struct {
		name   string
		sent   string
		wantAs bool
	}{
		{name: "Kept", sent: "req-77", wantAs: true},
		{name: "GeneratedWhenAbsent"},
		{name: "ReplacedWhenInvalid", sent: "has space"},
	}
	e := newEnv(t)
	client := scopev1.NewDirectoryServiceClient(e.gw.Dial(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.resolver.reset()
			ctx := outgoing(t.Context())
			if tt.sent != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", tt.sent)
			}
			var header metadata.MD
			if _, err := client.GetCaller(ctx, &scopev1.GetCallerRequest{}, grpc.Header(&header)); err != nil {
				t.Fatal(err)
			}
			ids := header.Get("x-request-id")
			if len(ids) != 1 {
				t.Fatalf("x-request-id in response header: got %q, want one", ids)
			}
			if tt.wantAs && ids[0] != tt.sent {
				t.Errorf("x-request-id: got %q, want %q", ids[0], tt.sent)
			}
			if !tt.wantAs && (ids[0] == "" || ids[0] == tt.sent) {
				t.Errorf("x-request-id: got %q, want a new id", ids[0])
			}
			checkMD(t, e.resolver.only(t).md, "x-request-id", ids[0])
		})
	}

	t.Run("OnRefusedCalls", func(t *testing.T) {
		var header metadata.MD
		_, err := internalapiv1.NewAuthServiceClient(e.gw.Dial(t)).Authenticate(outgoing(t.Context()), &internalapiv1.AuthenticateRequest{}, grpc.Header(&header))
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("code: got %v, want PermissionDenied", status.Code(err))
		}
		if ids := header.Get("x-request-id"); len(ids) != 1 || ids[0] == "" {
			t.Errorf("x-request-id: got %q, want one", ids)
		}
	})
}

func TestGRPCHealthAndReflection(t *testing.T) {
	e := newEnv(t)
	conn := e.gw.Dial(t)

	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	if got, want := resp.GetStatus(), healthpb.HealthCheckResponse_SERVING; got != want {
		t.Errorf("health: got %v, want %v", got, want)
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "oz.secrets.v1.SecretService", "oz.scope.v1.DirectoryService", "oz.scope.v1.TokenService"} {
		if !slices.Contains(names, want) {
			t.Errorf("services: got %v, want %s among them", names, want)
		}
	}
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "internal") }) {
		t.Errorf("services: got %v, want no internal service", names)
	}
	file := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "oz.secrets.v1.SecretService"}})
	if len(file.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("descriptor of oz.secrets.v1.SecretService: got %v, want a file", file)
	}
}

func TestGRPCBalancesAcrossAddresses(t *testing.T) {
	pki := edgetest.NewPKI(t)
	var backends [2]*backend
	var addrs []string
	for i := range backends {
		backends[i] = &backend{}
		addrs = append(addrs, edgetest.StartBackend(t, pki, func(s *grpc.Server) {
			secretsv1.RegisterSecretServiceServer(s, secretService{})
		}, grpc.UnaryInterceptor(backends[i].intercept)))
	}
	resolverAddr := edgetest.StartBackend(t, pki, func(s *grpc.Server) {
		scopev1.RegisterDirectoryServiceServer(s, directoryService{})
	})
	gw := edgetest.StartGateway(t, pki, edge.Config{Backends: map[string]string{
		edge.SecretStore: addrs[0] + ", " + addrs[1],
		edge.Resolver:    resolverAddr,
	}})
	client := secretsv1.NewSecretServiceClient(gw.Dial(t))

	// round_robin only picks among connected addresses, and the second may
	// connect after the first: call until both have served, or give up.
	deadline := time.Now().Add(10 * time.Second)
	for len(backends[0].recorded()) == 0 || len(backends[1].recorded()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("calls per backend: got %d and %d, want both > 0", len(backends[0].recorded()), len(backends[1].recorded()))
		}
		if _, err := client.GetSecret(outgoing(t.Context()), &secretsv1.GetSecretRequest{Name: "teams/a/secrets/X"}); err != nil {
			t.Fatal(err)
		}
	}
}

// A replica whose health service says NOT_SERVING (starting, or draining
// at shutdown) gets no calls; once it serves again it gets its share.
func TestGRPCSkipsUnhealthyReplicas(t *testing.T) {
	pki := edgetest.NewPKI(t)
	var backends [2]*backend
	var healths [2]*health.Server
	var addrs []string
	for i := range backends {
		backends[i], healths[i] = &backend{}, health.NewServer()
		addrs = append(addrs, edgetest.StartBackend(t, pki, func(s *grpc.Server) {
			secretsv1.RegisterSecretServiceServer(s, secretService{})
			healthpb.RegisterHealthServer(s, healths[i])
		}, grpc.UnaryInterceptor(backends[i].intercept)))
	}
	healths[1].SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	resolverAddr := edgetest.StartBackend(t, pki, func(s *grpc.Server) {
		scopev1.RegisterDirectoryServiceServer(s, directoryService{})
	})
	gw := edgetest.StartGateway(t, pki, edge.Config{Backends: map[string]string{
		edge.SecretStore: addrs[0] + "," + addrs[1],
		edge.Resolver:    resolverAddr,
	}})
	client := secretsv1.NewSecretServiceClient(gw.Dial(t))
	get := func() {
		t.Helper()
		if _, err := client.GetSecret(outgoing(t.Context()), &secretsv1.GetSecretRequest{Name: "teams/a/secrets/X"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		get()
	}
	if n0, n1 := len(backends[0].recorded()), len(backends[1].recorded()); n0 != 50 || n1 != 0 {
		t.Fatalf("with replica 1 NOT_SERVING: calls %d and %d, want 50 and 0", n0, n1)
	}

	healths[1].SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	deadline := time.Now().Add(10 * time.Second)
	for len(backends[1].recorded()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica 1 got no calls within 10s of serving again")
		}
		get()
	}
}

func TestGRPCBackendsAreVerified(t *testing.T) {
	tests := []struct {
		name      string
		configure func(c *edge.Config, other *edgetest.PKI)
	}{
		{
			name: "BackendFromAnotherCA",
			configure: func(c *edge.Config, other *edgetest.PKI) {
				c.BackendCAs = other.Pool
			},
		},
		{
			name: "GatewayCertFromAnotherCA",
			configure: func(c *edge.Config, other *edgetest.PKI) {
				c.Certificate = other.Issue(t, "gateway")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := edgetest.NewPKI(t)
			e := newEnv(t, func(c *edge.Config) { tt.configure(c, other) })
			// The caller trusts both CAs: only the gateway–backend hop is
			// under test.
			trust := x509.NewCertPool()
			trust.AppendCertsFromPEM(e.pki.CAPEM)
			trust.AppendCertsFromPEM(other.CAPEM)
			conn := edgetest.Dial(t, e.gw.Addr, &tls.Config{RootCAs: trust})
			client := secretsv1.NewSecretServiceClient(conn)
			_, err := client.GetSecret(outgoing(t.Context()), &secretsv1.GetSecretRequest{Name: "teams/a/secrets/X"})
			if got := status.Code(err); got != codes.Unavailable {
				t.Errorf("code: got %v (%v), want Unavailable", got, err)
			}
			if n := len(e.store.recorded()); n != 0 {
				t.Errorf("backend calls: got %d, want 0", n)
			}
		})
	}
}
