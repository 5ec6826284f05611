package auth

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// DefaultCacheTTL is how long a service trusts an Authenticate answer. It
// bounds how long a revoked token, or a removed membership, keeps working
// where no revocation notice arrives (FollowRevocations): the README
// promises revocation within this many seconds at most.
const DefaultCacheTTL = 5 * time.Second

// Cache remembers successful authentications for TTL. Failures are not
// cached, so a newly created token works at once. Drop and Clear forget
// answers before their time, for revocation notices.
type Cache struct {
	Next Authenticator
	TTL  time.Duration
	Now  func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
	// gen counts Drops and Clears: an answer fetched while one happened
	// may predate it, so it is returned but not cached.
	gen uint64
}

type cacheEntry struct {
	p       *Principal
	expires time.Time
}

// NewCache wraps next with a cache of DefaultCacheTTL.
func NewCache(next Authenticator) *Cache {
	return &Cache{Next: next, TTL: DefaultCacheTTL, Now: time.Now}
}

// Authenticate implements Authenticator.
func (c *Cache) Authenticate(ctx context.Context, token string) (*Principal, error) {
	key := TokenKey(token)
	now := c.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) && (e.p.TokenExpire.IsZero() || now.Before(e.p.TokenExpire)) {
		return e.p, nil
	}
	p, err := c.Next.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		// A revocation notice came in while the resolver was asked: its
		// answer may be from before the revocation, so it is not kept.
		return p, nil
	}
	if c.entries == nil {
		c.entries = make(map[[32]byte]cacheEntry)
	}
	// Drop expired entries now and then so the map stays small.
	if len(c.entries) > 10000 {
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = cacheEntry{p: p, expires: now.Add(c.TTL)}
	return p, nil
}

// Drop forgets the answers for the tokens whose ids are tokenIDs: the
// next use of one asks Next again, which refuses a revoked token.
func (c *Cache) Drop(tokenIDs []string) {
	if len(tokenIDs) == 0 {
		return
	}
	drop := make(map[string]bool, len(tokenIDs))
	for _, id := range tokenIDs {
		drop[id] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.entries {
		if drop[e.p.TokenID] {
			delete(c.entries, k)
		}
	}
}

// Clear forgets every answer: for when revocations may have been missed
// (a notice stream that was down).
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// Remote authenticates through the resolver's internal AuthService.
type Remote struct {
	Client internalapiv1.AuthServiceClient
}

// NewRemote returns an Authenticator that calls the resolver over conn.
func NewRemote(conn grpc.ClientConnInterface) *Remote {
	return &Remote{Client: internalapiv1.NewAuthServiceClient(conn)}
}

// Authenticate implements Authenticator.
func (r *Remote) Authenticate(ctx context.Context, token string) (*Principal, error) {
	// ctx is a server handler's context: it holds incoming metadata only, so
	// the caller's bearer token is not sent as a header of this internal call
	// (which would be refused), only as the request field.
	resp, err := r.Client.Authenticate(ctx, &internalapiv1.AuthenticateRequest{BearerToken: token})
	if err != nil {
		return nil, errs.FromStatus(err)
	}
	return FromProto(resp.GetPrincipal()), nil
}

// FromProto converts the wire principal.
func FromProto(p *scopev1.Principal) *Principal {
	if p == nil {
		return nil
	}
	out := &Principal{
		Name:        p.GetName(),
		SystemAdmin: p.GetSystemAdmin(),
		TokenID:     p.GetTokenId(),
		Teams:       make(map[string]Role, len(p.GetTeams())),
	}
	if _, id, ok := cutLast(p.GetName()); ok {
		out.ID = id
	}
	switch p.GetKind() {
	case scopev1.PrincipalKind_PRINCIPAL_KIND_USER:
		out.Kind = KindUser
	case scopev1.PrincipalKind_PRINCIPAL_KIND_RUNNER:
		out.Kind = KindRunner
	case scopev1.PrincipalKind_PRINCIPAL_KIND_AGENT:
		out.Kind = KindAgent
	case scopev1.PrincipalKind_PRINCIPAL_KIND_INTEGRATION:
		out.Kind = KindIntegration
	}
	for _, tr := range p.GetTeams() {
		out.Teams[tr.GetTeam()] = RoleFromProto(tr.GetRole())
	}
	if p.GetTokenExpireTime() != nil {
		out.TokenExpire = p.GetTokenExpireTime().AsTime()
	}
	return out
}

// RoleFromProto converts a wire role.
func RoleFromProto(r scopev1.Role) Role {
	switch r {
	case scopev1.Role_ROLE_ADMIN:
		return RoleAdmin
	case scopev1.Role_ROLE_MEMBER:
		return RoleMember
	}
	return RoleNone
}

// RoleToProto converts a role for the wire.
func RoleToProto(r Role) scopev1.Role {
	switch r {
	case RoleAdmin:
		return scopev1.Role_ROLE_ADMIN
	case RoleMember:
		return scopev1.Role_ROLE_MEMBER
	}
	return scopev1.Role_ROLE_UNSPECIFIED
}

func cutLast(name string) (string, string, bool) {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return "", name, false
}
