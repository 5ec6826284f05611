// Package dial connects a gRPC client to a service: the gateway to its
// backends, and each service to the others. A service is named one of two
// ways:
//
//   - a static list, "host:port" or "h1:p1,h2:p2" for replicas, given to
//     gRPC by a manual resolver private to the connection
//     (grpc.WithResolvers): nothing is registered globally, so dials
//     neither leak resolvers nor race with each other;
//   - one DNS name, "dns:///name:port" (e.g. a Kubernetes headless Service,
//     dns:///resolver.oz.svc:7451), resolved by gRPC's DNS resolver to
//     every replica's address, and resolved again as replicas come and go.
//
// Either way calls are balanced round robin over the addresses, skipping
// those whose grpc.health.v1 status is not SERVING, and a lost address is
// reconnected within a few seconds at most.
package dial

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/resolver/manual"
)

// Rule is the form of an address list, for error messages and flag help.
const Rule = "HOST:PORT, several comma-separated, or one dns:///HOST:PORT"

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

// Check reports whether addrs is a list New accepts, without dialling:
// for callers that check their flags before starting. Its errors name the
// address and the rule, not the flag: the caller adds that.
func Check(addrs []string) error {
	_, _, err := parse(addrs)
	return err
}

// New returns a client connection to a service served at addrs: several
// "host:port", or one "dns:///host:port" (Rule). The connection is lazy:
// nothing is dialled until the first call, so a service that is down at
// start only fails the calls made to it (with Unavailable). Each
// certificate is verified against the host named, as it would be for a
// plain "host:port" target: the address's host in a list, the DNS name
// (not the replica's IP) for dns:///. opts come after the defaults, e.g.
// tracing.DialOption(tp). It fails on an empty list or an address not of
// the Rule's form.
func New(addrs []string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	target, r, err := parse(addrs)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		// Our service config only: a TXT record in DNS must not change
		// how calls are balanced or health-checked.
		grpc.WithDisableServiceConfig(),
		grpc.WithConnectParams(reconnect),
		grpc.WithStatsHandler(answerStats{}), // for UnaryUnanswered
	}, opts...)...)
}

// parse checks addrs and returns the target to dial and the resolver
// (private to the connection) that resolves it.
func parse(addrs []string) (string, resolver.Builder, error) {
	if len(addrs) == 0 {
		return "", nil, fmt.Errorf("no address: want %s", Rule)
	}
	for _, a := range addrs {
		if strings.Contains(a, "://") || strings.HasPrefix(a, "dns:/") {
			if len(addrs) > 1 {
				return "", nil, fmt.Errorf("address %q: a dns:/// name must be the only address (its DNS records list the replicas): want %s", a, Rule)
			}
			if err := checkDNS(a); err != nil {
				return "", nil, fmt.Errorf("address %q: %w: want %s", a, err, Rule)
			}
			return a, reresolving{Builder: dns.NewBuilder(), every: reresolveEvery}, nil
		}
	}
	var endpoints []resolver.Endpoint
	for _, a := range addrs {
		host, err := checkHostPort(a)
		if err != nil {
			return "", nil, fmt.Errorf("address %q: %w: want %s", a, err, Rule)
		}
		// Without ServerName, TLS would check the target's authority ("oz").
		endpoints = append(endpoints, resolver.Endpoint{
			Addresses: []resolver.Address{{Addr: a, ServerName: host}},
		})
	}
	// A manual resolver holds the static address list: the simplest
	// resolver that can give round_robin several addresses, which
	// "passthrough" cannot. Resolvers passed by WithResolvers are private
	// to the connection, so the scheme need not be unique.
	r := manual.NewBuilderWithScheme("oz")
	r.InitialState(resolver.State{Endpoints: endpoints})
	return r.Scheme() + ":///oz", r, nil
}

// checkDNS accepts "dns:///host:port", and "dns://server:port/host:port"
// (a DNS server of one's own); the port is required, where gRPC would
// quietly default to 443.
func checkDNS(a string) error {
	rest, ok := strings.CutPrefix(a, "dns://")
	if !ok {
		return errors.New("unknown scheme (only dns:/// is resolved)")
	}
	server, name, ok := strings.Cut(rest, "/")
	if !ok {
		return errors.New("no name after dns://")
	}
	if server != "" {
		if _, err := checkHostPort(server); err != nil {
			return fmt.Errorf("DNS server %q: %w", server, err)
		}
	}
	_, err := checkHostPort(name)
	return err
}

// checkHostPort returns the host of "host:port", with a host and a port
// number both present.
func checkHostPort(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", errors.New(ae.Err) // without the address, quoted already
		}
		return "", err
	}
	if host == "" {
		return "", errors.New("no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return host, nil
}
