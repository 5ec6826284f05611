package grpcapi

import (
	"context"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// DirectoryServer implements scopev1.DirectoryServiceServer.
type DirectoryServer struct {
	scopev1.UnimplementedDirectoryServiceServer
	Dir *directory.Directory
}

func (s *DirectoryServer) CreateTeam(ctx context.Context, req *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.createTeam)
}

func (s *DirectoryServer) createTeam(ctx context.Context, req *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error) {
	t, err := s.Dir.CreateTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateTeamResponse{Team: teamProto(t)}, nil
}

func (s *DirectoryServer) GetTeam(ctx context.Context, req *scopev1.GetTeamRequest) (*scopev1.GetTeamResponse, error) {
	id, err := parseTeam("name", req.GetName())
	if err != nil {
		return nil, err
	}
	t, err := s.Dir.GetTeam(ctx, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetTeamResponse{Team: teamProto(t)}, nil
}

func (s *DirectoryServer) ListTeams(ctx context.Context, req *scopev1.ListTeamsRequest) (*scopev1.ListTeamsResponse, error) {
	teams, next, err := s.Dir.ListTeams(ctx, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListTeamsResponse{NextPageToken: next}
	for _, t := range teams {
		resp.Teams = append(resp.Teams, teamProto(t))
	}
	return resp, nil
}

func (s *DirectoryServer) CreateUser(ctx context.Context, req *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.createUser)
}

func (s *DirectoryServer) createUser(ctx context.Context, req *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error) {
	u, err := s.Dir.CreateUser(ctx, req.GetUserId(), req.GetSystemAdmin())
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateUserResponse{User: userProto(u)}, nil
}

func (s *DirectoryServer) GetUser(ctx context.Context, req *scopev1.GetUserRequest) (*scopev1.GetUserResponse, error) {
	id, err := parseUser(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	u, err := s.Dir.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetUserResponse{User: userProto(u)}, nil
}

func (s *DirectoryServer) CreateMembership(ctx context.Context, req *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.createMembership)
}

func (s *DirectoryServer) createMembership(ctx context.Context, req *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
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
	m, err := s.Dir.CreateMembership(ctx, team, user, role)
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateMembershipResponse{Membership: membershipProto(m)}, nil
}

func (s *DirectoryServer) ListMemberships(ctx context.Context, req *scopev1.ListMembershipsRequest) (*scopev1.ListMembershipsResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	ms, next, err := s.Dir.ListMemberships(ctx, team, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListMembershipsResponse{NextPageToken: next}
	for _, m := range ms {
		resp.Memberships = append(resp.Memberships, membershipProto(m))
	}
	return resp, nil
}

func (s *DirectoryServer) DeleteMembership(ctx context.Context, req *scopev1.DeleteMembershipRequest) (*scopev1.DeleteMembershipResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.deleteMembership)
}

func (s *DirectoryServer) deleteMembership(ctx context.Context, req *scopev1.DeleteMembershipRequest) (*scopev1.DeleteMembershipResponse, error) {
	team, user, err := parseMembership(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Dir.DeleteMembership(ctx, team, user); err != nil {
		return nil, err
	}
	return &scopev1.DeleteMembershipResponse{}, nil
}

func (s *DirectoryServer) UpdateMembership(ctx context.Context, req *scopev1.UpdateMembershipRequest) (*scopev1.UpdateMembershipResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.updateMembership)
}

func (s *DirectoryServer) updateMembership(ctx context.Context, req *scopev1.UpdateMembershipRequest) (*scopev1.UpdateMembershipResponse, error) {
	team, user, err := parseMembership(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	var role auth.Role
	switch r := req.GetRole(); r {
	case scopev1.Role_ROLE_MEMBER, scopev1.Role_ROLE_ADMIN:
		role = auth.RoleFromProto(r)
	default:
		return nil, errs.Field("role", "must be ROLE_MEMBER or ROLE_ADMIN")
	}
	m, err := s.Dir.UpdateMembership(ctx, team, user, role)
	if err != nil {
		return nil, err
	}
	return &scopev1.UpdateMembershipResponse{Membership: membershipProto(m)}, nil
}

// GetCaller says who the caller is, as authenticated for this request.
func (s *DirectoryServer) GetCaller(ctx context.Context, _ *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	p := auth.PrincipalFrom(ctx)
	if p == nil {
		return nil, errs.E(errs.KindUnauthenticated, "not authenticated")
	}
	return &scopev1.GetCallerResponse{Principal: principalProto(p)}, nil
}
