package grpcapi

import (
	"context"
	"strings"
	"time"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// TokenServer implements scopev1.TokenServiceServer.
type TokenServer struct {
	scopev1.UnimplementedTokenServiceServer
	Dir *directory.Directory
}

// parsePrincipal parses a token owner's name: "users/{user}" ("users/me":
// the caller), "teams/{team}/agents/{agent}" or "runners/{runner}".
func parsePrincipal(ctx context.Context, field, name string) (resolver.PrincipalRef, error) {
	if strings.HasPrefix(name, "users/") {
		user, err := parseUser(ctx, field, name)
		if err != nil {
			return resolver.PrincipalRef{}, err
		}
		return resolver.UserPrincipal(user), nil
	}
	ref, ok := resolver.ParsePrincipal(name)
	if !ok {
		return resolver.PrincipalRef{}, errs.Field(field, `must be "users/{user}" ("users/me": you), "teams/{team}/agents/{agent}" or "runners/{runner}"; each id `+resolver.IDRule)
	}
	return ref, nil
}

// CreateToken issues a token; an empty principal means the caller.
func (s *TokenServer) CreateToken(ctx context.Context, req *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
	return rememberWithheld(ctx, s.Dir.Store(), req, s.createToken)
}

func (s *TokenServer) createToken(ctx context.Context, req *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
	name := req.GetPrincipal()
	if name == "" {
		name = "users/me"
	}
	owner, err := parsePrincipal(ctx, "principal", name)
	if err != nil {
		return nil, err
	}
	var ttl time.Duration
	if d := req.GetTtl(); d != nil {
		if d.CheckValid() != nil {
			return nil, errs.Field("ttl", "must be a valid duration")
		}
		ttl = d.AsDuration()
	}
	tok, bearer, err := s.Dir.CreateToken(ctx, owner, ttl, req.GetDescription())
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateTokenResponse{Token: tokenProto(tok), BearerToken: bearer}, nil
}

func (s *TokenServer) ListTokens(ctx context.Context, req *scopev1.ListTokensRequest) (*scopev1.ListTokensResponse, error) {
	var principal string
	if name := req.GetPrincipal(); name != "" {
		owner, err := parsePrincipal(ctx, "principal", name)
		if err != nil {
			return nil, err
		}
		principal = owner.Name
	}
	toks, next, err := s.Dir.ListTokens(ctx, principal, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListTokensResponse{NextPageToken: next}
	for _, t := range toks {
		resp.Tokens = append(resp.Tokens, tokenProto(t))
	}
	return resp, nil
}

func (s *TokenServer) RevokeToken(ctx context.Context, req *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error) {
	id, err := parseToken("name", req.GetName())
	if err != nil {
		return nil, err
	}
	tok, err := s.Dir.RevokeToken(ctx, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.RevokeTokenResponse{Token: tokenProto(tok)}, nil
}
