// Package auth authenticates callers and carries who they are through a
// request. Two kinds of callers exist (DESIGN §3):
//   - principals with a bearer token (users, runners, agent identities and
//     integrations), resolved by the resolver's Authenticate;
//   - services, identified by their mutual-TLS client certificate.
//
// Every RPC has an explicit Rule saying which kind may call it; a method
// with no rule is denied.
package auth

import (
	"context"
	"slices"
	"time"
)

// Kind is the kind of a token-holding principal.
type Kind int

const (
	KindUser Kind = iota + 1
	KindRunner
	KindAgent
	// KindIntegration: a team-scoped principal that starts runs for a
	// trigger (Slack, Linear, a scheduler), DESIGN §3.
	KindIntegration
)

func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindRunner:
		return "runner"
	case KindAgent:
		return "agent"
	case KindIntegration:
		return "integration"
	}
	return "unknown"
}

// Role is a principal's role in one team.
type Role int

const (
	RoleNone Role = iota
	RoleMember
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Principal is an authenticated token holder.
type Principal struct {
	Kind        Kind
	Name        string // resource name: "users/alice"
	ID          string // "alice"
	SystemAdmin bool
	Teams       map[string]Role // team id → role
	TokenID     string
	TokenExpire time.Time // zero: never
}

// RoleIn returns the principal's role in team, RoleNone when not a member.
func (p *Principal) RoleIn(team string) Role {
	if p == nil {
		return RoleNone
	}
	return p.Teams[team]
}

// IsMember reports whether p belongs to team in any role.
func (p *Principal) IsMember(team string) bool { return p.RoleIn(team) >= RoleMember }

// IsAdmin reports whether p is an admin of team.
func (p *Principal) IsAdmin(team string) bool { return p.RoleIn(team) == RoleAdmin }

// IsHuman reports whether p is a person (not a runner, an agent identity
// or an integration).
func (p *Principal) IsHuman() bool { return p != nil && p.Kind == KindUser }

// TeamIDs returns the principal's teams, sorted.
func (p *Principal) TeamIDs() []string {
	ids := make([]string, 0, len(p.Teams))
	for t := range p.Teams {
		ids = append(ids, t)
	}
	slices.Sort(ids)
	return ids
}

type principalKey struct{}
type serviceKey struct{}
type clientKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the token holder of the request, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithService returns ctx carrying the calling service's identity.
func WithService(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, serviceKey{}, name)
}

// ServiceFrom returns the identity of the service that made the call (its
// certificate's common name), or "".
func ServiceFrom(ctx context.Context) string {
	s, _ := ctx.Value(serviceKey{}).(string)
	return s
}

// WithClient returns ctx carrying the client the request came through
// ("cli", "rest", "runner", …), as RequestClient decides it.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// ClientFrom returns the client the request came through, or "".
func ClientFrom(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}
