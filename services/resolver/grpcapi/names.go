package grpcapi

import (
	"context"
	"strings"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
)

// Parsers of resource names. They never echo the name in an error: a
// confused caller may have pasted a token into it.

// parseTeam parses "teams/{team}".
func parseTeam(field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "teams/")
	if !ok || !resolver.ValidID(id) {
		return "", errs.Field(field, `must be "teams/{team}"; {team} `+resolver.IDRule)
	}
	return id, nil
}

// parseUser parses "users/{user}"; "users/me" is the calling user.
func parseUser(ctx context.Context, field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "users/")
	if !ok || !resolver.ValidID(id) {
		return "", errs.Field(field, `must be "users/{user}" or "users/me"; {user} `+resolver.IDRule)
	}
	return resolveMe(ctx, field, id)
}

func resolveMe(ctx context.Context, field, id string) (string, error) {
	if id != resolver.Me {
		return id, nil
	}
	p := auth.PrincipalFrom(ctx)
	if p == nil || p.Kind != auth.KindUser {
		return "", errs.Field(field, `"users/me" names the calling user, and the caller is not a user`)
	}
	return p.ID, nil
}

// parseMembership parses "teams/{team}/members/{user}"; {user} may be "me".
func parseMembership(ctx context.Context, field, name string) (team, user string, err error) {
	rest, ok := strings.CutPrefix(name, "teams/")
	if ok {
		team, user, ok = strings.Cut(rest, "/members/")
	}
	if !ok || !resolver.ValidID(team) || !resolver.ValidID(user) {
		return "", "", errs.Field(field, `must be "teams/{team}/members/{user}"; {team} and {user} `+resolver.IDRule)
	}
	user, err = resolveMe(ctx, field, user)
	return team, user, err
}

// parseToken parses "tokens/{token_id}".
func parseToken(field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "tokens/")
	if !ok || !resolver.ValidTokenID(id) {
		return "", errs.Field(field, `must be "tokens/{token_id}"; {token_id} `+resolver.TokenIDRule)
	}
	return id, nil
}
