package edge

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backend names: the services behind the gateway. They are the keys of
// Config.Backends.
const (
	SecretStore = "secretstore"
	Resolver    = "resolver"
	Audit       = "audit"
)

// route sends every gRPC method whose full name ("/pkg.Service/Method")
// starts with prefix to the named backend.
type route struct {
	prefix  string
	backend string
}

// routes is the whole routing table of the gateway, for native gRPC and REST
// alike. Adding an API package is one line here. Prefixes end in "." so that
// "oz.secrets.v1" never matches "oz.secrets.v10".
var routes = []route{
	{prefix: "/oz.secrets.v1.", backend: SecretStore},
	{prefix: "/oz.scope.v1.", backend: Resolver},
	{prefix: "/oz.audit.v1.", backend: Audit},
}

// errInternalMethod is returned for methods meant for services only. They are
// refused before any routing, so a new route can never expose them by accident.
var errInternalMethod = status.Error(codes.PermissionDenied, "internal method; not routed")

// isInternal reports whether method belongs to a services-only package: an
// oz package with a segment starting with "internal". That covers
// oz.internalapi.v1 (named so because Go reserves "internal" import paths),
// oz.internal.*, and a later "oz.secrets.internal.v1" alike.
func isInternal(method string) bool {
	if !strings.HasPrefix(method, "/oz.") {
		return false
	}
	service, _, _ := strings.Cut(method[1:], "/")
	pkg := service[:max(strings.LastIndexByte(service, '.'), 0)] // drop the service name
	for seg := range strings.SplitSeq(pkg, ".") {
		if strings.HasPrefix(seg, "internal") {
			return true
		}
	}
	return false
}

// backendFor returns the name of the backend that owns method, or "" when no
// route matches.
func backendFor(method string) string {
	for _, r := range routes {
		if strings.HasPrefix(method, r.prefix) {
			return r.backend
		}
	}
	return ""
}
