package server

import (
	"net"
	"strings"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Target turns "host:port" or "h1:p1,h2:p2" into a dial target. Several
// addresses get a manual resolver so the client balances across them.
func Target(addr string) string {
	if !strings.Contains(addr, ",") {
		return "passthrough:///" + addr
	}
	var addrs []resolver.Address
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			// Verify each service's certificate against the host it was
			// given by, as for a single "host:port"; without ServerName
			// TLS would check the target's authority ("oz").
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				host = a
			}
			addrs = append(addrs, resolver.Address{Addr: a, ServerName: host})
		}
	}
	r := manual.NewBuilderWithScheme("oz" + randomSuffix())
	r.InitialState(resolver.State{Addresses: addrs})
	resolver.Register(r)
	return r.Scheme() + ":///oz"
}
