package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// serviceConfig balances calls across every address of a backend (with one
// address round_robin behaves like pick_first), and checks each address's
// grpc.health.v1 status on a watch stream: a replica that reports
// NOT_SERVING (starting, or draining at shutdown) gets no calls until it
// serves again, and a replica that is down gets none while it reconnects.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// reconnect retries a lost backend sooner than gRPC's default (1s base,
// up to 120s): a restarted replica is usually back within a second, and
// every call routed to it fails fast with Unavailable until it is
// reconnected, so a long backoff turns a short restart into a long outage.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// splitAddrs splits a comma-separated address list, dropping blanks.
func splitAddrs(s string) []string {
	var addrs []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// dialBackend returns a client connection to the backend name, listening on
// addrs ("host:port" each). The connection is lazy: nothing is
// dialled until the first call, so a backend that is down at start only
// fails the calls routed to it (with Unavailable). opts come after the
// defaults (tracing.DialOption).
func dialBackend(name string, addrs []string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	var endpoints []resolver.Endpoint
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("backend %s: address %q: %w", name, a, err)
		}
		// The backend's certificate is checked against the host it was
		// given by, as it would be for a plain "host:port" target; without
		// ServerName the manual resolver's target name would be used.
		endpoints = append(endpoints, resolver.Endpoint{
			Addresses: []resolver.Address{{Addr: a, ServerName: host}},
		})
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("backend %s: no address", name)
	}

	// A manual resolver holds the static address list: it is the simplest
	// resolver that can give round_robin several addresses, which the
	// "passthrough" resolver cannot. Resolvers passed by WithResolvers are
	// private to the connection, so the scheme need not be unique.
	r := manual.NewBuilderWithScheme("oz-backend")
	r.InitialState(resolver.State{Endpoints: endpoints})
	conn, err := grpc.NewClient(r.Scheme()+":///"+name, append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(reconnect),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	return conn, nil
}

// backendTLS is the client side of mutual TLS towards the backends: the
// gateway presents its own certificate and trusts only cas.
func backendTLS(cert tls.Certificate, cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
		MinVersion:   tls.VersionTLS13, // service to service: no old clients to support
	}
}

// checkClientUsage refuses a certificate that backends would reject as a
// client certificate, so the mistake shows at start rather than as
// Unavailable on every call.
func checkClientUsage(cert tls.Certificate) error {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return errors.New("tls certificate: empty")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls certificate: %w", err)
		}
	}
	if len(leaf.ExtKeyUsage) == 0 {
		return nil // no restriction
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return errors.New("tls certificate: not valid for client authentication, which the backends require (extended key usage clientAuth)")
}

// LoadTLSFiles reads the gateway's certificate and key (PEM) and the CA
// bundle (PEM) that verifies the backends.
func LoadTLSFiles(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load tls certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("load tls ca: no certificate in %s", caFile)
	}
	return cert, pool, nil
}
