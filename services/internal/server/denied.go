package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Recording refused requests (Config.OnDenied). The server finds the
// refusals and what is known of the caller; every service's hook is
// auditevent.OnDenied, which makes each a request.denied event.

// isDenial reports whether code is a refusal worth an audit event.
func isDenial(code codes.Code) bool {
	return code == codes.PermissionDenied || code == codes.Unauthenticated
}

// unrecorded reports whether method is one whose refusals are not
// recorded: health checks and reflection (public, so never refused by
// the rules; listed should that change).
func unrecorded(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// principalSlot carries the authenticated principal from the innermost
// interceptor back out to deniedUnary, and the resource a handler says a
// refusal is about (AuditResource).
type principalSlot struct {
	p        *auth.Principal
	resource *DeniedResource
}

// DeniedResource is what a refused request was about, when the handler
// knows better than the request's own fields: a run whose start ticket was
// refused belongs to the ticket's team, whatever team the request named.
type DeniedResource struct {
	Resource string // a resource name, "teams/acme/runs/run-1"
	RunID    string
}

type deniedResourceKey struct{}

// AuditResource tells the OnDenied hook, should the request be refused,
// which resource the refusal is about. Outside a request it does nothing.
func AuditResource(ctx context.Context, resource, runID string) {
	if slot, ok := ctx.Value(slotKey{}).(*principalSlot); ok {
		slot.resource = &DeniedResource{Resource: resource, RunID: runID}
	}
}

// DeniedResourceFrom returns the resource a handler named with
// AuditResource, in the context OnDenied is called with.
func DeniedResourceFrom(ctx context.Context) (DeniedResource, bool) {
	r, ok := ctx.Value(deniedResourceKey{}).(*DeniedResource)
	if !ok || r == nil {
		return DeniedResource{}, false
	}
	return *r, true
}

type slotKey struct{}

// capturePrincipal is the innermost unary interceptor: it tells
// deniedUnary whom the access rules authenticated.
func capturePrincipal(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if slot, ok := ctx.Value(slotKey{}).(*principalSlot); ok {
		slot.p = auth.PrincipalFrom(ctx)
	}
	return handler(ctx, req)
}

// deniedUnary tells fn of the refusals, or counts them in c (nil: no
// counting) when the caller had no valid credential (anonymous).
func deniedUnary(fn Denied, c *deniedCounter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		slot := &principalSlot{}
		resp, err := handler(context.WithValue(ctx, slotKey{}, slot), req)
		if err != nil && !unrecorded(info.FullMethod) {
			if st := errs.ToStatus(err); isDenial(st.Code()) {
				dctx := deniedContext(ctx, slot.p)
				if c != nil && anonymous(dctx, st.Code()) {
					c.add(dctx, info.FullMethod, st)
					return resp, err
				}
				if slot.resource != nil {
					dctx = context.WithValue(dctx, deniedResourceKey{}, slot.resource)
				}
				fn(dctx, info.FullMethod, req, st.Err())
			}
		}
		return resp, err
	}
}

// deniedStream wraps the access-rule stream interceptor next.
func deniedStream(fn Denied, c *deniedCounter, next grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		var p *auth.Principal
		err := next(srv, ss, info, func(srv any, inner grpc.ServerStream) error {
			p = auth.PrincipalFrom(inner.Context())
			return handler(srv, inner)
		})
		if err != nil && !unrecorded(info.FullMethod) {
			if st := errs.ToStatus(err); isDenial(st.Code()) {
				dctx := deniedContext(ss.Context(), p)
				if c != nil && anonymous(dctx, st.Code()) {
					c.add(dctx, info.FullMethod, st)
					return err
				}
				fn(dctx, info.FullMethod, nil, st.Err())
			}
		}
		return err
	}
}

// anonymous reports whether a refusal, in the context deniedContext made,
// is of a request without a valid credential: no token holder, and either
// no service certificate or a service that relayed a token which failed
// (the gateway: the caller is whoever sent it, not the relay). Refusals of
// an authenticated caller are attributable, and recorded one by one.
func anonymous(ctx context.Context, code codes.Code) bool {
	return auth.PrincipalFrom(ctx) == nil && (auth.ServiceFrom(ctx) == "" || code == codes.Unauthenticated)
}

// deniedContext is ctx, detached from the client's cancellation, with what
// is known of the caller, as the access rules would have set it: the
// service, the principal, the client (auth.RequestClient: the credential
// decides, not the header) and the source address.
func deniedContext(ctx context.Context, p *auth.Principal) context.Context {
	ctx = context.WithoutCancel(ctx)
	if svc := auth.PeerService(ctx); svc != "" {
		ctx = auth.WithService(ctx, svc)
	}
	ctx = auth.WithClient(ctx, auth.RequestClient(ctx, p))
	ctx = auth.WithSource(ctx, auth.RequestSource(ctx))
	if p != nil {
		ctx = auth.WithPrincipal(ctx, p)
	}
	return ctx
}
