package grpcapi_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// snapshot is every record of the store, for "nothing changed" checks.
func snapshot(t *testing.T, e *env) []kv.KV {
	t.Helper()
	kvs, err := e.store.Scan(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

func sameKVs(a, b []kv.KV) bool {
	return slices.EqualFunc(a, b, func(x, y kv.KV) bool { return x.Key == y.Key && bytes.Equal(x.Value, y.Value) })
}

// TestBadInput: every malformed request is InvalidArgument naming the
// field, never echoes the input, and changes nothing.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	const echo = "oz_0123456789abcdef_PASTEDxTOKEN" // must never come back
	long := strings.Repeat("a", 64)
	tests := []struct {
		name  string
		call  func(ctx context.Context) error
		field string
	}{
		{"CreateTeamEmpty", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{})
			return err
		}, "team_id"},
		{"CreateTeamUpperCase", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "Red"})
			return err
		}, "team_id"},
		{"CreateTeamDigitFirst", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "1red"})
			return err
		}, "team_id"},
		{"CreateTeamUnderscore", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "red_team"})
			return err
		}, "team_id"},
		{"CreateTeamSlash", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "red/x"})
			return err
		}, "team_id"},
		{"CreateTeamTooLong", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: long})
			return err
		}, "team_id"},
		{"CreateTeamPastedToken", func(ctx context.Context) error {
			_, err := c.dir.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: echo})
			return err
		}, "team_id"},
		{"CreateUserBad", func(ctx context.Context) error {
			_, err := c.dir.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: "Max"})
			return err
		}, "user_id"},
		{"CreateUserTooLong", func(ctx context.Context) error {
			_, err := c.dir.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: long})
			return err
		}, "user_id"},
		{"CreateUserMe", func(ctx context.Context) error {
			_, err := c.dir.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: "me"})
			return err
		}, "user_id"},
		{"GetTeamNoPrefix", func(ctx context.Context) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "red"})
			return err
		}, "name"},
		{"GetTeamBadID", func(ctx context.Context) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/RED"})
			return err
		}, "name"},
		{"GetTeamExtraSegment", func(ctx context.Context) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/red/x"})
			return err
		}, "name"},
		{"ListTeamsNegativePageSize", func(ctx context.Context) error {
			_, err := c.dir.ListTeams(ctx, &scopev1.ListTeamsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"ListTeamsBadPageToken", func(ctx context.Context) error {
			_, err := c.dir.ListTeams(ctx, &scopev1.ListTeamsRequest{PageToken: "!!not base64!!"})
			return err
		}, "page_token"},
		{"GetUserEmpty", func(ctx context.Context) error {
			_, err := c.dir.GetUser(ctx, &scopev1.GetUserRequest{Name: "users/"})
			return err
		}, "name"},
		{"GetUserNoPrefix", func(ctx context.Context) error {
			_, err := c.dir.GetUser(ctx, &scopev1.GetUserRequest{Name: echo})
			return err
		}, "name"},
		{"CreateMembershipBadParent", func(ctx context.Context) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "red", User: "users/newbie"})
			return err
		}, "parent"},
		{"CreateMembershipBadUser", func(ctx context.Context) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "newbie"})
			return err
		}, "user"},
		{"CreateMembershipUnknownRole", func(ctx context.Context) error {
			_, err := c.dir.CreateMembership(ctx, &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/newbie", Role: scopev1.Role(7)})
			return err
		}, "role"},
		{"ListMembershipsBadParent", func(ctx context.Context) error {
			_, err := c.dir.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: ""})
			return err
		}, "parent"},
		{"ListMembershipsBadPageToken", func(ctx context.Context) error {
			_, err := c.dir.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: "teams/red", PageToken: "L3gv"}) // "/x/"
			return err
		}, "page_token"},
		{"DeleteMembershipBadName", func(ctx context.Context) error {
			_, err := c.dir.DeleteMembership(ctx, &scopev1.DeleteMembershipRequest{Name: "teams/red/max"})
			return err
		}, "name"},
		{"CreateTokenBadPrincipal", func(ctx context.Context) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/red"})
			return err
		}, "principal"},
		{"CreateTokenNegativeTTL", func(ctx context.Context) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/max", Ttl: durationpb.New(-time.Second)})
			return err
		}, "ttl"},
		{"CreateTokenInvalidTTL", func(ctx context.Context) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/max", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -5}})
			return err
		}, "ttl"},
		{"CreateTokenLongDescription", func(ctx context.Context) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/max", Description: strings.Repeat("é", 1025)})
			return err
		}, "description"},
		{"ListTokensBadPrincipal", func(ctx context.Context) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "max"})
			return err
		}, "principal"},
		{"RevokeTokenBadID", func(ctx context.Context) error {
			_, err := c.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: "tokens/xyz"})
			return err
		}, "name"},
		{"RevokeTokenNoPrefix", func(ctx context.Context) error {
			_, err := c.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: f.spare})
			return err
		}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, e)
			err := tt.call(withToken(t, f.tokens[sysAdmin]))
			wantCode(t, err, codes.InvalidArgument)
			if got := fieldOf(err); got != tt.field {
				t.Errorf("field: got %q, want %q (%v)", got, tt.field, err)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, echo) || strings.Contains(msg, "PASTED") {
				t.Errorf("message echoes the input: %q", msg)
			}
			if !sameKVs(before, snapshot(t, e)) {
				t.Errorf("the store changed")
			}
		})
	}
}

// TestTokensStoredOnlyAsHashes scans the raw database file and every log
// line for the bearer tokens handed out and used: neither a token nor its
// secret part may appear.
func TestTokensStoredOnlyAsHashes(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	admin := withToken(t, f.tokens[sysAdmin])
	var bearers []string
	for _, tok := range f.tokens {
		if strings.HasPrefix(tok, directory.TokenPrefix) && len(tok) > 30 {
			bearers = append(bearers, tok)
		}
	}
	var ids []string
	for i := range 5 {
		resp, err := c.tokens.CreateToken(admin, &scopev1.CreateTokenRequest{Principal: "users/ann", Ttl: durationpb.New(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		bearers = append(bearers, resp.GetBearerToken())
		ids = append(ids, resp.GetToken().GetTokenId())
	}
	// Use them: good ones, and a good id with a wrong secret, both ways.
	for _, b := range bearers {
		_, _ = c.dir.GetCaller(withToken(t, b), &scopev1.GetCallerRequest{})
		_, _ = e.dial(t, "secretstore").auth.Authenticate(withToken(t, ""), &internalapiv1.AuthenticateRequest{BearerToken: b})
		forged := b[:len(b)-4] + "AAAA"
		_, _ = c.dir.GetCaller(withToken(t, forged), &scopev1.GetCallerRequest{})
	}
	e.stop()

	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !bytes.Contains(raw, []byte(id)) {
			t.Fatalf("token id %s not in the database file: scanning the wrong file?", id)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"rpc"`) {
		t.Fatalf("no request logs captured")
	}
	for _, b := range bearers {
		secret := secretPart(t, b)
		if bytes.Contains(raw, []byte(b)) || bytes.Contains(raw, []byte(secret)) {
			t.Errorf("database file holds a bearer token or its secret")
		}
		if strings.Contains(logs, b) || strings.Contains(logs, secret) || strings.Contains(logs, secret[:20]) {
			t.Errorf("logs hold a bearer token or its secret")
		}
	}
}

func TestRevocationIsImmediate(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	resp, err := c.tokens.CreateToken(withToken(t, f.tokens[teamMember]), &scopev1.CreateTokenRequest{Principal: "users/me", Description: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetBearerToken()
	if _, err := c.dir.GetCaller(withToken(t, tok), &scopev1.GetCallerRequest{}); err != nil {
		t.Fatalf("fresh token: got %v, want OK", err)
	}
	name := resp.GetToken().GetName()
	// Revoked with the token itself, then revoked again: idempotent.
	first, err := c.tokens.RevokeToken(withToken(t, tok), &scopev1.RevokeTokenRequest{Name: name})
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if first.GetToken().GetRevokeTime() == nil {
		t.Fatalf("revoke_time: got unset, want set")
	}
	_, err = c.dir.GetCaller(withToken(t, tok), &scopev1.GetCallerRequest{})
	wantCode(t, err, codes.Unauthenticated)
	if msg := status.Convert(err).Message(); msg != "invalid, expired or revoked token" {
		t.Errorf("message: got %q, want the generic one", msg)
	}
	_, err = e.dial(t, "gateway").auth.Authenticate(withToken(t, ""), &internalapiv1.AuthenticateRequest{BearerToken: tok})
	wantCode(t, err, codes.Unauthenticated)

	e.clock.Advance(time.Minute)
	again, err := c.tokens.RevokeToken(withToken(t, f.tokens[teamMember]), &scopev1.RevokeTokenRequest{Name: name})
	if err != nil {
		t.Fatalf("second revoke: got %v, want OK", err)
	}
	if !again.GetToken().GetRevokeTime().AsTime().Equal(first.GetToken().GetRevokeTime().AsTime()) {
		t.Errorf("second revoke moved revoke_time: got %v, want %v", again.GetToken().GetRevokeTime().AsTime(), first.GetToken().GetRevokeTime().AsTime())
	}
}

func TestExpiryFollowsTheClock(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	resp, err := c.tokens.CreateToken(withToken(t, f.tokens[sysAdmin]), &scopev1.CreateTokenRequest{Principal: "users/oli", Ttl: durationpb.New(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetBearerToken()
	if got, want := resp.GetToken().GetExpireTime().AsTime(), e.clock.Now().Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("expire_time: got %v, want %v", got, want)
	}
	e.clock.Advance(10*time.Minute - time.Nanosecond)
	caller, err := c.dir.GetCaller(withToken(t, tok), &scopev1.GetCallerRequest{})
	if err != nil {
		t.Fatalf("just before expiry: got %v, want OK", err)
	}
	if got := caller.GetPrincipal().GetTokenExpireTime(); got == nil {
		t.Errorf("token_expire_time: got unset, want set")
	}
	e.clock.Advance(time.Nanosecond)
	_, err = c.dir.GetCaller(withToken(t, tok), &scopev1.GetCallerRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.dial(t, "audit").auth.Authenticate(withToken(t, ""), &internalapiv1.AuthenticateRequest{BearerToken: tok})
	wantCode(t, err, codes.Unauthenticated)
}

// TestMembershipChangesAreImmediate: the resolver authenticates every call
// afresh, so a removed member loses access at once.
func TestMembershipChangesAreImmediate(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	max := withToken(t, f.tokens[teamMember])
	if _, err := c.dir.GetTeam(max, &scopev1.GetTeamRequest{Name: "teams/red"}); err != nil {
		t.Fatalf("member: got %v, want OK", err)
	}
	if _, err := c.dir.DeleteMembership(withToken(t, f.tokens[teamAdmin]), &scopev1.DeleteMembershipRequest{Name: "teams/red/members/max"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.dir.GetTeam(max, &scopev1.GetTeamRequest{Name: "teams/red"})
	wantCode(t, err, codes.PermissionDenied)

	m, err := c.dir.CreateMembership(withToken(t, f.tokens[sysAdmin]), &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/max", Role: scopev1.Role_ROLE_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetMembership().GetName() != "teams/red/members/max" || m.GetMembership().GetRole() != scopev1.Role_ROLE_ADMIN {
		t.Errorf("membership: got %v, want teams/red/members/max as admin", m.GetMembership())
	}
	caller, err := c.dir.GetCaller(max, &scopev1.GetCallerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	teams := caller.GetPrincipal().GetTeams()
	if len(teams) != 1 || teams[0].GetTeam() != "red" || teams[0].GetRole() != scopev1.Role_ROLE_ADMIN {
		t.Errorf("teams: got %v, want red as admin", teams)
	}
}

func TestResponses(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")

	t.Run("ListTeamsShowsTheCallersTeams", func(t *testing.T) {
		for caller, want := range map[string][]string{sysAdmin: {"blue", "red"}, teamMember: {"red"}, otherTeam: {"blue"}} {
			resp, err := c.dir.ListTeams(withToken(t, f.tokens[caller]), &scopev1.ListTeamsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tm := range resp.GetTeams() {
				got = append(got, tm.GetTeamId())
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %v, want %v", caller, got, want)
			}
		}
	})
	t.Run("MembershipDefaultsToMember", func(t *testing.T) {
		resp, err := c.dir.CreateMembership(withToken(t, f.tokens[sysAdmin]), &scopev1.CreateMembershipRequest{Parent: "teams/blue", User: "users/newbie"})
		if err != nil {
			t.Fatal(err)
		}
		m := resp.GetMembership()
		if m.GetRole() != scopev1.Role_ROLE_MEMBER || m.GetTeam() != "teams/blue" || m.GetUser() != "users/newbie" || m.GetCreateTime() == nil {
			t.Errorf("got %v, want newbie a member of blue with a create time", m)
		}
	})
	t.Run("GetCaller", func(t *testing.T) {
		resp, err := c.dir.GetCaller(withToken(t, f.tokens[teamAdmin]), &scopev1.GetCallerRequest{})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPrincipal()
		if p.GetKind() != scopev1.PrincipalKind_PRINCIPAL_KIND_USER || p.GetName() != "users/ann" || p.GetSystemAdmin() ||
			p.GetTokenId() == "" || p.GetTokenExpireTime() == nil || len(p.GetTeams()) != 1 || p.GetTeams()[0].GetRole() != scopev1.Role_ROLE_ADMIN {
			t.Errorf("got %v, want ann, admin of red, with a token that expires (every token made with CreateToken does)", p)
		}
		if !strings.Contains(f.tokens[teamAdmin], p.GetTokenId()) {
			t.Errorf("token id %q is not part of the token", p.GetTokenId())
		}
	})
	t.Run("CreateToken", func(t *testing.T) {
		resp, err := c.tokens.CreateToken(withToken(t, f.tokens[sysAdmin]), &scopev1.CreateTokenRequest{Principal: "users/oli", Description: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		tok, bearer := resp.GetToken(), resp.GetBearerToken()
		if !strings.HasPrefix(bearer, "oz_"+tok.GetTokenId()+"_") || len(secretPart(t, bearer)) < 43 {
			t.Errorf("bearer token: got one without the shape oz_<id>_<43+ character secret>")
		}
		if tok.GetName() != "tokens/"+tok.GetTokenId() || tok.GetPrincipal() != "users/oli" || tok.GetCreateBy() != "users/admin" ||
			tok.GetDescription() != "ci" || tok.GetRevokeTime() != nil ||
			// No lifetime asked: the longest allowed.
			!tok.GetExpireTime().AsTime().Equal(tok.GetCreateTime().AsTime().Add(directory.DefaultMaxTokenLifetime)) ||
			tok.GetPrincipalKind() != scopev1.PrincipalKind_PRINCIPAL_KIND_USER {
			t.Errorf("token: got %v", tok)
		}
		list, err := c.tokens.ListTokens(withToken(t, f.tokens[otherTeam]), &scopev1.ListTokensRequest{Principal: "users/me"})
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, l := range list.GetTokens() {
			found = found || l.GetTokenId() == tok.GetTokenId()
			if l.GetPrincipal() != "users/oli" {
				t.Errorf("oli's list holds a token of %s", l.GetPrincipal())
			}
		}
		if !found {
			t.Errorf("oli's list misses the new token")
		}
	})
}

// TestUpdateMembershipRole: a team admin makes a member an admin and back;
// the member's rights follow at once, the change is audited with the
// role, and a bad role or an unspecified one is refused naming the field.
func TestUpdateMembershipRole(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	admin := withToken(t, f.tokens[teamAdmin])
	max := withToken(t, f.tokens[teamMember])
	if _, err := c.dir.CreateInvitation(max, &scopev1.CreateInvitationRequest{Parent: "teams/red", User: "users/nobody"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a member invites: got %v, want PermissionDenied", err)
	}
	resp, err := c.dir.UpdateMembership(admin, &scopev1.UpdateMembershipRequest{Name: "teams/red/members/max", Role: scopev1.Role_ROLE_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetMembership(); got.GetRole() != scopev1.Role_ROLE_ADMIN || got.GetName() != "teams/red/members/max" || got.GetCreateTime() == nil {
		t.Errorf("membership: got %v", got)
	}
	caller, err := c.dir.GetCaller(max, &scopev1.GetCallerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if teams := caller.GetPrincipal().GetTeams(); len(teams) != 1 || teams[0].GetRole() != scopev1.Role_ROLE_ADMIN {
		t.Errorf("max's teams after the change: %v, want red as admin", teams)
	}
	if _, err := c.dir.UpdateMembership(admin, &scopev1.UpdateMembershipRequest{Name: "teams/red/members/max", Role: scopev1.Role_ROLE_MEMBER}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []scopev1.Role{scopev1.Role_ROLE_UNSPECIFIED, scopev1.Role(99)} {
		_, err := c.dir.UpdateMembership(admin, &scopev1.UpdateMembershipRequest{Name: "teams/red/members/max", Role: role})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "role") {
			t.Errorf("role %v: got %v, want InvalidArgument naming role", role, err)
		}
	}
	var updates []string
	for _, ev := range drainEvents(t, e.dir) {
		if ev.GetAction() == "membership.update" {
			updates = append(updates, ev.GetDetails()["role"])
		}
	}
	if !slices.Equal(updates, []string{"admin", "member"}) {
		t.Errorf("membership.update events with roles %v, want [admin member]", updates)
	}
}
