package grpcapi_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// TestAuthorizationMatrix calls every RPC of DirectoryService and
// TokenService as every kind of caller, each on a fresh copy of the
// fixture. Callers without a valid token get Unauthenticated everywhere;
// permission is checked before existence.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	const (
		ok = codes.OK
		pd = codes.PermissionDenied
		nf = codes.NotFound
		ae = codes.AlreadyExists
		fp = codes.FailedPrecondition
	)
	type want struct{ sys, teamAdmin, member, other codes.Code }
	tests := []struct {
		name string
		call func(ctx context.Context, c clients) error
		want want
	}{
		{"CreateTeam", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "green"})
			return err
		}, want{ok, pd, pd, pd}},
		{"CreateTeamExisting", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "red"})
			return err
		}, want{ae, pd, pd, pd}},
		{"GetTeam", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/red"})
			return err
		}, want{ok, ok, ok, pd}},
		{"GetTeamMissing", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/nope"})
			return err
		}, want{nf, pd, pd, pd}},
		{"ListTeams", func(ctx context.Context, c clients) error {
			_, err := c.dir.ListTeams(ctx, &scopev1.ListTeamsRequest{})
			return err
		}, want{ok, ok, ok, ok}},
		{"CreateUser", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: "zed"})
			return err
		}, want{ok, pd, pd, pd}},
		{"CreateUserExisting", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: "max"})
			return err
		}, want{ae, pd, pd, pd}},
		{"GetUserTeammate", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetUser(ctx, &scopev1.GetUserRequest{Name: "users/max"})
			return err
		}, want{ok, ok, ok, pd}},
		{"GetUserMe", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetUser(ctx, &scopev1.GetUserRequest{Name: "users/me"})
			return err
		}, want{ok, ok, ok, ok}},
		{"GetUserMissing", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetUser(ctx, &scopev1.GetUserRequest{Name: "users/ghost"})
			return err
		}, want{nf, pd, pd, pd}},
		{"CreateMembership", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/newbie"})
			return err
		}, want{ok, fp, pd, pd}},
		{"CreateMembershipMissingUser", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/ghost"})
			return err
		}, want{nf, fp, pd, pd}},
		{"CreateMembershipMissingTeam", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/nope", User: "users/newbie"})
			return err
		}, want{nf, pd, pd, pd}},
		{"CreateMembershipExisting", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/max", Role: scopev1.Role_ROLE_ADMIN})
			return err
		}, want{ae, fp, pd, pd}},
		// A user joins a team only with their consent: team admins invite,
		// and only the invited user sees, accepts or declines.
		{"CreateInvitation", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateInvitation(ctx, &scopev1.CreateInvitationRequest{Parent: "teams/red", User: "users/newbie"})
			return err
		}, want{ok, ok, pd, pd}},
		{"CreateInvitationMember", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateInvitation(ctx, &scopev1.CreateInvitationRequest{Parent: "teams/red", User: "users/max"})
			return err
		}, want{ae, ae, pd, pd}},
		{"CreateInvitationMissingUser", func(ctx context.Context, c clients) error {
			_, err := c.dir.CreateInvitation(ctx, &scopev1.CreateInvitationRequest{Parent: "teams/red", User: "users/ghost"})
			return err
		}, want{nf, nf, pd, pd}},
		{"ListInvitationsMine", func(ctx context.Context, c clients) error {
			_, err := c.dir.ListInvitations(ctx, &scopev1.ListInvitationsRequest{Parent: "users/me"})
			return err
		}, want{ok, ok, ok, ok}},
		{"ListInvitationsOthers", func(ctx context.Context, c clients) error {
			_, err := c.dir.ListInvitations(ctx, &scopev1.ListInvitationsRequest{Parent: "users/newbie"})
			return err
		}, want{pd, pd, pd, pd}},
		{"AcceptInvitationNone", func(ctx context.Context, c clients) error {
			_, err := c.dir.AcceptInvitation(ctx, &scopev1.AcceptInvitationRequest{Name: "users/me/invitations/red"})
			return err
		}, want{nf, nf, nf, nf}},
		{"AcceptInvitationOthers", func(ctx context.Context, c clients) error {
			_, err := c.dir.AcceptInvitation(ctx, &scopev1.AcceptInvitationRequest{Name: "users/newbie/invitations/red"})
			return err
		}, want{pd, pd, pd, pd}},
		{"DeclineInvitationOthers", func(ctx context.Context, c clients) error {
			_, err := c.dir.DeclineInvitation(ctx, &scopev1.DeclineInvitationRequest{Name: "users/newbie/invitations/red"})
			return err
		}, want{pd, pd, pd, pd}},
		{"ListMemberships", func(ctx context.Context, c clients) error {
			_, err := c.dir.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: "teams/red"})
			return err
		}, want{ok, ok, ok, pd}},
		{"ListMembershipsMissingTeam", func(ctx context.Context, c clients) error {
			_, err := c.dir.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: "teams/nope"})
			return err
		}, want{nf, pd, pd, pd}},
		{"DeleteMembership", func(ctx context.Context, c clients) error {
			_, err := c.dir.DeleteMembership(ctx, &scopev1.DeleteMembershipRequest{Name: "teams/red/members/max"})
			return err
		}, want{ok, ok, pd, pd}},
		{"DeleteMembershipMissing", func(ctx context.Context, c clients) error {
			_, err := c.dir.DeleteMembership(ctx, &scopev1.DeleteMembershipRequest{Name: "teams/red/members/newbie"})
			return err
		}, want{nf, nf, pd, pd}},
		{"UpdateMembership", func(ctx context.Context, c clients) error {
			_, err := c.dir.UpdateMembership(ctx, &scopev1.UpdateMembershipRequest{Name: "teams/red/members/max", Role: scopev1.Role_ROLE_ADMIN})
			return err
		}, want{ok, ok, pd, pd}},
		{"UpdateMembershipMissing", func(ctx context.Context, c clients) error {
			_, err := c.dir.UpdateMembership(ctx, &scopev1.UpdateMembershipRequest{Name: "teams/red/members/newbie", Role: scopev1.Role_ROLE_ADMIN})
			return err
		}, want{nf, nf, pd, pd}},
		{"GetCaller", func(ctx context.Context, c clients) error {
			_, err := c.dir.GetCaller(ctx, &scopev1.GetCallerRequest{})
			return err
		}, want{ok, ok, ok, ok}},
		{"CreateTokenForSelf", func(ctx context.Context, c clients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/me"})
			return err
		}, want{ok, ok, ok, ok}},
		{"CreateTokenForMax", func(ctx context.Context, c clients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/max"})
			return err
		}, want{ok, pd, ok, pd}},
		{"CreateTokenForMissingUser", func(ctx context.Context, c clients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/ghost"})
			return err
		}, want{nf, pd, pd, pd}},
		{"ListTokensOfMax", func(ctx context.Context, c clients) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "users/max"})
			return err
		}, want{ok, pd, ok, pd}},
		{"ListTokensOfMe", func(ctx context.Context, c clients) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "users/me"})
			return err
		}, want{ok, ok, ok, ok}},
		{"ListEveryToken", func(ctx context.Context, c clients) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{})
			return err
		}, want{ok, pd, pd, pd}},
		{"RevokeTokenOfMax", func(ctx context.Context, c clients) error {
			_, err := c.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: "tokens/" + f.spare})
			return err
		}, want{ok, pd, ok, pd}},
		{"RevokeTokenMissing", func(ctx context.Context, c clients) error {
			_, err := c.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: "tokens/00000000000000ff"})
			return err
		}, want{nf, pd, pd, pd}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, caller := range callers {
				t.Run(caller, func(t *testing.T) {
					e := f.serve(t)
					err := tt.call(withToken(t, f.tokens[caller]), e.dial(t, "gateway"))
					want := codes.Unauthenticated
					switch caller {
					case sysAdmin:
						want = tt.want.sys
					case teamAdmin:
						want = tt.want.teamAdmin
					case teamMember:
						want = tt.want.member
					case otherTeam:
						want = tt.want.other
					}
					if got := status.Code(err); got != want {
						t.Errorf("got %v (%v), want %v", got, status.Convert(err).Message(), want)
					}
				})
			}
		})
	}
}

// TestAuthenticateAccess checks who may call the internal AuthService:
// the listed services by certificate, never a bearer token.
func TestAuthenticateAccess(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	member := f.tokens[teamMember]
	tests := []struct {
		name   string
		cert   string
		header string // bearer token sent as a header
		want   codes.Code
	}{
		{"Gateway", "gateway", "", codes.OK},
		{"Secretstore", "secretstore", "", codes.OK},
		{"Audit", "audit", "", codes.OK},
		{"ResolverItself", "resolver", "", codes.PermissionDenied},
		{"UnlistedService", "intruder", "", codes.PermissionDenied},
		{"UserTokenFromGateway", "gateway", member, codes.PermissionDenied},
		{"SystemAdminToken", "gateway", f.tokens[sysAdmin], codes.PermissionDenied},
		{"UserTokenFromUnlistedService", "intruder", member, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.dial(t, tt.cert)
			resp, err := c.auth.Authenticate(withToken(t, tt.header), &internalapiv1.AuthenticateRequest{BearerToken: member})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("got %v (%v), want %v", got, err, tt.want)
			}
			if err == nil && resp.GetPrincipal().GetName() != "users/max" {
				t.Errorf("principal: got %q, want %q", resp.GetPrincipal().GetName(), "users/max")
			}
		})
	}
}
