// Package dial connects a gRPC client to a service served at one or
// several addresses ("host:port", or "h1:p1,h2:p2" for replicas): the
// gateway to its backends, and each service to the others.
//
// The addresses are given to gRPC by a manual resolver private to the
// connection (grpc.WithResolvers): nothing is registered globally, so
// dials neither leak resolvers nor race with each other. Calls are
// balanced round robin over the addresses, skipping those whose
// grpc.health.v1 status is not SERVING, and a lost address is reconnected
// within a few seconds at most.
package dial

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// serviceConfig balances calls across every address (with one address
// round_robin behaves like pick_first), and checks each address's
// grpc.health.v1 status on a watch stream: a replica that reports
// NOT_SERVING (starting, or draining at shutdown) gets no calls until it
// serves again, and a replica that is down gets none while it reconnects.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// reconnect retries a lost address sooner than gRPC's default (1s base,
// up to 120s): a restarted replica is usually back within a second, and
// every call routed to it fails fast with Unavailable until it is
// reconnected, so a long backoff turns a short restart into a long outage.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// Split splits a comma-separated address list ("h1:p1, h2:p2"), dropping
// blanks.
func Split(list string) []string {
	var addrs []string
	for a := range strings.SplitSeq(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// New returns a client connection to a service served at addrs,
// "host:port" each. The connection is lazy: nothing is dialled until the
// first call, so a service that is down at start only fails the calls made
// to it (with Unavailable). Each address's certificate is verified against
// its own host, as it would be for a plain "host:port" target. opts come
// after the defaults, e.g. tracing.DialOption(tp). It fails on an empty
// list or an address that is not "host:port".
func New(addrs []string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	var endpoints []resolver.Endpoint
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", a, err)
		}
		// Without ServerName, TLS would check the target's authority ("oz").
		endpoints = append(endpoints, resolver.Endpoint{
			Addresses: []resolver.Address{{Addr: a, ServerName: host}},
		})
	}
	if len(endpoints) == 0 {
		return nil, errors.New("no address")
	}
	// A manual resolver holds the static address list: the simplest
	// resolver that can give round_robin several addresses, which
	// "passthrough" cannot. Resolvers passed by WithResolvers are private
	// to the connection, so the scheme need not be unique.
	r := manual.NewBuilderWithScheme("oz")
	r.InitialState(resolver.State{Endpoints: endpoints})
	return grpc.NewClient(r.Scheme()+":///oz", append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(reconnect),
		grpc.WithStatsHandler(answerStats{}), // for UnaryUnanswered
	}, opts...)...)
}
