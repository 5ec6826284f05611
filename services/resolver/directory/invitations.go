package directory

import (
	"context"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// A user joins a team only with their consent: a team admin invites them
// (CreateInvitation), and the membership is made when the user accepts
// (AcceptInvitation). Otherwise an admin of any team could make any user a
// member, and then read what members may read about a member: their runs,
// which integrations they allowed, what runs started for them would get.
// A system admin, who makes the users, may still add one directly
// (CreateMembership).

// Invitation is a team's pending offer of membership to a user.
type Invitation struct {
	Team       string // team id
	User       string // user id
	Role       auth.Role
	InvitedBy  string // "users/{user}"
	CreateTime time.Time
}

// Name is the invitation's resource name, "users/{user}/invitations/{team}".
func (i Invitation) Name() string { return InvitationName(i.User, i.Team) }

// InvitationName is "users/{user}/invitations/{team}".
func InvitationName(user, team string) string {
	return resolver.UserName(user) + "/invitations/" + team
}

// invitationRecord is an invitation at resolver.InvitationKey.
type invitationRecord struct {
	Team       string    `json:"team"`
	User       string    `json:"user"`
	Role       string    `json:"role"` // "member" or "admin"
	InvitedBy  string    `json:"invited_by"`
	CreateTime time.Time `json:"create_time"`
}

func (r invitationRecord) invitation() Invitation {
	role := auth.RoleMember
	if r.Role == auth.RoleAdmin.String() {
		role = auth.RoleAdmin
	}
	return Invitation{Team: r.Team, User: r.User, Role: role, InvitedBy: r.InvitedBy, CreateTime: r.CreateTime}
}

// CreateInvitation invites user to team with role (RoleNone means
// RoleMember). System admins and admins of the team.
//
// Returns Invalid (fields team_id, user_id, role), PermissionDenied,
// NotFound (team or user; only once the caller may manage the team),
// AlreadyExists when the user is a member already or invited already.
func (d *Directory) CreateInvitation(ctx context.Context, team, user string, role auth.Role) (Invitation, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Invitation{}, err
	}
	if err := resolver.CheckID("user_id", user); err != nil {
		return Invitation{}, err
	}
	role, err := memberRole(role)
	if err != nil {
		return Invitation{}, err
	}
	if err := d.mayManage(ctx, team); err != nil {
		return Invitation{}, err
	}
	p, _ := resolver.Caller(ctx) // mayManage checked there is one
	inv := Invitation{Team: team, User: user, Role: role, InvitedBy: p.Name, CreateTime: d.s.Now()}
	rec := invitationRecord{Team: team, User: user, Role: role.String(), InvitedBy: inv.InvitedBy, CreateTime: inv.CreateTime}
	err = d.s.Apply(ctx,
		[]kv.Cond{
			kv.Present(resolver.TeamKey(team)), kv.Present(resolver.UserKey(user)),
			kv.Absent(resolver.MemberKey(team, user)), kv.Absent(resolver.InvitationKey(user, team)),
		},
		[]kv.Write{kv.Put(resolver.InvitationKey(user, team), resolver.Encode(rec))},
		d.s.Event(ctx, resolver.ActionInvitationCreate, inv.Name(), team, map[string]string{resolver.DetailRole: role.String()}))
	switch resolver.Conflict(err) {
	case 0:
		return Invitation{}, errs.E(errs.KindNotFound, "team %q not found", team)
	case 1:
		return Invitation{}, errs.E(errs.KindNotFound, "user %q not found", user)
	case 2:
		return Invitation{}, errs.E(errs.KindAlreadyExists, "user %q is already a member of team %q", user, team)
	case 3:
		return Invitation{}, errs.E(errs.KindAlreadyExists, "user %q is already invited to team %q: they accept or decline it", user, team)
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("create invitation: %w", err)
	}
	return inv, nil
}

// ListInvitations lists the invitations user holds, in team id order. The
// user only.
//
// Returns Invalid (fields parent, page_size, page_token), PermissionDenied.
func (d *Directory) ListInvitations(ctx context.Context, user string, page resolver.Page) ([]Invitation, string, error) {
	if err := resolver.CheckID("parent", user); err != nil {
		return nil, "", err
	}
	if err := invitee(ctx, user); err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	prefix := resolver.InvitationsPrefix(user)
	recs, err := resolver.Scan[invitationRecord](ctx, d.s, prefix, resolver.AfterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list invitations: %w", err)
	}
	out := make([]Invitation, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.invitation())
	}
	out, next := resolver.PageOf(out, size, func(i Invitation) string { return i.Team })
	return out, next, nil
}

// AcceptInvitation makes user a member of team with the invitation's role,
// and discards the invitation. The invited user only.
//
// Returns Invalid (fields user_id, team_id), PermissionDenied, NotFound
// (no such invitation), AlreadyExists (a member already: the invitation
// is left for DeclineInvitation).
func (d *Directory) AcceptInvitation(ctx context.Context, user, team string) (Membership, error) {
	rec, raw, err := d.invitation(ctx, user, team)
	if err != nil {
		return Membership{}, err
	}
	inv := rec.invitation()
	m := Membership{Team: team, User: user, Role: inv.Role, CreateTime: d.s.Now()}
	mrec := resolver.Encode(toMembershipRecord(m))
	err = d.s.Apply(ctx,
		[]kv.Cond{kv.Equal(resolver.InvitationKey(user, team), raw), kv.Absent(resolver.MemberKey(team, user))},
		[]kv.Write{
			kv.Delete(resolver.InvitationKey(user, team)),
			kv.Put(resolver.MemberKey(team, user), mrec), kv.Put(resolver.UserTeamKey(user, team), mrec),
		},
		d.s.Event(ctx, resolver.ActionInvitationAccept, inv.Name(), team, map[string]string{resolver.DetailRole: inv.Role.String()}),
		d.s.Event(ctx, resolver.ActionMembershipCreate, m.Name(), team, map[string]string{resolver.DetailRole: inv.Role.String()}))
	switch resolver.Conflict(err) {
	case 0:
		return Membership{}, invitationNotFound(user, team)
	case 1:
		return Membership{}, errs.E(errs.KindAlreadyExists, "user %q is already a member of team %q", user, team)
	}
	if err != nil {
		return Membership{}, fmt.Errorf("accept invitation: %w", err)
	}
	d.refreshTokensOf(ctx, user)
	return m, nil
}

// DeclineInvitation discards user's invitation to team. The invited user
// only.
//
// Returns Invalid (fields user_id, team_id), PermissionDenied, NotFound.
func (d *Directory) DeclineInvitation(ctx context.Context, user, team string) error {
	rec, raw, err := d.invitation(ctx, user, team)
	if err != nil {
		return err
	}
	inv := rec.invitation()
	err = d.s.Apply(ctx,
		[]kv.Cond{kv.Equal(resolver.InvitationKey(user, team), raw)},
		[]kv.Write{kv.Delete(resolver.InvitationKey(user, team))},
		d.s.Event(ctx, resolver.ActionInvitationDecline, inv.Name(), team, map[string]string{resolver.DetailRole: inv.Role.String()}))
	if resolver.Conflict(err) == 0 {
		return invitationNotFound(user, team)
	}
	if err != nil {
		return fmt.Errorf("decline invitation: %w", err)
	}
	return nil
}

// invitation checks the ids and that the caller is user, then reads the
// invitation.
func (d *Directory) invitation(ctx context.Context, user, team string) (invitationRecord, []byte, error) {
	if err := resolver.CheckID("user_id", user); err != nil {
		return invitationRecord{}, nil, err
	}
	if err := resolver.CheckID("team_id", team); err != nil {
		return invitationRecord{}, nil, err
	}
	if err := invitee(ctx, user); err != nil {
		return invitationRecord{}, nil, err
	}
	var rec invitationRecord
	raw, err := d.s.Get(ctx, resolver.InvitationKey(user, team), &rec)
	if resolver.IsNotFound(err) {
		return invitationRecord{}, nil, invitationNotFound(user, team)
	}
	if err != nil {
		return invitationRecord{}, nil, fmt.Errorf("get invitation: %w", err)
	}
	return rec, raw, nil
}

// invitee checks that the caller is the person user: an invitation is its
// user's alone to see, accept or decline (not even a system admin's).
func invitee(ctx context.Context, user string) error {
	p, err := resolver.Person(ctx)
	if err != nil {
		return err
	}
	if p.ID != user {
		return resolver.Denied("only user %q may see, accept or decline their invitations", user)
	}
	return nil
}

func invitationNotFound(user, team string) error {
	return errs.E(errs.KindNotFound, "user %q has no invitation to team %q", user, team)
}

// memberRole is role for a membership: RoleNone means RoleMember.
func memberRole(role auth.Role) (auth.Role, error) {
	switch role {
	case auth.RoleNone:
		return auth.RoleMember, nil
	case auth.RoleMember, auth.RoleAdmin:
		return role, nil
	}
	return auth.RoleNone, errs.Field("role", "must be member or admin")
}
