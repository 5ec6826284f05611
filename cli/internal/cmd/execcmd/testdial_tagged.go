//go:build oz_egress_testdial

package execcmd

import (
	"context"
	"net"
	"os"
	"strings"
)

// In a test build, OZ_EGRESS_TEST_DIAL maps upstream addresses to others:
// "api.example.com:443=127.0.0.1:40123,…". TLS is still verified against
// the name asked for.
func init() {
	routes := map[string]string{}
	for _, kv := range strings.Split(os.Getenv("OZ_EGRESS_TEST_DIAL"), ",") {
		if from, to, ok := strings.Cut(kv, "="); ok {
			routes[from] = to
		}
	}
	testDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := routes[addr]; ok {
			addr = to
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}
