package directory

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
)

// The directory's own records (keys: resolver.UserKey, TokenKey,
// RunnerKey, IntegrationKey, AllowKey); teams and memberships are
// resolver.TeamRecord and resolver.MembershipRecord, which runs read too.

type userRecord struct {
	ID          string    `json:"id"`
	SystemAdmin bool      `json:"system_admin,omitempty"`
	CreateTime  time.Time `json:"create_time"`
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
	Issuer        string     `json:"issuer,omitempty"` // the id of the token it was issued with
}

type runnerRecord struct {
	ID         string    `json:"id"`
	Teams      []string  `json:"teams"` // team ids, sorted
	CreateTime time.Time `json:"create_time"`
	CreateBy   string    `json:"create_by,omitempty"`
}

func teamOf(r resolver.TeamRecord) Team { return Team{ID: r.ID, CreateTime: r.CreateTime} }

func (r userRecord) user() User {
	return User{ID: r.ID, SystemAdmin: r.SystemAdmin, CreateTime: r.CreateTime}
}

func membershipOf(r resolver.MembershipRecord) Membership {
	return Membership{Team: r.Team, User: r.User, Role: r.RoleOf(), CreateTime: r.CreateTime}
}

func toMembershipRecord(m Membership) resolver.MembershipRecord {
	return resolver.MembershipRecord{Team: m.Team, User: m.User, Role: m.Role.String(), CreateTime: m.CreateTime}
}

func (r tokenRecord) token() Token {
	t := Token{
		ID:          r.ID,
		Principal:   resolver.PrincipalRef{Kind: kindFromString(r.PrincipalKind), Name: r.Principal},
		Description: r.Description,
		CreateTime:  r.CreateTime,
		CreateBy:    r.CreateBy,
		Issuer:      r.Issuer,
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
		Issuer:        t.Issuer,
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

// runnerRecord reads runner id. NotFound names it.
func (d *Directory) runnerRecord(ctx context.Context, id string) (runnerRecord, []byte, error) {
	var rec runnerRecord
	raw, err := d.s.Get(ctx, resolver.RunnerKey(id), &rec)
	if resolver.IsNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "runner %q not found", id)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get runner: %w", err)
	}
	return rec, raw, nil
}
