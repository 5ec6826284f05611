package auth

import (
	"context"
	"crypto/sha256"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// Access says which kind of caller a method admits.
type Access int

const (
	// Deny admits nobody; it is what a method without a rule gets.
	Deny Access = iota
	// Public admits anyone who reached the port (health, reflection).
	Public
	// Token admits callers with a valid bearer token (through the gateway or
	// any other service). Fine-grained checks happen in the handler.
	Token
	// Internal admits only the listed services, by their mTLS certificate;
	// a request that carries a bearer token is refused.
	Internal
)

// Rule is the access rule of one method or one whole service.
type Rule struct {
	Access   Access
	Services []string // for Internal: the services allowed to call
}

// Rules maps full method names ("/pkg.Service/Method") or service prefixes
// ("/pkg.Service/") to their rule. An exact method wins over its service.
type Rules map[string]Rule

func (r Rules) lookup(method string) Rule {
	if rule, ok := r[method]; ok {
		return rule
	}
	if i := strings.LastIndex(method, "/"); i > 0 {
		if rule, ok := r[method[:i+1]]; ok {
			return rule
		}
	}
	return Rule{Access: Deny}
}

// Standard rules every service shares.
var StandardRules = Rules{
	"/grpc.health.v1.Health/":                    {Access: Public},
	"/grpc.reflection.v1.ServerReflection/":      {Access: Public},
	"/grpc.reflection.v1alpha.ServerReflection/": {Access: Public},
}

// Authenticator resolves a bearer token to its principal. It returns an
// errs.KindUnauthenticated error for unknown, expired or revoked tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (*Principal, error)
}

// Interceptor enforces Rules before any handler runs.
type Interceptor struct {
	Rules Rules
	Auth  Authenticator
}

// Unary is the unary server interceptor.
func (i *Interceptor) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := i.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (i *Interceptor) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := i.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (i *Interceptor) check(ctx context.Context, method string) (context.Context, error) {
	rule := i.Rules.lookup(method)
	svc := PeerService(ctx)
	if svc != "" {
		ctx = WithService(ctx, svc)
	}
	ctx = WithSource(ctx, RequestSource(ctx))
	// Until a token says who the caller is, the client is what it may
	// claim (RequestClient); the credential may change it below.
	ctx = WithClient(ctx, RequestClient(ctx, nil))
	md, _ := metadata.FromIncomingContext(ctx)
	token, hasToken := bearer(md)

	switch rule.Access {
	case Public:
		return ctx, nil
	case Internal:
		if hasToken {
			return ctx, status.Error(codes.PermissionDenied, "internal method: bearer tokens are not accepted")
		}
		for _, allowed := range rule.Services {
			if svc != "" && svc == allowed {
				return ctx, nil
			}
		}
		return ctx, status.Error(codes.PermissionDenied, "internal method: caller is not an allowed service")
	case Token:
		if !hasToken {
			return ctx, status.Error(codes.Unauthenticated, "missing bearer token (authorization: Bearer oz_…)")
		}
		p, err := i.Auth.Authenticate(ctx, token)
		if err != nil {
			st := status.Convert(toStatusErr(err))
			return ctx, st.Err()
		}
		return WithClient(WithPrincipal(ctx, p), RequestClient(ctx, p)), nil
	}
	return ctx, status.Errorf(codes.PermissionDenied, "method %s has no access rule", method)
}

// PeerService returns the common name of the caller's verified client
// certificate, or "" when the caller presented none.
func PeerService(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return info.State.VerifiedChains[0][0].Subject.CommonName
}

func bearer(md metadata.MD) (string, bool) {
	v := first(md, "authorization")
	if v == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		// Present but malformed still counts as "has a token" so that
		// internal methods refuse it; Authenticate will reject it.
		return v, true
	}
	return strings.TrimSpace(tok), true
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// TokenKey is the cache and storage key of a bearer token: its SHA-256.
// Tokens carry 256 bits of randomness, so a fast hash is enough.
func TokenKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func toStatusErr(err error) error { return errs.ToStatus(err).Err() }
