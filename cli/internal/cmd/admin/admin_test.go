package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// testDeps returns dependencies that reach srv, and the output buffers.
func testDeps(srv *ozfake.Server) (Deps, *strings.Builder, *strings.Builder) {
	ios, _, _, _ := iostreams.Test()
	out, errOut := &strings.Builder{}, &strings.Builder{}
	ios.Out, ios.ErrOut = out, errOut
	return Deps{IO: ios, Connect: func(context.Context) (*client.Conn, error) { return client.Dial(srv.Settings()) }}, out, errOut
}

func only[T any](t *testing.T, srv *ozfake.Server, method string) T {
	t.Helper()
	calls := srv.CallsTo(method)
	if len(calls) != 1 {
		t.Fatalf("got %d calls to %s, want 1", len(calls), method)
	}
	return calls[0].Req.(T)
}

func TestParseExpires(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"12h", 12 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1d12h", 36 * time.Hour, false},
		{"0d1h", time.Hour, false},
		{"0", 0, true},
		{"0d", 0, true},
		{"-1h", 0, true},
		{"-1d", 0, true},
		{"1d-1h", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"30", 0, true},
		{"3x", 0, true},
		{"1w", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseExpires(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseExpires(%q): got error %v, want error: %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseExpires(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if _, code := exitcode.Describe(err); err != nil && code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
			}
		})
	}
}

func TestTokenCreatePrintsOnlyTheToken(t *testing.T) {
	const bearer = "oz_0123456789abcdef"
	srv := ozfake.Start(t, nil, nil, &ozfake.Tokens{
		CreateTokenFunc: func(_ context.Context, r *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
			return &scopev1.CreateTokenResponse{
				Token:       &scopev1.Token{Name: "tokens/t1", TokenId: "t1", Principal: r.GetPrincipal()},
				BearerToken: bearer,
			}, nil
		},
	})
	for _, tty := range []bool{false, true} {
		deps, out, _ := testDeps(srv)
		deps.IO.StdoutTTY, deps.IO.StderrTTY = tty, tty
		err := runTokenCreate(context.Background(), &TokenCreateOptions{Deps: deps, User: "alice", Expires: 30 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := out.String(), bearer+"\n"; got != want {
			t.Errorf("tty=%v: got stdout %q, want %q", tty, got, want)
		}
	}
	req := srv.CallsTo("CreateToken")[0].Req.(*scopev1.CreateTokenRequest)
	if got, want := req.GetPrincipal(), "users/alice"; got != want {
		t.Errorf("got principal %q, want %q", got, want)
	}
	if got, want := req.GetTtl().AsDuration(), 30*24*time.Hour; got != want {
		t.Errorf("got ttl %v, want %v", got, want)
	}
}

func TestTokenCreateNoExpiry(t *testing.T) {
	srv := ozfake.Start(t, nil, nil, &ozfake.Tokens{
		CreateTokenFunc: func(context.Context, *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
			return &scopev1.CreateTokenResponse{BearerToken: "oz_x"}, nil
		},
	})
	deps, _, _ := testDeps(srv)
	if err := runTokenCreate(context.Background(), &TokenCreateOptions{Deps: deps, User: "users/bob"}); err != nil {
		t.Fatal(err)
	}
	req := only[*scopev1.CreateTokenRequest](t, srv, "CreateToken")
	if req.GetTtl() != nil {
		t.Errorf("got ttl %v, want unset", req.GetTtl())
	}
	if got, want := req.GetPrincipal(), "users/bob"; got != want {
		t.Errorf("got principal %q, want %q", got, want)
	}
}

func TestTokenRevoke(t *testing.T) {
	for _, arg := range []string{"t1", "tokens/t1"} {
		srv := ozfake.Start(t, nil, nil, &ozfake.Tokens{
			RevokeTokenFunc: func(context.Context, *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error) {
				return &scopev1.RevokeTokenResponse{}, nil
			},
		})
		deps, _, _ := testDeps(srv)
		if err := runTokenRevoke(context.Background(), &TokenRevokeOptions{Deps: deps, TokenID: arg}); err != nil {
			t.Fatal(err)
		}
		if got := only[*scopev1.RevokeTokenRequest](t, srv, "RevokeToken").GetName(); got != "tokens/t1" {
			t.Errorf("%s: got name %q, want %q", arg, got, "tokens/t1")
		}
	}
}

func TestTokenList(t *testing.T) {
	loc := time.FixedZone("test", 0)
	created := timestamppb.New(time.Date(2026, 1, 2, 3, 4, 0, 0, loc))
	expires := timestamppb.New(time.Date(2026, 2, 1, 3, 4, 0, 0, loc))
	tokens := []*scopev1.Token{
		{Name: "tokens/t1", TokenId: "t1", Principal: "users/alice", CreateTime: created, ExpireTime: expires},
		{Name: "tokens/t2", TokenId: "t2", Principal: "users/alice", CreateTime: created, RevokeTime: expires},
		{Name: "tokens/t3", Principal: "users/bob", CreateTime: created},
	}
	fake := &ozfake.Tokens{
		ListTokensFunc: func(_ context.Context, r *scopev1.ListTokensRequest) (*scopev1.ListTokensResponse, error) {
			if r.GetPageToken() == "" {
				return &scopev1.ListTokensResponse{Tokens: tokens[:2], NextPageToken: "p2"}, nil
			}
			return &scopev1.ListTokensResponse{Tokens: tokens[2:]}, nil
		},
	}
	srv := ozfake.Start(t, nil, nil, fake)
	deps, out, _ := testDeps(srv)
	deps.IO.StdoutTTY = true // on a terminal: times as people read them
	now := func() time.Time { return time.Date(2026, 1, 10, 0, 0, 0, 0, loc) }
	if err := runTokenList(context.Background(), &TokenListOptions{Deps: deps, Now: now, User: "alice", Output: "table"}); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"ID  PRINCIPAL    CREATED           EXPIRES           REVOKED",
		"t1  users/alice  2026-01-02 03:04  2026-02-01 03:04  -",
		"t2  users/alice  2026-01-02 03:04  never             2026-02-01 03:04",
		"t3  users/bob    2026-01-02 03:04  never             -",
	}, "\n") + "\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	calls := srv.CallsTo("ListTokens")
	if len(calls) != 2 {
		t.Fatalf("got %d ListTokens calls, want 2", len(calls))
	}
	if got := calls[0].Req.(*scopev1.ListTokensRequest).GetPrincipal(); got != "users/alice" {
		t.Errorf("got principal %q, want users/alice", got)
	}

	deps, out, _ = testDeps(srv)
	if err := runTokenList(context.Background(), &TokenListOptions{Deps: deps, Now: now, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0]["id"] != "t1" || items[0]["expires_at"] != "2026-02-01T03:04:00Z" || items[2]["id"] != "t3" {
		t.Errorf("got %v, want t1..t3 with times", items)
	}
	if got := srv.CallsTo("ListTokens")[2].Req.(*scopev1.ListTokensRequest).GetPrincipal(); got != "" {
		t.Errorf("got principal %q, want empty (every token)", got)
	}
}

func TestTeamCreate(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{
		CreateTeamFunc: func(_ context.Context, r *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error) {
			return &scopev1.CreateTeamResponse{Team: &scopev1.Team{Name: "teams/" + r.GetTeamId(), TeamId: r.GetTeamId()}}, nil
		},
	}, nil)
	deps, _, _ := testDeps(srv)
	if err := runTeamCreate(context.Background(), &TeamCreateOptions{Deps: deps, Team: "acme"}); err != nil {
		t.Fatal(err)
	}
	if got := only[*scopev1.CreateTeamRequest](t, srv, "CreateTeam").GetTeamId(); got != "acme" {
		t.Errorf("got team_id %q, want acme", got)
	}
}

func TestUserCreate(t *testing.T) {
	tests := []struct {
		name           string
		opts           UserCreateOptions
		wantMembership *scopev1.CreateMembershipRequest
		wantAdmin      bool
	}{
		{
			name:           "Member",
			opts:           UserCreateOptions{User: "alice", Team: "acme", Role: scopev1.Role_ROLE_MEMBER},
			wantMembership: &scopev1.CreateMembershipRequest{Parent: "teams/acme", User: "users/alice", Role: scopev1.Role_ROLE_MEMBER},
		},
		{
			name:           "Admin",
			opts:           UserCreateOptions{User: "alice", Team: "acme", Role: scopev1.Role_ROLE_ADMIN},
			wantMembership: &scopev1.CreateMembershipRequest{Parent: "teams/acme", User: "users/alice", Role: scopev1.Role_ROLE_ADMIN},
		},
		{
			name:      "SystemAdminWithoutTeam",
			opts:      UserCreateOptions{User: "root", SystemAdmin: true},
			wantAdmin: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, nil, &ozfake.Directory{
				CreateUserFunc: func(_ context.Context, r *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error) {
					return &scopev1.CreateUserResponse{User: &scopev1.User{Name: "users/" + r.GetUserId(), UserId: r.GetUserId()}}, nil
				},
				CreateMembershipFunc: func(context.Context, *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
					return &scopev1.CreateMembershipResponse{}, nil
				},
			}, nil)
			deps, _, _ := testDeps(srv)
			opts := tt.opts
			opts.Deps = deps
			if err := runUserCreate(context.Background(), &opts); err != nil {
				t.Fatal(err)
			}
			calls := srv.Calls()
			if len(calls) == 0 || !strings.HasSuffix(calls[0].Method, "/CreateUser") {
				t.Fatalf("got calls %v, want CreateUser first", calls)
			}
			ureq := calls[0].Req.(*scopev1.CreateUserRequest)
			if ureq.GetUserId() != opts.User || ureq.GetSystemAdmin() != tt.wantAdmin {
				t.Errorf("got CreateUser %v, want user_id %q system_admin %v", ureq, opts.User, tt.wantAdmin)
			}
			ms := srv.CallsTo("CreateMembership")
			if tt.wantMembership == nil {
				if len(ms) != 0 {
					t.Errorf("got %d CreateMembership calls, want none", len(ms))
				}
				return
			}
			if len(ms) != 1 {
				t.Fatalf("got %d CreateMembership calls, want 1", len(ms))
			}
			got := ms[0].Req.(*scopev1.CreateMembershipRequest)
			if got.GetParent() != tt.wantMembership.GetParent() || got.GetUser() != tt.wantMembership.GetUser() || got.GetRole() != tt.wantMembership.GetRole() {
				t.Errorf("got CreateMembership %v, want %v", got, tt.wantMembership)
			}
		})
	}
}

func TestUserCreateMembershipFails(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{
		CreateUserFunc: func(context.Context, *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error) {
			return &scopev1.CreateUserResponse{User: &scopev1.User{Name: "users/alice"}}, nil
		},
		CreateMembershipFunc: func(context.Context, *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
			return nil, status.Error(codes.NotFound, "team acme not found")
		},
	}, nil)
	deps, _, _ := testDeps(srv)
	err := runUserCreate(context.Background(), &UserCreateOptions{Deps: deps, User: "alice", Team: "acme"})
	lines, code := exitcode.Describe(err)
	if code != exitcode.NotFound {
		t.Errorf("got exit code %d, want %d", code, exitcode.NotFound)
	}
	want := "created user alice, but adding them to team acme failed (retry with `oz admin member add alice --team acme`): team acme not found"
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("got %q, want %q", lines, want)
	}
}

func TestUserCreateNeedsTeam(t *testing.T) {
	srv := ozfake.Start(t, nil, nil, nil)
	deps, _, _ := testDeps(srv)
	err := runUserCreate(context.Background(), &UserCreateOptions{Deps: deps, User: "alice"})
	if _, code := exitcode.Describe(err); code != exitcode.Usage {
		t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("got %d calls, want none", n)
	}
}

func TestMemberAdd(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{
		GetCallerFunc: func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			return &scopev1.GetCallerResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/admin", SystemAdmin: true}}, nil
		},
		CreateMembershipFunc: func(context.Context, *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
			return &scopev1.CreateMembershipResponse{}, nil
		},
	}, nil)
	deps, _, _ := testDeps(srv)
	if err := runMemberAdd(context.Background(), &MemberAddOptions{Deps: deps, User: "bob", Team: "acme", Role: scopev1.Role_ROLE_ADMIN}); err != nil {
		t.Fatal(err)
	}
	got := only[*scopev1.CreateMembershipRequest](t, srv, "CreateMembership")
	if got.GetParent() != "teams/acme" || got.GetUser() != "users/bob" || got.GetRole() != scopev1.Role_ROLE_ADMIN {
		t.Errorf("got %v, want parent teams/acme, user users/bob, role admin", got)
	}
}

// TestMemberAddByTeamAdminInvites: a team admin who is not a system admin
// invites the user, and says so even to a script.
func TestMemberAddByTeamAdminInvites(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{
		GetCallerFunc: ozfake.Caller("alice", "acme"),
		CreateInvitationFunc: func(context.Context, *scopev1.CreateInvitationRequest) (*scopev1.CreateInvitationResponse, error) {
			return &scopev1.CreateInvitationResponse{}, nil
		},
	}, nil)
	deps, _, errOut := testDeps(srv)
	if err := runMemberAdd(context.Background(), &MemberAddOptions{Deps: deps, User: "bob", Team: "acme", Role: scopev1.Role_ROLE_MEMBER}); err != nil {
		t.Fatal(err)
	}
	got := only[*scopev1.CreateInvitationRequest](t, srv, "CreateInvitation")
	if got.GetParent() != "teams/acme" || got.GetUser() != "users/bob" || got.GetRole() != scopev1.Role_ROLE_MEMBER {
		t.Errorf("got %v, want parent teams/acme, user users/bob, role member", got)
	}
	if n := len(srv.CallsTo("CreateMembership")); n != 0 {
		t.Errorf("got %d CreateMembership calls, want none", n)
	}
	if msg := errOut.String(); !strings.Contains(msg, "Invited bob to team acme as member") || !strings.Contains(msg, "oz invitation accept acme") {
		t.Errorf("stderr %q: want it to say bob was invited and how to accept", msg)
	}
}
