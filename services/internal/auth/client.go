package auth

import (
	"context"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/ozsecrets/oz/lib/reqmeta"
)

// What a request says about itself beyond its credential — the client it
// came through, where it came from — is recorded in audit events, so it
// is believed only as far as something vouches for it: the credential, or
// the gateway's certificate for what the gateway itself observed.

// Gateway is the name of the gateway's certificate: the one relay whose
// reqmeta.Peer (the address it saw the request come from) and "rest"
// client the services believe.
const Gateway = "gateway"

// Clients, as recorded in audit events (Actor.client).
const (
	ClientCLI    = "cli"    // the oz CLI, as claimed
	ClientWeb    = "web"    // the web app, as claimed
	ClientREST   = "rest"   // translated from REST by the gateway
	ClientRunner = "runner" // a runner's token, whatever it claims
	// ClientGRPC is any other gRPC caller: one that named no client, or a
	// client not in the known set, or one its credential contradicts.
	ClientGRPC = "grpc"
)

// claimable are the clients a caller may name itself with x-oz-client.
var claimable = map[string]bool{ClientCLI: true, ClientWeb: true}

// RequestClient returns the client to record for the request of ctx made
// by p (nil: not authenticated). The credential decides where it can: a
// runner's token is ClientRunner whatever the request claims; "rest" is
// believed only from the gateway (it sets it on the REST calls it
// translates, and strips it from native gRPC); otherwise the claimed
// x-oz-client when it is a known one (cli, web), else ClientGRPC — never
// the raw header. A call made in process (no incoming metadata) is "".
func RequestClient(ctx context.Context, p *Principal) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	if p != nil && p.Kind == KindRunner {
		return ClientRunner
	}
	switch claimed := first(md, reqmeta.Client); {
	case claimed == ClientREST && PeerService(ctx) == Gateway:
		return ClientREST
	case claimable[claimed]:
		return claimed
	}
	return ClientGRPC
}

// RequestSource returns the source address of the request of ctx: for a
// request the gateway relayed (its certificate), the address the gateway
// saw it come from (reqmeta.Peer); otherwise the host of the TCP peer.
// "" when neither is known (a call made in process). Other callers'
// reqmeta.Peer is ignored: only the gateway relays requests.
func RequestSource(ctx context.Context) string {
	if PeerService(ctx) == Gateway {
		md, _ := metadata.FromIncomingContext(ctx)
		if src := first(md, reqmeta.Peer); src != "" {
			if ip := net.ParseIP(src); ip != nil {
				return ip.String()
			}
		}
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

type sourceKey struct{}

// WithSource returns ctx carrying the request's source address
// (RequestSource).
func WithSource(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, sourceKey{}, addr)
}

// SourceFrom returns the request's source address, or "".
func SourceFrom(ctx context.Context) string {
	s, _ := ctx.Value(sourceKey{}).(string)
	return s
}
