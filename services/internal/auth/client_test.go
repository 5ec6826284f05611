package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/ozsecrets/oz/services/internal/auth"
)

// from returns the context of a request from addr, with the verified
// certificate cert ("" none) and metadata md.
func from(addr, cert string, md metadata.MD) context.Context {
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(addr), Port: 4242}}
	if cert != "" {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cert}}
		p.AuthInfo = credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}}
	}
	return peer.NewContext(metadata.NewIncomingContext(context.Background(), md), p)
}

func TestRequestClient(t *testing.T) {
	user := &auth.Principal{Kind: auth.KindUser, Name: "users/alice"}
	runner := &auth.Principal{Kind: auth.KindRunner, Name: "runners/r1"}
	agent := &auth.Principal{Kind: auth.KindAgent, Name: "teams/acme/agents/a"}
	claim := func(c string) metadata.MD { return metadata.Pairs("x-oz-client", c) }
	for _, tt := range []struct {
		name string
		ctx  context.Context
		p    *auth.Principal
		want string
	}{
		{"InProcess", context.Background(), user, ""},
		{"NoClaim", from("127.0.0.1", "gateway", nil), user, "grpc"},
		{"CLI", from("127.0.0.1", "gateway", claim("cli")), user, "cli"},
		{"Web", from("127.0.0.1", "gateway", claim("web")), user, "web"},
		{"PersonClaimsRunner", from("127.0.0.1", "gateway", claim("runner")), user, "grpc"},
		{"RunnerClaimsCLI", from("127.0.0.1", "gateway", claim("cli")), runner, "runner"},
		{"RunnerNoClaim", from("127.0.0.1", "gateway", nil), runner, "runner"},
		{"AgentCLI", from("127.0.0.1", "gateway", claim("cli")), agent, "cli"},
		{"RESTFromGateway", from("127.0.0.1", "gateway", claim("rest")), user, "rest"},
		{"RESTFromAnotherService", from("127.0.0.1", "resolver", claim("rest")), user, "grpc"},
		{"RESTWithoutCertificate", from("127.0.0.1", "", claim("rest")), user, "grpc"},
		{"Unknown", from("127.0.0.1", "gateway", claim("curl/8.0")), user, "grpc"},
		{"ControlCharacters", from("127.0.0.1", "gateway", claim("cli\n")), user, "grpc"},
		{"Unauthenticated", from("127.0.0.1", "gateway", claim("cli")), nil, "cli"},
		{"UnauthenticatedRunnerClaim", from("127.0.0.1", "gateway", claim("runner")), nil, "grpc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.RequestClient(tt.ctx, tt.p); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestSource(t *testing.T) {
	relayed := func(addr string) metadata.MD { return metadata.Pairs("x-oz-peer", addr) }
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"InProcess", context.Background(), ""},
		{"Direct", from("192.0.2.1", "resolver", nil), "192.0.2.1"},
		{"RelayedByGateway", from("192.0.2.1", "gateway", relayed("203.0.113.7")), "203.0.113.7"},
		{"RelayedIPv6", from("192.0.2.1", "gateway", relayed("2001:db8::1")), "2001:db8::1"},
		{"ClaimedByAnotherService", from("192.0.2.1", "resolver", relayed("203.0.113.7")), "192.0.2.1"},
		{"ClaimedWithoutCertificate", from("192.0.2.1", "", relayed("203.0.113.7")), "192.0.2.1"},
		{"GatewayWithoutPeer", from("192.0.2.1", "gateway", nil), "192.0.2.1"},
		{"GatewayGarbage", from("192.0.2.1", "gateway", relayed("oz_0123456789abcdef_CANARY")), "192.0.2.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.RequestSource(tt.ctx); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
