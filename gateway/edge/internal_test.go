package edge

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/ozsecrets/oz/lib/reqmeta"
)

func TestRouting(t *testing.T) {
	tests := []struct {
		method       string
		wantInternal bool
		wantBackend  string
	}{
		{"/oz.secrets.v1.SecretService/CreateSecret", false, SecretStore},
		{"/oz.scope.v1.DirectoryService/GetCaller", false, Resolver},
		{"/oz.scope.v1.TokenService/CreateToken", false, Resolver},
		{"/oz.audit.v1.AuditService/ListEvents", false, Audit},
		{"/oz.internalapi.v1.AuthService/Authenticate", true, ""},
		{"/oz.internalapi.v1.RunSecretsService/SealRunSecrets", true, ""},
		{"/oz.internal.v1.AuthService/Authenticate", true, ""},
		{"/oz.scope.v1.InternalService/Get", false, Resolver}, // a service name is not a package
		{"/oz.internal.v2.Anything/Else", true, ""},
		{"/oz.secrets.internal.v1.KeyService/Unwrap", true, ""},
		{"/oz.secrets.v10.SecretService/GetSecret", false, ""},
		{"/oz.secretsv1.SecretService/GetSecret", false, ""},
		{"/grpc.health.v1.Health/Check", false, ""},
		{"/internal.v1.Foo/Bar", false, ""}, // not ours: unrouted, so Unimplemented anyway
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.method, "/"), func(t *testing.T) {
			if got := isInternal(tt.method); got != tt.wantInternal {
				t.Errorf("isInternal: got %v, want %v", got, tt.wantInternal)
			}
			if got := backendFor(tt.method); got != tt.wantBackend && !tt.wantInternal {
				t.Errorf("backendFor: got %q, want %q", got, tt.wantBackend)
			}
		})
	}
}

func TestRESTServicesAreRouted(t *testing.T) {
	for _, svc := range restServices {
		if svc.backend() == "" {
			t.Errorf("%s: no route, want one", svc.name)
		}
		if isInternal("/" + svc.name + "/X") {
			t.Errorf("%s: internal, want public", svc.name)
		}
	}
}

func TestIsGRPCContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"application/grpc; charset=utf-8", true},
		{"Application/GRPC", true},
		{"application/grpc-web", false},
		{"application/grpc-web+proto", false},
		{"application/json", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isGRPCContentType(tt.ct); got != tt.want {
			t.Errorf("isGRPCContentType(%q): got %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		in       string
		wantKept bool
	}{
		{"abc-123", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"a b", false},
		{"line\nbreak", false},
		{"caf\u00e9", false},
	}
	for _, tt := range tests {
		got := requestID(tt.in)
		if kept := got == tt.in; kept != tt.wantKept {
			t.Errorf("requestID(%q): got %q, kept %v, want kept %v", tt.in, got, kept, tt.wantKept)
		}
		if !reqmeta.ValidRequestID(got) {
			t.Errorf("requestID(%q): got invalid id %q", tt.in, got)
		}
	}
	if a, b := requestID(""), requestID(""); a == b {
		t.Errorf("two generated ids: got %q twice, want different", a)
	}
}

func TestForwardMetadata(t *testing.T) {
	in := metadata.MD{
		":authority":           {"gateway:7443"},
		"content-type":         {"application/grpc"},
		"user-agent":           {"grpc-go/1.85.0"},
		"grpc-timeout":         {"5S"},
		"grpc-accept-encoding": {"gzip"},
		"authorization":        {"Bearer oz_x"},
		"x-oz-client":          {"cli"},
		"x-request-id":         {"from-caller"},
		"x-forwarded-for":      {"10.0.0.1"},
		"x-oz-peer":            {"198.51.100.1"},
		"trace-bin":            {"\x00"},
	}
	ctx := withRequestID(context.Background(), "rid")
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5555}})
	got := forwardMetadata(ctx, in)
	want := metadata.MD{
		"authorization":   {"Bearer oz_x"},
		"x-oz-client":     {"cli"},
		"x-request-id":    {"rid"},
		"x-forwarded-for": {"10.0.0.1, 192.0.2.7"},
		"x-oz-peer":       {"192.0.2.7"},
		"trace-bin":       {"\x00"},
	}
	if len(got) != len(want) {
		t.Errorf("forwarded keys: got %v, want %v", got, want)
	}
	for k, v := range want {
		if g := got.Get(k); len(g) != len(v) || g[0] != v[0] {
			t.Errorf("%s: got %q, want %q", k, g, v)
		}
	}
}

// A chain's verification may take longer than an ordinary call; every
// other call keeps the configured bound.
func TestBackendTimeout(t *testing.T) {
	if got := backendTimeout(auditv1.AuditService_VerifyChain_FullMethodName, DefaultBackendTimeout); got != LongCallTimeout {
		t.Errorf("VerifyChain: %v, want %v", got, LongCallTimeout)
	}
	if got := backendTimeout(auditv1.AuditService_ListEvents_FullMethodName, DefaultBackendTimeout); got != DefaultBackendTimeout {
		t.Errorf("ListEvents: %v, want %v", got, DefaultBackendTimeout)
	}
	if got := backendTimeout(auditv1.AuditService_VerifyChain_FullMethodName, time.Hour); got != time.Hour {
		t.Errorf("VerifyChain with a longer configured bound: %v", got)
	}
}
