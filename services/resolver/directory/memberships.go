package directory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Membership is a user's place in a team, with a role.
type Membership struct {
	Team       string // team id
	User       string // user id
	Role       auth.Role
	CreateTime time.Time
}

// Name is the membership's resource name, "teams/{team}/members/{user}".
func (m Membership) Name() string { return resolver.MembershipName(m.Team, m.User) }

// CreateMembership adds user to team with role (RoleNone means
// RoleMember), and discards any invitation of user to team. System admins
// only: an admin of the team who is not one is refused with
// FailedPrecondition, since a user joins a team only with their consent
// (CreateInvitation, invitations.go).
//
// Returns Invalid (fields team_id, user_id, role), PermissionDenied,
// FailedPrecondition (a team admin: invite instead), NotFound (team or
// user; only once the caller may add members), AlreadyExists when the
// user is already a member.
func (d *Directory) CreateMembership(ctx context.Context, team, user string, role auth.Role) (Membership, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Membership{}, err
	}
	if err := resolver.CheckID("user_id", user); err != nil {
		return Membership{}, err
	}
	role, err := memberRole(role)
	if err != nil {
		return Membership{}, err
	}
	if err := d.mayManage(ctx, team); err != nil {
		return Membership{}, err
	}
	if p, _ := resolver.Caller(ctx); !p.SystemAdmin {
		return Membership{}, errs.E(errs.KindFailedPrecondition,
			"a user joins a team only by accepting an invitation: invite %q (CreateInvitation; oz admin member add does so) and they accept it (oz invitation accept %s); system admins may add members directly", user, team)
	}
	m := Membership{Team: team, User: user, Role: role, CreateTime: d.s.Now()}
	rec := resolver.Encode(toMembershipRecord(m))
	err = d.s.Apply(ctx,
		[]kv.Cond{kv.Present(resolver.TeamKey(team)), kv.Present(resolver.UserKey(user)), kv.Absent(resolver.MemberKey(team, user))},
		[]kv.Write{kv.Put(resolver.MemberKey(team, user), rec), kv.Put(resolver.UserTeamKey(user, team), rec), kv.Delete(resolver.InvitationKey(user, team))},
		d.s.Event(ctx, resolver.ActionMembershipCreate, m.Name(), team, map[string]string{resolver.DetailRole: role.String()}))
	switch resolver.Conflict(err) {
	case 0:
		return Membership{}, errs.E(errs.KindNotFound, "team %q not found", team)
	case 1:
		return Membership{}, errs.E(errs.KindNotFound, "user %q not found", user)
	case 2:
		return Membership{}, errs.E(errs.KindAlreadyExists, "user %q is already a member of team %q", user, team)
	}
	if err != nil {
		return Membership{}, fmt.Errorf("create membership: %w", err)
	}
	d.refreshTokensOf(ctx, user)
	return m, nil
}

// ListMemberships lists the members of team, in user id order. Callers
// are people: members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound.
func (d *Directory) ListMemberships(ctx context.Context, team string, page resolver.Page) ([]Membership, string, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return nil, "", err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return nil, "", err
	}
	if !p.SystemAdmin && !p.IsMember(team) {
		return nil, "", resolver.Denied("only members of team %q may list its members", team)
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	if _, err := d.team(ctx, team); err != nil {
		return nil, "", err
	}
	prefix := resolver.MembersPrefix(team)
	recs, err := resolver.Scan[resolver.MembershipRecord](ctx, d.s, prefix, resolver.AfterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list memberships: %w", err)
	}
	ms := make([]Membership, 0, len(recs))
	for _, r := range recs {
		ms = append(ms, membershipOf(r))
	}
	ms, next := resolver.PageOf(ms, size, func(m Membership) string { return m.User })
	return ms, next, nil
}

// DeleteMembership removes user from team. System admins and admins of the
// team.
//
// Returns Invalid (fields team_id, user_id), PermissionDenied, NotFound.
func (d *Directory) DeleteMembership(ctx context.Context, team, user string) error {
	if err := resolver.CheckID("team_id", team); err != nil {
		return err
	}
	if err := resolver.CheckID("user_id", user); err != nil {
		return err
	}
	if err := d.mayManage(ctx, team); err != nil {
		return err
	}
	err := d.s.Apply(ctx,
		[]kv.Cond{kv.Present(resolver.MemberKey(team, user))},
		[]kv.Write{kv.Delete(resolver.MemberKey(team, user)), kv.Delete(resolver.UserTeamKey(user, team))},
		d.s.Event(ctx, resolver.ActionMembershipDelete, resolver.MembershipName(team, user), team, nil))
	if resolver.Conflict(err) == 0 {
		return errs.E(errs.KindNotFound, "user %q is not a member of team %q", user, team)
	}
	if err != nil {
		return fmt.Errorf("delete membership: %w", err)
	}
	d.refreshTokensOf(ctx, user)
	return nil
}

// UpdateMembership gives user the role role in team (RoleNone is
// refused: say member or admin). System admins and admins of the team.
// The member's other fields are kept. A role that is already the
// member's changes nothing and records no event.
//
// Returns Invalid (fields team_id, user_id, role), PermissionDenied,
// NotFound (not a member).
func (d *Directory) UpdateMembership(ctx context.Context, team, user string, role auth.Role) (Membership, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Membership{}, err
	}
	if err := resolver.CheckID("user_id", user); err != nil {
		return Membership{}, err
	}
	if role == auth.RoleNone {
		return Membership{}, errs.Field("role", "is required: member or admin")
	}
	role, err := memberRole(role)
	if err != nil {
		return Membership{}, err
	}
	if err := d.mayManage(ctx, team); err != nil {
		return Membership{}, err
	}
	// Read, then write on the condition that the record is still the one
	// read: a concurrent change (another role, a removal) is read again.
	for {
		var rec resolver.MembershipRecord
		raw, err := d.s.Get(ctx, resolver.MemberKey(team, user), &rec)
		if resolver.IsNotFound(err) {
			return Membership{}, errs.E(errs.KindNotFound, "user %q is not a member of team %q", user, team)
		}
		if err != nil {
			return Membership{}, fmt.Errorf("read membership: %w", err)
		}
		m := membershipOf(rec)
		if m.Role == role {
			return m, nil
		}
		m.Role = role
		next := resolver.Encode(toMembershipRecord(m))
		err = d.s.Apply(ctx,
			[]kv.Cond{kv.Equal(resolver.MemberKey(team, user), raw)},
			[]kv.Write{kv.Put(resolver.MemberKey(team, user), next), kv.Put(resolver.UserTeamKey(user, team), next)},
			d.s.Event(ctx, resolver.ActionMembershipUpdate, m.Name(), team, map[string]string{resolver.DetailRole: role.String()}))
		if resolver.Conflict(err) == 0 {
			continue
		}
		if err != nil {
			return Membership{}, fmt.Errorf("update membership: %w", err)
		}
		d.refreshTokensOf(ctx, user)
		return m, nil
	}
}

// refreshTokensOf has every service drop user's tokens from its cache of
// authentications (as a revocation does, Notices), so that a change of
// their memberships holds at their next request rather than within the
// caches' TTL: the tokens stay valid and are authenticated afresh, with
// the memberships as they are now. A failure to read the tokens is left
// to the TTL.
func (d *Directory) refreshTokensOf(ctx context.Context, user string) {
	prefix := resolver.PrincipalTokensPrefix(resolver.UserName(user))
	kvs, err := d.s.KV().Scan(ctx, prefix, "", 0)
	if err != nil {
		return
	}
	ids := make([]string, len(kvs))
	for i, e := range kvs {
		ids[i] = strings.TrimPrefix(e.Key, prefix)
	}
	d.notices.Publish(ctx, ids)
}

// mayManage checks that the caller is a person who may manage team's
// members: a system admin or an admin of the team.
func (d *Directory) mayManage(ctx context.Context, team string) error {
	p, err := resolver.Person(ctx)
	if err != nil {
		return err
	}
	if !p.SystemAdmin && !p.IsAdmin(team) {
		return resolver.Denied("only admins of team %q may manage its members", team)
	}
	return nil
}

// memberships returns user's memberships, in team id order.
func (d *Directory) memberships(ctx context.Context, user string) ([]Membership, error) {
	recs, err := resolver.Scan[resolver.MembershipRecord](ctx, d.s, resolver.PrefixUserTeams+user+"/", "", 0)
	if err != nil {
		return nil, fmt.Errorf("list teams of user: %w", err)
	}
	ms := make([]Membership, 0, len(recs))
	for _, r := range recs {
		ms = append(ms, membershipOf(r))
	}
	return ms, nil
}
