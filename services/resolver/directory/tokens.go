package directory

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Bearer tokens look like
//
//	oz_<token id>_<secret>
//
// the shape of resolver.NewOpaque: only the SHA-256 of the whole token
// (auth.TokenKey) is stored, and the embedded id lets Authenticate find
// the record with one read and compare hashes in constant time.

// TokenPrefix starts every bearer token.
const TokenPrefix = "oz_"

// Token is a bearer token's record; the token itself is never stored.
type Token struct {
	ID          string
	Principal   resolver.PrincipalRef // who the token authenticates as
	Description string
	CreateTime  time.Time
	ExpireTime  time.Time // zero: never expires
	RevokeTime  time.Time // zero: not revoked
	CreateBy    string    // resource name of the creator; "" when made by ozresolverd itself
	// Issuer is the id of the token its creator used ("" when made by
	// ozresolverd itself, by a caller without a token, or before issuers
	// were recorded). A token issued for the creator's own principal is
	// its issuer's child: it expires no later, and is revoked with it.
	Issuer string
}

// Name is the token's resource name, "tokens/{token_id}".
func (t Token) Name() string { return resolver.TokenName(t.ID) }

// Child reports whether the token was issued by its creator for itself,
// with token Issuer: it then expires no later than Issuer and is revoked
// with it. A token issued for another principal is that principal's own
// credential, bounded by the maximum lifetime alone, and outlives its
// issuer: revoking an admin's token does not lock out everyone the admin
// gave a token to.
func (t Token) Child() bool { return t.Issuer != "" && t.CreateBy == t.Principal.Name }

// Revoked reports whether the token was revoked.
func (t Token) Revoked() bool { return !t.RevokeTime.IsZero() }

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpireTime.IsZero() && !now.Before(t.ExpireTime)
}

func newBearer() (id, bearer string) { return resolver.NewOpaque(TokenPrefix) }

// parseBearer returns the token id embedded in a well-formed bearer token.
func parseBearer(s string) (string, bool) { return resolver.ParseOpaque(TokenPrefix, s) }

// badToken is the one answer to every token that does not authenticate.
// It never echoes the token.
func badToken() error {
	return errs.E(errs.KindUnauthenticated, "invalid, expired or revoked token")
}

// Authenticate implements auth.Authenticator: it resolves a bearer token to
// its principal, as it is now:
//   - a user, with their teams and roles;
//   - an agent identity (teams/{team}/agents/{agent}), a member of its team;
//   - a runner (runners/{runner}), a member of each team it is granted.
//
// Runners and agent identities are listed as members (auth.RoleMember) of
// their teams so that "which teams" has one answer everywhere, but they
// hold no human role: every operation that people perform checks
// IsHuman (or the Kind) before looking at a role, and run resolution
// admits runners by their Kind. Neither is ever a system admin.
//
// Returns Unauthenticated for a malformed, unknown, expired or revoked
// token, and for a token whose principal no longer exists.
func (d *Directory) Authenticate(ctx context.Context, bearer string) (*auth.Principal, error) {
	id, ok := parseBearer(bearer)
	if !ok {
		return nil, badToken()
	}
	var rec tokenRecord
	if _, err := d.s.Get(ctx, resolver.TokenKey(id), &rec); err != nil {
		if resolver.IsNotFound(err) {
			return nil, badToken()
		}
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	sum := auth.TokenKey(bearer)
	want, err := hex.DecodeString(rec.SHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, badToken()
	}
	tok := rec.token()
	if tok.Revoked() || tok.Expired(d.s.Now()) {
		return nil, badToken()
	}
	// The name decides what the principal is; a record whose kind
	// disagrees with it is refused rather than guessed at.
	owner, ok := resolver.ParsePrincipal(tok.Principal.Name)
	if !ok || owner.Kind != tok.Principal.Kind {
		return nil, badToken()
	}
	var p *auth.Principal
	switch owner.Kind {
	case auth.KindUser:
		p, err = d.userPrincipal(ctx, owner.UserID())
	case auth.KindAgent:
		p, err = d.agentPrincipal(ctx, owner)
	case auth.KindIntegration:
		p, err = d.integrationPrincipal(ctx, owner)
	case auth.KindRunner:
		p, err = d.runnerPrincipal(ctx, owner.RunnerID())
	default:
		return nil, badToken()
	}
	if resolver.IsNotFound(err) {
		return nil, badToken()
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	p.TokenID = tok.ID
	p.TokenExpire = tok.ExpireTime
	return p, nil
}

// userPrincipal is user uid with their teams and roles. NotFound when the
// user does not exist.
func (d *Directory) userPrincipal(ctx context.Context, uid string) (*auth.Principal, error) {
	u, err := d.user(ctx, uid)
	if err != nil {
		return nil, err
	}
	ms, err := d.memberships(ctx, uid)
	if err != nil {
		return nil, err
	}
	p := &auth.Principal{
		Kind:        auth.KindUser,
		Name:        u.Name(),
		ID:          u.ID,
		SystemAdmin: u.SystemAdmin,
		Teams:       make(map[string]auth.Role, len(ms)),
	}
	for _, m := range ms {
		p.Teams[m.Team] = m.Role
	}
	return p, nil
}

// agentPrincipal is the agent identity owner, a member of its team only.
// NotFound when the identity (or its team) does not exist.
func (d *Directory) agentPrincipal(ctx context.Context, owner resolver.PrincipalRef) (*auth.Principal, error) {
	team, id := owner.AgentID()
	if _, _, err := d.s.Agent(ctx, team, id); err != nil {
		return nil, err
	}
	return &auth.Principal{
		Kind:  auth.KindAgent,
		Name:  resolver.AgentName(team, id),
		ID:    id,
		Teams: map[string]auth.Role{team: auth.RoleMember},
	}, nil
}

// integrationPrincipal is the integration owner, a member of its team
// only. NotFound when the integration does not exist.
func (d *Directory) integrationPrincipal(ctx context.Context, owner resolver.PrincipalRef) (*auth.Principal, error) {
	team, id := owner.IntegrationID()
	if _, _, err := d.integrationRecord(ctx, team, id); err != nil {
		return nil, err
	}
	return &auth.Principal{
		Kind:  auth.KindIntegration,
		Name:  resolver.IntegrationName(team, id),
		ID:    id,
		Teams: map[string]auth.Role{team: auth.RoleMember},
	}, nil
}

// runnerPrincipal is runner id, a member of each team it is granted.
// NotFound when the runner does not exist.
func (d *Directory) runnerPrincipal(ctx context.Context, id string) (*auth.Principal, error) {
	rec, _, err := d.runnerRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &auth.Principal{
		Kind:  auth.KindRunner,
		Name:  resolver.RunnerName(id),
		ID:    id,
		Teams: make(map[string]auth.Role, len(rec.Teams)),
	}
	for _, t := range rec.Teams {
		p.Teams[t] = auth.RoleMember
	}
	return p, nil
}

// mayManageTokens reports whether the person p may create, list and revoke
// the tokens of owner: system admins anyone's, people their own, team
// admins those of their team's agent identities and integrations. A runner's tokens are for
// system admins alone, like the runner itself.
func mayManageTokens(p *auth.Principal, owner resolver.PrincipalRef) bool {
	if p.SystemAdmin {
		return true
	}
	switch owner.Kind {
	case auth.KindUser:
		return p.Name == owner.Name
	case auth.KindAgent:
		team, _ := owner.AgentID()
		return team != "" && p.IsAdmin(team)
	case auth.KindIntegration:
		team, _ := owner.IntegrationID()
		return team != "" && p.IsAdmin(team)
	}
	return false
}

// DefaultMaxTokenLifetime is the longest a token made with CreateToken
// may live, unless TokenPolicy says otherwise: 90 days.
const DefaultMaxTokenLifetime = 90 * 24 * time.Hour

// TokenPolicy is the rules of issuing tokens an operator sets.
type TokenPolicy struct {
	// MaxLifetime bounds the lifetime of every token made with
	// CreateToken, by anyone, for anyone (system admins included). A
	// request without a lifetime gets the longest allowed.
	MaxLifetime time.Duration
}

// DefaultTokenPolicy is the policy of New.
func DefaultTokenPolicy() TokenPolicy { return TokenPolicy{MaxLifetime: DefaultMaxTokenLifetime} }

// SetTokenPolicy replaces the rules of issuing tokens; call it before
// serving. Returns Invalid when MaxLifetime is not positive.
func (d *Directory) SetTokenPolicy(p TokenPolicy) error {
	if p.MaxLifetime <= 0 {
		return errs.Field("max_lifetime", "must be positive")
	}
	d.tokens = p
	return nil
}

// Notices are the revocation notices of this Directory's tokens: the
// internal AuthService streams them to the other services, and the
// resolver's own cache listens (Notices.Local).
func (d *Directory) Notices() *auth.Notices { return d.notices }

// detailIssuerToken names, in token.create and cascaded token.revoke
// events, the id of the token that issued the token.
const detailIssuerToken = "issuer_token"

// issuerOf reads the token the caller p authenticated with, for a token
// p issues for itself: its record, and the condition that it is still as
// read (not revoked meanwhile) when the child is stored. ok is false when
// p holds no token (made in-process, as in tests).
func (d *Directory) issuerOf(ctx context.Context, p *auth.Principal) (parent Token, cond kv.Cond, ok bool, err error) {
	if p.TokenID == "" {
		return Token{}, kv.Cond{}, false, nil
	}
	var rec tokenRecord
	raw, err := d.s.Get(ctx, resolver.TokenKey(p.TokenID), &rec)
	if resolver.IsNotFound(err) {
		return Token{}, kv.Cond{}, false, badToken()
	}
	if err != nil {
		return Token{}, kv.Cond{}, false, fmt.Errorf("read the issuing token: %w", err)
	}
	parent = rec.token()
	if parent.Revoked() || parent.Expired(d.s.Now()) {
		return Token{}, kv.Cond{}, false, badToken()
	}
	return parent, kv.Equal(resolver.TokenKey(p.TokenID), raw), true, nil
}

// expiry decides when a token issued at now, asked to live ttl (0: as long
// as allowed), expires: never later than the policy's maximum lifetime
// and, for a token its creator issues for itself, than the token it was
// issued with (parentExpire; zero: that one never expires). A ttl beyond
// either is refused, naming the bound, rather than cut short: a token
// that dies earlier than asked would fail a script later, far from here.
func (d *Directory) expiry(now time.Time, ttl time.Duration, parentExpire time.Time) (time.Time, error) {
	max := d.tokens.MaxLifetime
	bound := now.Add(max)
	if !parentExpire.IsZero() && parentExpire.Before(bound) {
		bound = parentExpire
	}
	if ttl == 0 {
		return bound, nil
	}
	if ttl > max {
		return time.Time{}, errs.Field("ttl", "must be at most %s: the longest a token may live (ozresolverd --max-token-lifetime)", days(max))
	}
	if exp := now.Add(ttl); exp.After(bound) {
		return time.Time{}, errs.Field("ttl", "must end by %s, %s from now: a token you issue for yourself expires no later than the token you issue it with",
			bound.UTC().Format(time.RFC3339), days(bound.Sub(now).Truncate(time.Second)))
	}
	return now.Add(ttl), nil
}

// days says d in days when it is whole days ("90 days"), else as Go does.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
	}
	return d.String()
}

// CreateToken issues a token for owner that expires after ttl (0: the
// longest allowed, see expiry),
// and returns it with the bearer token, which is shown only here. Callers
// are people: system admins for anyone; users for themselves; team admins
// for their team's agent identities (runs started with such a token
// execute as the identity). The token records its issuer, the caller's
// token; one the caller issues for itself is that token's child, revoked
// with it (RevokeToken).
//
// Returns Invalid (fields principal, ttl, description), PermissionDenied,
// NotFound when the user, identity or runner does not exist,
// Unauthenticated when the caller's own token was revoked meanwhile.
func (d *Directory) CreateToken(ctx context.Context, owner resolver.PrincipalRef, ttl time.Duration, description string) (Token, string, error) {
	ref, ok := resolver.ParsePrincipal(owner.Name)
	if !ok || ref.Kind != owner.Kind {
		return Token{}, "", errs.Field("principal", resolver.PrincipalRule)
	}
	if ttl < 0 {
		return Token{}, "", errs.Field("ttl", "must not be negative")
	}
	if err := resolver.CheckDescription(description); err != nil {
		return Token{}, "", err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return Token{}, "", err
	}
	if !mayManageTokens(p, ref) {
		return Token{}, "", resolver.Denied("only system admins may create tokens for others (team admins: for their team's agent identities and integrations)")
	}
	exists, missing := d.principalExists(ref)
	parent, parentHolds, hasParent, err := d.issuerOf(ctx, p)
	if err != nil {
		return Token{}, "", err
	}
	self := hasParent && ref.Name == p.Name
	var parentExpire time.Time
	if self {
		parentExpire = parent.ExpireTime
	}
	now := d.s.Now()
	expire, err := d.expiry(now, ttl, parentExpire)
	if err != nil {
		return Token{}, "", err
	}
	tok := Token{Principal: ref, Description: description, CreateTime: now, ExpireTime: expire, CreateBy: p.Name, Issuer: parent.ID}
	conds := []kv.Cond{exists}
	if hasParent {
		// The issuer must still be live when the token is stored: a
		// child stored after its parent's revocation would escape the
		// cascade.
		conds = append(conds, parentHolds)
	}
	tok, bearer, err := d.issue(ctx, tok, conds, nil, func(t Token) []*auditv1.Event {
		return []*auditv1.Event{d.tokenEvent(ctx, resolver.ActionTokenCreate, t)}
	})
	switch resolver.Conflict(err) {
	case 0:
		return Token{}, "", missing
	case 1:
		return Token{}, "", badToken() // the caller's token was revoked meanwhile
	}
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	return tok, bearer, nil
}

// principalExists returns the condition "owner exists" and the error that
// says it does not.
func (d *Directory) principalExists(owner resolver.PrincipalRef) (kv.Cond, error) {
	switch owner.Kind {
	case auth.KindAgent:
		team, id := owner.AgentID()
		return resolver.AgentExists(team, id)
	case auth.KindIntegration:
		team, id := owner.IntegrationID()
		return kv.Present(resolver.IntegrationKey(team, id)), errs.E(errs.KindNotFound, "integration %q not found in team %q", id, team)
	case auth.KindRunner:
		id := owner.RunnerID()
		return kv.Present(resolver.RunnerKey(id)), errs.E(errs.KindNotFound, "runner %q not found", id)
	}
	uid := owner.UserID()
	return kv.Present(resolver.UserKey(uid)), errs.E(errs.KindNotFound, "user %q not found", uid)
}

// tokenEvent is the event of action (token.create, token.revoke) on t: it
// names the token and its owner, never the token or its hash.
func (d *Directory) tokenEvent(ctx context.Context, action string, t Token) *auditv1.Event {
	details := map[string]string{resolver.DetailPrincipal: t.Principal.Name}
	if action == resolver.ActionTokenCreate && !t.ExpireTime.IsZero() {
		details[resolver.DetailExpireTime] = t.ExpireTime.UTC().Format(time.RFC3339)
	}
	if action == resolver.ActionTokenCreate && t.Issuer != "" {
		details[detailIssuerToken] = t.Issuer
	}
	return d.s.Event(ctx, action, t.Name(), resolver.TeamOfPrincipal(t.Principal), details)
}

// issue gives tok a fresh id and stores it, with writes and the audit
// events that events returns for it (nil: none), when conds hold. A child
// (tok.Child) is indexed under its issuer, so that revoking the issuer
// revokes it. A failed condition comes back as the *ConflictError of
// Apply; a token id that is taken already (2⁻⁶⁴) is drawn again.
func (d *Directory) issue(ctx context.Context, tok Token, conds []kv.Cond, writes []kv.Write, events func(Token) []*auditv1.Event) (Token, string, error) {
	for range 3 {
		id, bearer := newBearer()
		tok.ID = id
		c := append(slices.Clone(conds), kv.Absent(resolver.TokenKey(id)))
		w := append(slices.Clone(writes),
			kv.Put(resolver.TokenKey(id), resolver.Encode(toTokenRecord(tok, auth.TokenKey(bearer)))),
			kv.Put(resolver.PrincipalTokensPrefix(tok.Principal.Name)+id, resolver.Marker))
		if tok.Child() {
			w = append(w, kv.Put(resolver.TokenChildrenPrefix(tok.Issuer)+id, resolver.Marker))
		}
		var evs []*auditv1.Event
		if events != nil {
			evs = events(tok)
		}
		err := d.s.Apply(ctx, c, w, evs...)
		if resolver.Conflict(err) == len(conds) {
			continue
		}
		if err != nil {
			return Token{}, "", err
		}
		return tok, bearer, nil
	}
	return Token{}, "", errors.New("no free token id after 3 draws")
}

// ListTokens lists the tokens of principal (a resource name, see
// ParsePrincipal), or every token when principal is empty, in token id
// order. Callers are people: system admins for anyone; users for
// themselves; team admins for their team's agent identities.
//
// Returns Invalid (fields principal, page_size, page_token),
// PermissionDenied.
func (d *Directory) ListTokens(ctx context.Context, principal string, page resolver.Page) ([]Token, string, error) {
	var owner resolver.PrincipalRef
	if principal != "" {
		var ok bool
		if owner, ok = resolver.ParsePrincipal(principal); !ok {
			return nil, "", errs.Field("principal", resolver.PrincipalRule+", or empty")
		}
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return nil, "", err
	}
	var toks []Token
	switch {
	case principal == "" && !p.SystemAdmin:
		return nil, "", resolver.Denied("only system admins may list every token")
	case principal == "":
		recs, err := resolver.Scan[tokenRecord](ctx, d.s, resolver.PrefixTokens, resolver.AfterKey(resolver.PrefixTokens, after), size+1)
		if err != nil {
			return nil, "", fmt.Errorf("list tokens: %w", err)
		}
		for _, r := range recs {
			toks = append(toks, r.token())
		}
	case !mayManageTokens(p, owner):
		return nil, "", resolver.Denied("only system admins may list the tokens of others (team admins: of their team's agent identities and integrations)")
	default:
		recs, err := d.tokensOf(ctx, owner.Name, after, size+1)
		if err != nil {
			return nil, "", fmt.Errorf("list tokens: %w", err)
		}
		for _, r := range recs {
			toks = append(toks, r.token())
		}
	}
	toks, next := resolver.PageOf(toks, size, func(t Token) string { return t.ID })
	return toks, next, nil
}

// tokensOf reads up to limit (<= 0: all) token records of the principal
// named name, after token id after, through the principaltokens index.
func (d *Directory) tokensOf(ctx context.Context, name, after string, limit int) ([]tokenRecord, error) {
	prefix := resolver.PrincipalTokensPrefix(name)
	return d.indexedTokens(ctx, prefix, resolver.AfterKey(prefix, after), limit)
}

// indexedTokens reads the tokens an index lists (keys prefix+{token id},
// after the key after, at most limit; <= 0: all), in index order, in one
// read of the token records; an entry whose token is gone is skipped.
func (d *Directory) indexedTokens(ctx context.Context, prefix, after string, limit int) ([]tokenRecord, error) {
	kvs, err := d.s.KV().Scan(ctx, prefix, after, limit)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(kvs))
	for i, e := range kvs {
		keys[i] = resolver.TokenKey(strings.TrimPrefix(e.Key, prefix))
	}
	raws, err := d.s.KV().GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	var out []tokenRecord
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		var rec tokenRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("decode %s: %w", keys[i], err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// RevokeTokens revokes every live token of the principal named name (an
// agent identity, a runner or an integration being deleted, or created
// again under an old name) with the caller's change, which conds guard:
// it revokes all but the last batch of them in Applies of their own, each
// guarded by conds and recorded as a token.revoke event on name (in
// team's chain) giving reason, and returns the writes that revoke the
// rest, for the caller's own Apply, and how many they revoke, for its
// event (resolver.RevokedDetail). A *kv.ConflictError means that one of
// conds failed, as it would in the caller's Apply.
//
// Revoking in the Apply that deletes or creates the principal means that
// no token outlives its principal and that a principal created again never
// inherits the tokens of an earlier one of the same name. Token records
// change only by gaining a RevokeTime, so they are rewritten without
// conditions: at worst a token revoked meanwhile gets a later RevokeTime.
func (d *Directory) RevokeTokens(ctx context.Context, conds []kv.Cond, name, team, reason string, now time.Time) (writes []kv.Write, n int, err error) {
	recs, err := d.liveTokens(ctx, name, now)
	if err != nil {
		return nil, 0, err
	}
	if recs, err = d.revokeSurplus(ctx, conds, recs, now, name, team, reason); err != nil {
		return nil, 0, err
	}
	return revocations(recs, now), len(recs), nil
}

// revokeBatch is how many revocations go in one Apply beside the caller's
// own conditions and writes, within the Store's limit of 128.
const revokeBatch = 64

// liveTokens returns the token records of the principal named name that
// are neither revoked nor expired at now.
func (d *Directory) liveTokens(ctx context.Context, name string, now time.Time) ([]tokenRecord, error) {
	recs, err := d.tokensOf(ctx, name, "", 0)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", name, err)
	}
	return slices.DeleteFunc(recs, func(r tokenRecord) bool {
		t := r.token()
		return t.Revoked() || t.Expired(now)
	}), nil
}

// revocations are the writes revoking recs at now.
func revocations(recs []tokenRecord, now time.Time) []kv.Write {
	w := make([]kv.Write, 0, len(recs))
	for _, r := range recs {
		r.RevokeTime = &now
		w = append(w, kv.Put(resolver.TokenKey(r.ID), resolver.Encode(r)))
	}
	return w
}

// revokeSurplus revokes all but the last revokeBatch of recs, in Applies
// guarded by conds (the caller's view of the principal, as in its final
// Apply, so that a *ConflictError means the same), and returns the rest
// for the caller's final Apply. Each of these Applies records a
// token.revoke event on the principal owner (in team's chain) saying how
// many tokens it revoked and why; the caller's final event counts the
// rest.
func (d *Directory) revokeSurplus(ctx context.Context, conds []kv.Cond, recs []tokenRecord, now time.Time, owner, team, reason string) ([]tokenRecord, error) {
	for len(recs) > revokeBatch {
		ev := d.s.Event(ctx, resolver.ActionTokenRevoke, owner, team, map[string]string{
			resolver.DetailPrincipal:     owner,
			resolver.DetailRevokedTokens: strconv.Itoa(revokeBatch),
			audit.DetailReason:           reason,
		})
		if err := d.s.Apply(ctx, conds, revocations(recs[:revokeBatch], now), ev); err != nil {
			return nil, err
		}
		recs = recs[revokeBatch:]
	}
	return recs, nil
}

// RevokeToken revokes token id and returns it, with every token issued
// from it for its own principal (its children, theirs, and so on: see
// Token.Child), each recorded as its own token.revoke event, so that each
// token's history is found under its own name. Revoking a revoked token
// revokes what is left of its descendants, if anything, and returns it as
// it is. Callers are people: system admins for any token; users for
// their own; team admins for those of their team's agent identities.
//
// Once the revocation is stored it is published (Notices): the resolver's
// own cache drops the tokens at once, and RevokeToken returns only when
// every service subscribed to the notices has dropped them too (or has
// not answered within auth.DefaultAckWait: it refuses them within its
// cache's TTL, auth.DefaultCacheTTL).
//
// Returns Invalid (field token_id), PermissionDenied (also for a missing
// token, unless the caller is a system admin), NotFound.
func (d *Directory) RevokeToken(ctx context.Context, id string) (Token, error) {
	if !resolver.ValidTokenID(id) {
		return Token{}, errs.Field("token_id", resolver.TokenIDRule)
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return Token{}, err
	}
	notYours := resolver.Denied("only the token's owner and system admins may revoke it (team admins: the tokens of their team's agent identities and integrations)")
	for range 5 {
		var rec tokenRecord
		raw, err := d.s.Get(ctx, resolver.TokenKey(id), &rec)
		if resolver.IsNotFound(err) {
			if !p.SystemAdmin {
				return Token{}, notYours
			}
			return Token{}, errs.E(errs.KindNotFound, "token %q not found", id)
		}
		if err != nil {
			return Token{}, fmt.Errorf("revoke token: %w", err)
		}
		if !mayManageTokens(p, rec.token().Principal) {
			return Token{}, notYours
		}
		var revoked []string
		if rec.RevokeTime == nil {
			now := d.s.Now()
			rec.RevokeTime = &now
			err = d.s.Apply(ctx, []kv.Cond{kv.Equal(resolver.TokenKey(id), raw)}, []kv.Write{kv.Put(resolver.TokenKey(id), resolver.Encode(rec))},
				d.tokenEvent(ctx, resolver.ActionTokenRevoke, rec.token()))
			if resolver.Conflict(err) == 0 {
				continue // changed meanwhile (revoked by someone else): look again
			}
			if err != nil {
				return Token{}, fmt.Errorf("revoke token: %w", err)
			}
			revoked = append(revoked, id)
		}
		// Only now, with the token revoked, can no more children be
		// issued from it (CreateToken's condition): its descendants are
		// a set that no longer grows.
		more, err := d.revokeDescendants(ctx, id)
		revoked = append(revoked, more...)
		d.notices.Publish(context.WithoutCancel(ctx), revoked)
		if err != nil {
			return Token{}, fmt.Errorf("revoke the tokens issued from token %q: %w", id, err)
		}
		return rec.token(), nil
	}
	return Token{}, errs.E(errs.KindUnavailable, "token %q is changing; try again", id)
}

// cascadeBatch is how many tokens one Apply of revokeDescendants revokes:
// a record and an event each, within the Store's limit of 128.
const cascadeBatch = 50

// cascadeReason is the reason of a token.revoke event of a descendant.
const cascadeReason = "the token it was issued with was revoked"

// revokeDescendants revokes the live children of the revoked token id,
// then theirs, level by level, and returns their ids. Each level is read
// after the one above is revoked, when it can no longer grow.
func (d *Directory) revokeDescendants(ctx context.Context, id string) ([]string, error) {
	var revoked []string
	level := []string{id}
	for len(level) > 0 {
		var next []tokenRecord
		for _, parent := range level {
			kids, err := d.children(ctx, parent)
			if err != nil {
				return revoked, err
			}
			next = append(next, kids...)
		}
		level = level[:0]
		for batch := range slices.Chunk(next, cascadeBatch) {
			now := d.s.Now()
			var w []kv.Write
			var evs []*auditv1.Event
			for _, r := range batch {
				level = append(level, r.ID) // revoked already or now: look at its children
				if r.RevokeTime != nil {
					continue
				}
				r.RevokeTime = &now
				t := r.token()
				w = append(w, kv.Put(resolver.TokenKey(r.ID), resolver.Encode(r)))
				evs = append(evs, d.s.Event(ctx, resolver.ActionTokenRevoke, t.Name(), resolver.TeamOfPrincipal(t.Principal), map[string]string{
					resolver.DetailPrincipal: t.Principal.Name,
					detailIssuerToken:        t.Issuer,
					audit.DetailReason:       cascadeReason,
				}))
			}
			if len(w) == 0 {
				continue
			}
			// Token records change only by gaining a RevokeTime: no
			// condition is needed (at worst one revoked meanwhile gets a
			// later RevokeTime).
			if err := d.s.Apply(ctx, nil, w, evs...); err != nil {
				return revoked, err
			}
			for _, r := range batch {
				if r.RevokeTime == nil {
					revoked = append(revoked, r.ID)
				}
			}
		}
	}
	return revoked, nil
}

// children reads the token records issued from token id for its own
// principal (the tokenchildren index).
func (d *Directory) children(ctx context.Context, id string) ([]tokenRecord, error) {
	return d.indexedTokens(ctx, resolver.TokenChildrenPrefix(id), "", 0)
}
