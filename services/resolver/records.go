package resolver

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Keys of the records in the Store. Ids never contain "/", so every key is
// unambiguous and a prefix ending in "/" scans exactly one collection.
//
//	teams/{team}                          teamRecord
//	users/{user}                          userRecord
//	sysadmins/{user}                      marker: the user is a system admin
//	members/{team}/{user}                 membershipRecord
//	userteams/{user}/{team}               membershipRecord (index by user)
//	tokens/{token_id}                     tokenRecord
//	principaltokens/{principal}/{token_id} marker (index by owner; principal is a resource name)
const (
	prefixTeams           = "teams/"
	prefixUsers           = "users/"
	prefixSysadmins       = "sysadmins/"
	prefixMembers         = "members/"
	prefixUserTeams       = "userteams/"
	prefixTokens          = "tokens/"
	prefixPrincipalTokens = "principaltokens/"
)

func teamKey(id string) string                 { return prefixTeams + id }
func userKey(id string) string                 { return prefixUsers + id }
func sysadminKey(id string) string             { return prefixSysadmins + id }
func memberKey(team, user string) string       { return prefixMembers + team + "/" + user }
func userTeamKey(user, team string) string     { return prefixUserTeams + user + "/" + team }
func tokenKey(id string) string                { return prefixTokens + id }
func principalTokensPrefix(name string) string { return prefixPrincipalTokens + name + "/" }

// marker is the value of index entries that carry no data.
var marker = []byte("{}")

type teamRecord struct {
	ID         string    `json:"id"`
	CreateTime time.Time `json:"create_time"`
}

type userRecord struct {
	ID          string    `json:"id"`
	SystemAdmin bool      `json:"system_admin,omitempty"`
	CreateTime  time.Time `json:"create_time"`
}

type membershipRecord struct {
	Team       string    `json:"team"`
	User       string    `json:"user"`
	Role       string    `json:"role"` // "member" or "admin"
	CreateTime time.Time `json:"create_time"`
}

// tokenRecord holds a token's SHA-256, never the token.
type tokenRecord struct {
	ID            string     `json:"id"`
	SHA256        string     `json:"sha256"` // hex of auth.TokenKey(bearer token)
	PrincipalKind string     `json:"principal_kind"`
	Principal     string     `json:"principal"`
	Description   string     `json:"description,omitempty"`
	CreateTime    time.Time  `json:"create_time"`
	ExpireTime    *time.Time `json:"expire_time,omitempty"`
	RevokeTime    *time.Time `json:"revoke_time,omitempty"`
	CreateBy      string     `json:"create_by,omitempty"`
}

func (r teamRecord) team() Team { return Team{ID: r.ID, CreateTime: r.CreateTime} }

func (r userRecord) user() User {
	return User{ID: r.ID, SystemAdmin: r.SystemAdmin, CreateTime: r.CreateTime}
}

func (r membershipRecord) membership() Membership {
	role := auth.RoleMember
	if r.Role == auth.RoleAdmin.String() {
		role = auth.RoleAdmin
	}
	return Membership{Team: r.Team, User: r.User, Role: role, CreateTime: r.CreateTime}
}

func toMembershipRecord(m Membership) membershipRecord {
	return membershipRecord{Team: m.Team, User: m.User, Role: m.Role.String(), CreateTime: m.CreateTime}
}

func (r tokenRecord) token() Token {
	t := Token{
		ID:          r.ID,
		Principal:   PrincipalRef{Kind: kindFromString(r.PrincipalKind), Name: r.Principal},
		Description: r.Description,
		CreateTime:  r.CreateTime,
		CreateBy:    r.CreateBy,
	}
	if r.ExpireTime != nil {
		t.ExpireTime = *r.ExpireTime
	}
	if r.RevokeTime != nil {
		t.RevokeTime = *r.RevokeTime
	}
	return t
}

func toTokenRecord(t Token, sum [32]byte) tokenRecord {
	r := tokenRecord{
		ID:            t.ID,
		SHA256:        hex.EncodeToString(sum[:]),
		PrincipalKind: t.Principal.Kind.String(),
		Principal:     t.Principal.Name,
		Description:   t.Description,
		CreateTime:    t.CreateTime,
		CreateBy:      t.CreateBy,
	}
	if !t.ExpireTime.IsZero() {
		r.ExpireTime = &t.ExpireTime
	}
	if !t.RevokeTime.IsZero() {
		r.RevokeTime = &t.RevokeTime
	}
	return r
}

func kindFromString(s string) auth.Kind {
	for _, k := range []auth.Kind{auth.KindUser, auth.KindRunner, auth.KindAgent, auth.KindIntegration} {
		if k.String() == s {
			return k
		}
	}
	return 0
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Records are plain structs of strings, bools and times.
		panic(fmt.Sprintf("resolver: encode %T: %v", v, err))
	}
	return b
}

// get reads the record at key into v and returns its raw bytes (for
// IfEqual conditions). A missing key is an errs.NotFound error.
func (d *Directory) get(ctx context.Context, key string, v any) ([]byte, error) {
	b, err := d.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return b, nil
}

// scan reads up to limit records under prefix after the key after.
func scan[R any](ctx context.Context, s kv.Store, prefix, after string, limit int) ([]R, error) {
	kvs, err := s.Scan(ctx, prefix, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]R, 0, len(kvs))
	for _, kv := range kvs {
		var r R
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// conflict returns the index of the failed condition when err is a
// *ConflictError, else -1.
func conflict(err error) int {
	var ce *kv.ConflictError
	if errors.As(err, &ce) {
		return ce.Index
	}
	return -1
}

func isNotFound(err error) bool { return errors.Is(err, errs.NotFound) }
