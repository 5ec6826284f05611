package grpcapi

import (
	"context"
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// The invitations of DirectoryService (directory/invitations.go).

func (s *DirectoryServer) CreateInvitation(ctx context.Context, req *scopev1.CreateInvitationRequest) (*scopev1.CreateInvitationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.createInvitation)
}

func (s *DirectoryServer) createInvitation(ctx context.Context, req *scopev1.CreateInvitationRequest) (*scopev1.CreateInvitationResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	user, err := parseUser(ctx, "user", req.GetUser())
	if err != nil {
		return nil, err
	}
	var role auth.Role
	switch r := req.GetRole(); r {
	case scopev1.Role_ROLE_UNSPECIFIED: // the Directory defaults to member
	case scopev1.Role_ROLE_MEMBER, scopev1.Role_ROLE_ADMIN:
		role = auth.RoleFromProto(r)
	default:
		return nil, errs.Field("role", "must be ROLE_MEMBER or ROLE_ADMIN")
	}
	inv, err := s.Dir.CreateInvitation(ctx, team, user, role)
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateInvitationResponse{Invitation: invitationProto(inv)}, nil
}

func (s *DirectoryServer) ListInvitations(ctx context.Context, req *scopev1.ListInvitationsRequest) (*scopev1.ListInvitationsResponse, error) {
	user, err := parseUser(ctx, "parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	invs, next, err := s.Dir.ListInvitations(ctx, user, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListInvitationsResponse{NextPageToken: next}
	for _, inv := range invs {
		resp.Invitations = append(resp.Invitations, invitationProto(inv))
	}
	return resp, nil
}

func (s *DirectoryServer) AcceptInvitation(ctx context.Context, req *scopev1.AcceptInvitationRequest) (*scopev1.AcceptInvitationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.acceptInvitation)
}

func (s *DirectoryServer) acceptInvitation(ctx context.Context, req *scopev1.AcceptInvitationRequest) (*scopev1.AcceptInvitationResponse, error) {
	user, team, err := parseInvitation(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := s.Dir.AcceptInvitation(ctx, user, team)
	if err != nil {
		return nil, err
	}
	return &scopev1.AcceptInvitationResponse{Membership: membershipProto(m)}, nil
}

func (s *DirectoryServer) DeclineInvitation(ctx context.Context, req *scopev1.DeclineInvitationRequest) (*scopev1.DeclineInvitationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.declineInvitation)
}

func (s *DirectoryServer) declineInvitation(ctx context.Context, req *scopev1.DeclineInvitationRequest) (*scopev1.DeclineInvitationResponse, error) {
	user, team, err := parseInvitation(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Dir.DeclineInvitation(ctx, user, team); err != nil {
		return nil, err
	}
	return &scopev1.DeclineInvitationResponse{}, nil
}

// parseInvitation parses "users/{user}/invitations/{team}"; {user} may be
// "me".
func parseInvitation(ctx context.Context, field, name string) (user, team string, err error) {
	rest, ok := strings.CutPrefix(name, "users/")
	if ok {
		user, team, ok = strings.Cut(rest, "/invitations/")
	}
	if !ok || !resolver.ValidID(user) || !resolver.ValidID(team) {
		return "", "", errs.Field(field, `must be "users/{user}/invitations/{team}" ({user} may be "me"); {user} and {team} `+resolver.IDRule)
	}
	user, err = resolveMe(ctx, field, user)
	return user, team, err
}

func invitationProto(i directory.Invitation) *scopev1.Invitation {
	return &scopev1.Invitation{
		Name:       i.Name(),
		Team:       resolver.TeamName(i.Team),
		User:       resolver.UserName(i.User),
		Role:       auth.RoleToProto(i.Role),
		InvitedBy:  i.InvitedBy,
		CreateTime: timestamp(i.CreateTime),
	}
}
