package execcmd

import (
	"context"
	"net"
)

// testDial, when set, opens the egress proxy's upstream connections: only
// in a binary built with the tag oz_egress_testdial (testdial_tagged.go),
// for end-to-end tests whose bound hosts are servers on loopback. A
// release build has none: nothing in oz's environment can send a bound
// value to another address than the name's own.
var testDial func(ctx context.Context, network, addr string) (net.Conn, error)
