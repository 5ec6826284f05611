package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

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

func deniedUnary(fn Denied) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		slot := &principalSlot{}
		resp, err := handler(context.WithValue(ctx, slotKey{}, slot), req)
		if err != nil && !unrecorded(info.FullMethod) {
			if st := errs.ToStatus(err); isDenial(st.Code()) {
				dctx := deniedContext(ctx, slot.p)
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
func deniedStream(fn Denied, next grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		var p *auth.Principal
		err := next(srv, ss, info, func(srv any, inner grpc.ServerStream) error {
			p = auth.PrincipalFrom(inner.Context())
			return handler(srv, inner)
		})
		if err != nil && !unrecorded(info.FullMethod) {
			if st := errs.ToStatus(err); isDenial(st.Code()) {
				fn(deniedContext(ss.Context(), p), info.FullMethod, nil, st.Err())
			}
		}
		return err
	}
}

// deniedContext is ctx, detached from the client's cancellation, with what
// is known of the caller, as the access rules would have set it.
func deniedContext(ctx context.Context, p *auth.Principal) context.Context {
	ctx = context.WithoutCancel(ctx)
	if svc := auth.PeerService(ctx); svc != "" {
		ctx = auth.WithService(ctx, svc)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-oz-client"); len(v) > 0 && v[0] != "" {
		ctx = auth.WithClient(ctx, v[0])
	}
	if p != nil {
		ctx = auth.WithPrincipal(ctx, p)
	}
	return ctx
}
