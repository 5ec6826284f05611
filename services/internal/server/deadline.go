package server

import (
	"cmp"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/lib/dial"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
)

// Every call a service makes to another has a deadline (DESIGN §7), so that
// a hung service costs its callers a few seconds and a clear Unavailable
// naming it, never a hang as long as the first caller's patience.
const (
	// DefaultAuthTimeout bounds authenticating a request with the
	// resolver: every request waits on it, so it is short.
	DefaultAuthTimeout = 5 * time.Second
	// DefaultCallTimeout bounds every other unary call to another service.
	// The gateway's bound on its calls (10 s) is longer, so that the
	// message naming the service that hung reaches the caller first.
	DefaultCallTimeout = 8 * time.Second
)

// authenticate is the method that authenticates a request.
var authenticate = "/" + internalapiv1.AuthService_ServiceDesc.ServiceName + "/Authenticate"

// calleeTitles name the service that serves a package or internal service,
// in messages ("the resolver did not answer within 5s; retry").
var calleeTitles = []struct{ prefix, title string }{
	{"/oz.secrets.v1.", "the secret store"},
	{"/oz.scope.v1.", "the resolver"},
	{"/oz.audit.v1.", "the audit service"},
	{"/" + internalapiv1.AuthService_ServiceDesc.ServiceName + "/", "the resolver"},
	{"/" + internalapiv1.RunSecretsService_ServiceDesc.ServiceName + "/", "the secret store"},
	{"/" + internalapiv1.AuditIngestService_ServiceDesc.ServiceName + "/", "the audit service"},
}

// calleeTitle names the service that serves method.
func calleeTitle(method string) string {
	for _, c := range calleeTitles {
		if strings.HasPrefix(method, c.prefix) {
			return c.title
		}
	}
	return "the service called"
}

// boundCalls bounds the unary calls of a connection to another service:
// authentication to auth, everything else to call (zero: the defaults).
// Streams (the revocation watch) are not bounded: they last. A call the
// other service never answered fails with a message naming it, not
// gRPC's transport error, which is logged (dial.UnaryUnanswered): a
// service relays these messages to its own callers.
func boundCalls(log *slog.Logger, auth, call time.Duration) grpc.DialOption {
	auth, call = cmp.Or(auth, DefaultAuthTimeout), cmp.Or(call, DefaultCallTimeout)
	bound := dial.UnaryBound(func(method string) time.Duration {
		if method == authenticate {
			return auth
		}
		return call
	}, calleeTitle)
	unanswered := dial.UnaryUnanswered(calleeTitle, func(method string, err error) {
		log.Warn("service unavailable", "method", method, "err", err.Error())
	})
	// bound first: it sees the call's end after unanswered has.
	return grpc.WithChainUnaryInterceptor(bound, unanswered)
}
