package resolver

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Bearer tokens look like
//
//	oz_<token id>_<secret>
//
// where the token id is 16 lowercase hexadecimal digits (64 random bits;
// shown in lists, used to revoke) and the secret is 32 random bytes in
// unpadded URL-safe base64 (43 characters, 256 bits). Only the SHA-256 of
// the whole token (auth.TokenKey) is stored. Embedding the id lets
// Authenticate find the record with one read and compare hashes in
// constant time.
const (
	TokenPrefix      = "oz_"
	tokenIDBytes     = 8
	tokenIDLen       = 2 * tokenIDBytes
	tokenSecretBytes = 32
	tokenSecretLen   = 43 // base64.RawURLEncoding.EncodedLen(tokenSecretBytes)
	tokenLen         = len(TokenPrefix) + tokenIDLen + 1 + tokenSecretLen

	// MaxDescriptionLength is the longest token description, in characters.
	MaxDescriptionLength = 1024
)

// Token is a bearer token's record; the token itself is never stored.
type Token struct {
	ID          string
	Principal   PrincipalRef // who the token authenticates as
	Description string
	CreateTime  time.Time
	ExpireTime  time.Time // zero: never expires
	RevokeTime  time.Time // zero: not revoked
	CreateBy    string    // resource name of the creator; "" when made by ozresolverd itself
}

// Name is the token's resource name, "tokens/{token_id}".
func (t Token) Name() string { return TokenName(t.ID) }

// Revoked reports whether the token was revoked.
func (t Token) Revoked() bool { return !t.RevokeTime.IsZero() }

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpireTime.IsZero() && !now.Before(t.ExpireTime)
}

// ValidTokenID reports whether id has the shape of a token id.
func ValidTokenID(id string) bool {
	if len(id) != tokenIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// TokenIDRule says what a token id is, for error messages.
const TokenIDRule = "must be 16 lowercase hexadecimal digits"

func newBearer() (id, bearer string) {
	var b [tokenIDBytes + tokenSecretBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	id = hex.EncodeToString(b[:tokenIDBytes])
	return id, TokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[tokenIDBytes:])
}

// parseBearer returns the token id embedded in a well-formed bearer token.
func parseBearer(s string) (string, bool) {
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return "", false
	}
	rest := s[len(TokenPrefix):]
	id, secret := rest[:tokenIDLen], rest[tokenIDLen+1:]
	if rest[tokenIDLen] != '_' || !ValidTokenID(id) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}

// badToken is the one answer to every token that does not authenticate.
// It never echoes the token.
func badToken() error {
	return errs.E(errs.KindUnauthenticated, "invalid, expired or revoked token")
}

// Authenticate implements auth.Authenticator: it resolves a bearer token to
// its principal, with the principal's teams and roles as they are now.
//
// Returns Unauthenticated for a malformed, unknown, expired or revoked
// token, and for a token whose principal no longer exists.
func (d *Directory) Authenticate(ctx context.Context, bearer string) (*auth.Principal, error) {
	id, ok := parseBearer(bearer)
	if !ok {
		return nil, badToken()
	}
	var rec tokenRecord
	if _, err := d.get(ctx, tokenKey(id), &rec); err != nil {
		if isNotFound(err) {
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
	if tok.Revoked() || tok.Expired(d.clock()) {
		return nil, badToken()
	}
	uid := tok.Principal.userID()
	if uid == "" {
		return nil, badToken() // runners and agent identities come with run resolution
	}
	u, err := d.user(ctx, uid)
	if isNotFound(err) {
		return nil, badToken()
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	ms, err := d.memberships(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	p := &auth.Principal{
		Kind:        auth.KindUser,
		Name:        u.Name(),
		ID:          u.ID,
		SystemAdmin: u.SystemAdmin,
		Teams:       make(map[string]auth.Role, len(ms)),
		TokenID:     tok.ID,
		TokenExpire: tok.ExpireTime,
	}
	for _, m := range ms {
		p.Teams[m.Team] = m.Role
	}
	return p, nil
}

// CreateToken issues a token for owner (a user, for now) that expires
// after ttl (0: never), and returns it with the bearer token, which is
// shown only here. System admins for anyone; people for themselves.
//
// Returns Invalid (fields principal, ttl, description), PermissionDenied,
// NotFound when the user does not exist.
func (d *Directory) CreateToken(ctx context.Context, owner PrincipalRef, ttl time.Duration, description string) (Token, string, error) {
	uid := owner.userID()
	if !ValidID(uid) {
		return Token{}, "", errs.Field("principal", "must be users/{user}")
	}
	if ttl < 0 {
		return Token{}, "", errs.Field("ttl", "must not be negative")
	}
	if err := checkDescription(description); err != nil {
		return Token{}, "", err
	}
	p, err := person(ctx)
	if err != nil {
		return Token{}, "", err
	}
	if !p.SystemAdmin && p.Name != owner.Name {
		return Token{}, "", denied("only system admins may create tokens for others")
	}
	now := d.clock()
	tok := Token{Principal: owner, Description: description, CreateTime: now, CreateBy: p.Name}
	if ttl > 0 {
		tok.ExpireTime = now.Add(ttl)
	}
	tok, bearer, err := d.issue(ctx, tok, []Cond{Present(userKey(uid))}, nil)
	if conflict(err) == 0 {
		return Token{}, "", errs.E(errs.KindNotFound, "user %q not found", uid)
	}
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	return tok, bearer, nil
}

func checkDescription(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxDescriptionLength {
		return errs.Field("description", "must be valid UTF-8 of at most %d characters", MaxDescriptionLength)
	}
	return nil
}

// issue gives tok a fresh id and stores it, with writes, when conds hold. A
// failed condition comes back as the *ConflictError of Apply; a token id
// that is taken already (2⁻⁶⁴) is drawn again.
func (d *Directory) issue(ctx context.Context, tok Token, conds []Cond, writes []Write) (Token, string, error) {
	for range 3 {
		id, bearer := newBearer()
		tok.ID = id
		c := append(slices.Clone(conds), Absent(tokenKey(id)))
		w := append(slices.Clone(writes),
			Put(tokenKey(id), encode(toTokenRecord(tok, auth.TokenKey(bearer)))),
			Put(principalTokensPrefix(tok.Principal.Name)+id, marker))
		err := d.store.Apply(ctx, c, w)
		if conflict(err) == len(conds) {
			continue
		}
		if err != nil {
			return Token{}, "", err
		}
		return tok, bearer, nil
	}
	return Token{}, "", errors.New("no free token id after 3 draws")
}

// ListTokens lists the tokens of principal (a resource name), or every
// token when principal is empty, in token id order. System admins for
// anyone; people for themselves.
//
// Returns Invalid (fields principal, page_size, page_token),
// PermissionDenied.
func (d *Directory) ListTokens(ctx context.Context, principal string, page Page) ([]Token, string, error) {
	var owner PrincipalRef
	if principal != "" {
		var ok bool
		if owner, ok = ParsePrincipal(principal); !ok {
			return nil, "", errs.Field("principal", "must be users/{user} or empty")
		}
	}
	size, after, err := page.cursor()
	if err != nil {
		return nil, "", err
	}
	p, err := person(ctx)
	if err != nil {
		return nil, "", err
	}
	var toks []Token
	switch {
	case principal == "" && !p.SystemAdmin:
		return nil, "", denied("only system admins may list every token")
	case principal == "":
		recs, err := scan[tokenRecord](ctx, d.store, prefixTokens, afterKey(prefixTokens, after), size+1)
		if err != nil {
			return nil, "", fmt.Errorf("list tokens: %w", err)
		}
		for _, r := range recs {
			toks = append(toks, r.token())
		}
	case !p.SystemAdmin && p.Name != owner.Name:
		return nil, "", denied("only system admins may list the tokens of others")
	default:
		prefix := principalTokensPrefix(owner.Name)
		kvs, err := d.store.Scan(ctx, prefix, afterKey(prefix, after), size+1)
		if err != nil {
			return nil, "", fmt.Errorf("list tokens: %w", err)
		}
		for _, kv := range kvs {
			var rec tokenRecord
			_, err := d.get(ctx, tokenKey(strings.TrimPrefix(kv.Key, prefix)), &rec)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, "", fmt.Errorf("list tokens: %w", err)
			}
			toks = append(toks, rec.token())
		}
	}
	toks, next := pageOf(toks, size, func(t Token) string { return t.ID })
	return toks, next, nil
}

// RevokeToken revokes token id and returns it; revoking a revoked token
// changes nothing and returns it as it is. System admins for any token;
// people for their own. The resolver refuses a revoked token at once;
// other services within auth.DefaultCacheTTL.
//
// Returns Invalid (field token_id), PermissionDenied (also for a missing
// token, unless the caller is a system admin), NotFound.
func (d *Directory) RevokeToken(ctx context.Context, id string) (Token, error) {
	if !ValidTokenID(id) {
		return Token{}, errs.Field("token_id", TokenIDRule)
	}
	p, err := person(ctx)
	if err != nil {
		return Token{}, err
	}
	notYours := denied("only the token's owner and system admins may revoke it")
	for range 5 {
		var rec tokenRecord
		raw, err := d.get(ctx, tokenKey(id), &rec)
		if isNotFound(err) {
			if !p.SystemAdmin {
				return Token{}, notYours
			}
			return Token{}, errs.E(errs.KindNotFound, "token %q not found", id)
		}
		if err != nil {
			return Token{}, fmt.Errorf("revoke token: %w", err)
		}
		if !p.SystemAdmin && rec.Principal != p.Name {
			return Token{}, notYours
		}
		if rec.RevokeTime != nil {
			return rec.token(), nil
		}
		now := d.clock()
		rec.RevokeTime = &now
		err = d.store.Apply(ctx, []Cond{Equal(tokenKey(id), raw)}, []Write{Put(tokenKey(id), encode(rec))})
		if conflict(err) == 0 {
			continue // changed meanwhile (revoked by someone else): look again
		}
		if err != nil {
			return Token{}, fmt.Errorf("revoke token: %w", err)
		}
		return rec.token(), nil
	}
	return Token{}, errs.E(errs.KindUnavailable, "token %q is changing; try again", id)
}
