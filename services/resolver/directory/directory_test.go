package directory_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

var (
	newDirectory = resolvertest.Directory
	wantKind     = resolvertest.WantKind
)

func TestAuthenticate(t *testing.T) {
	d, clk, sys := newDirectory(t)
	ctx := context.Background()
	if _, err := d.CreateUser(sys, "max", false); err != nil {
		t.Fatal(err)
	}
	good, goodBearer, err := d.CreateToken(sys, resolver.UserPrincipal("max"), time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	revoked, revokedBearer, err := d.CreateToken(sys, resolver.UserPrincipal("max"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.RevokeToken(sys, revoked.ID); err != nil {
		t.Fatal(err)
	}

	p, err := d.Authenticate(ctx, goodBearer)
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	if p.Name != "users/max" || p.ID != "max" || p.Kind != auth.KindUser || p.TokenID != good.ID || !p.TokenExpire.Equal(good.ExpireTime) || p.SystemAdmin {
		t.Errorf("principal: got %+v", p)
	}

	wrongSecret := goodBearer[:len(goodBearer)-4] + "AAAA"
	tests := map[string]string{
		"Empty":        "",
		"Malformed":    "oz_notatoken_0000",
		"UnknownID":    "oz_0123456789abcdef_" + strings.Repeat("A", 43),
		"WrongSecret":  wrongSecret,
		"Revoked":      revokedBearer,
		"NotOzAtAll":   "Bearer xyz",
		"TokenOfOther": strings.Replace(goodBearer, good.ID, revoked.ID, 1),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := d.Authenticate(ctx, tok)
			wantKind(t, err, errs.KindUnauthenticated)
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Errorf("error echoes the token")
			}
		})
	}
	t.Run("ExpiredAtExpireTime", func(t *testing.T) {
		clk.Advance(time.Hour - time.Nanosecond)
		if _, err := d.Authenticate(ctx, goodBearer); err != nil {
			t.Fatalf("before expiry: got %v, want OK", err)
		}
		clk.Advance(time.Nanosecond)
		_, err := d.Authenticate(ctx, goodBearer)
		wantKind(t, err, errs.KindUnauthenticated)
	})
}

func TestBootstrapAdmin(t *testing.T) {
	t.Run("OnceOnly", func(t *testing.T) {
		d, _, sys := newDirectory(t) // bootstraps "admin"
		if p := auth.PrincipalFrom(sys); !p.SystemAdmin || p.Name != "users/admin" {
			t.Fatalf("bootstrap principal: got %+v, want system admin users/admin", p)
		}
		tok, bearer, err := d.BootstrapAdmin(context.Background(), "admin")
		if err != nil || bearer != "" || tok.ID != "" {
			t.Errorf("second bootstrap: got %q, %v, want no token", tok.ID, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		store, err := boltkv.Open(filepath.Join(t.TempDir(), "resolver.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		d := directory.New(resolver.NewStore(store, nil))
		var wg sync.WaitGroup
		bearers := make(chan string, 8)
		for range 8 {
			wg.Go(func() {
				_, b, err := d.BootstrapAdmin(context.Background(), "admin")
				if err != nil {
					t.Errorf("BootstrapAdmin: %v", err)
				}
				if b != "" {
					bearers <- b
				}
			})
		}
		wg.Wait()
		close(bearers)
		if n := len(bearers); n != 1 {
			t.Fatalf("tokens issued: got %d, want 1", n)
		}
		p, err := d.Authenticate(context.Background(), <-bearers)
		if err != nil || !p.SystemAdmin {
			t.Errorf("bootstrap token: got %+v, %v, want a system admin", p, err)
		}
	})
}

func TestIssueAdminToken(t *testing.T) {
	d, _, sys := newDirectory(t)
	ctx := context.Background()
	if _, err := d.CreateUser(sys, "ops", false); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"ops", "rescue", "rescue"} { // promote, create, again
		_, bearer, err := d.IssueAdminToken(ctx, user, "recovery")
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		p, err := d.Authenticate(ctx, bearer)
		if err != nil || !p.SystemAdmin || p.ID != user {
			t.Errorf("%s: got %+v, %v, want a system admin", user, p, err)
		}
	}
	_, _, err := d.IssueAdminToken(ctx, "me", "")
	wantKind(t, err, errs.KindInvalid)
}

// TestOnlyPeopleChangeTheDirectory: runners and agent identities (which
// will hold tokens later) may not change teams, users, members or tokens,
// even with the system-admin flag.
func TestOnlyPeopleChangeTheDirectory(t *testing.T) {
	d, _, _ := newDirectory(t)
	for _, kind := range []auth.Kind{auth.KindRunner, auth.KindAgent} {
		ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Kind: kind, Name: "runners/r1", ID: "r1",
			SystemAdmin: true, Teams: map[string]auth.Role{"red": auth.RoleAdmin}})
		calls := map[string]func() error{
			"CreateTeam": func() error { _, err := d.CreateTeam(ctx, "green"); return err },
			"CreateUser": func() error { _, err := d.CreateUser(ctx, "zed", false); return err },
			"CreateMembership": func() error {
				_, err := d.CreateMembership(ctx, "red", "admin", auth.RoleMember)
				return err
			},
			"DeleteMembership": func() error { return d.DeleteMembership(ctx, "red", "admin") },
			"CreateToken": func() error {
				_, _, err := d.CreateToken(ctx, resolver.UserPrincipal("admin"), 0, "")
				return err
			},
			"ListTokens":  func() error { _, _, err := d.ListTokens(ctx, "", resolver.Page{}); return err },
			"RevokeToken": func() error { _, err := d.RevokeToken(ctx, "0123456789abcdef"); return err },
		}
		for name, call := range calls {
			t.Run(kind.String()+"/"+name, func(t *testing.T) {
				wantKind(t, call(), errs.KindPermissionDenied)
			})
		}
	}
	t.Run("NoPrincipal", func(t *testing.T) {
		_, err := d.GetTeam(context.Background(), "red")
		wantKind(t, err, errs.KindUnauthenticated)
	})
}

func TestPaging(t *testing.T) {
	d, _, sys := newDirectory(t)
	var teams []string
	for i := range 7 {
		id := fmt.Sprintf("team-%d", i)
		teams = append(teams, id)
		if _, err := d.CreateTeam(sys, id); err != nil {
			t.Fatal(err)
		}
	}
	var users []string
	for i := range 5 {
		id := fmt.Sprintf("user-%d", i)
		users = append(users, id)
		if _, err := d.CreateUser(sys, id, false); err != nil {
			t.Fatal(err)
		}
		if _, err := d.CreateMembership(sys, "team-1", id, auth.RoleNone); err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			if _, err := d.CreateMembership(sys, teams[i+2], "user-0", auth.RoleMember); err != nil {
				t.Fatal(err)
			}
		}
	}
	var tokens []string
	for range 5 {
		tok, _, err := d.CreateToken(sys, resolver.UserPrincipal("user-0"), 0, "")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok.ID)
	}
	slices.Sort(tokens)
	_, user0, err := d.CreateToken(sys, resolver.UserPrincipal("user-0"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	p0, err := d.Authenticate(context.Background(), user0)
	if err != nil {
		t.Fatal(err)
	}
	u0 := auth.WithPrincipal(context.Background(), p0)
	teamID := func(t directory.Team) string { return t.ID }

	for _, size := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprintf("Size%d", size), func(t *testing.T) {
			got := resolvertest.Pages(t, size, func(p resolver.Page) ([]directory.Team, string, error) { return d.ListTeams(sys, p) }, teamID)
			if !slices.Equal(got, teams) {
				t.Errorf("ListTeams (system admin): got %v, want %v", got, teams)
			}
			got = resolvertest.Pages(t, size, func(p resolver.Page) ([]directory.Team, string, error) { return d.ListTeams(u0, p) }, teamID)
			if want := []string{"team-1", "team-2", "team-3", "team-4", "team-5"}; !slices.Equal(got, want) {
				t.Errorf("ListTeams (user-0): got %v, want %v", got, want)
			}
			got = resolvertest.Pages(t, size, func(p resolver.Page) ([]directory.Membership, string, error) {
				return d.ListMemberships(u0, "team-1", p)
			}, func(m directory.Membership) string { return m.User })
			if !slices.Equal(got, users) {
				t.Errorf("ListMemberships: got %v, want %v", got, users)
			}
			got = resolvertest.Pages(t, size, func(p resolver.Page) ([]directory.Token, string, error) {
				return d.ListTokens(sys, "users/user-0", p)
			}, func(t directory.Token) string { return t.ID })
			if len(got) != 6 || !slices.IsSorted(got) {
				t.Errorf("ListTokens: got %d tokens %v, want 6 in id order", len(got), got)
			}
		})
	}
	t.Run("SizeAboveMaximum", func(t *testing.T) {
		got, next, err := d.ListTeams(sys, resolver.Page{Size: 1 << 20})
		if err != nil || len(got) != 7 || next != "" {
			t.Errorf("got %d teams, next %q, %v, want 7, none, nil", len(got), next, err)
		}
	})
}

func TestConflicts(t *testing.T) {
	d, _, sys := newDirectory(t)
	if _, err := d.CreateTeam(sys, "red"); err != nil {
		t.Fatal(err)
	}
	_, err := d.CreateTeam(sys, "red")
	wantKind(t, err, errs.KindAlreadyExists)
	_, err = d.CreateUser(sys, "admin", false)
	wantKind(t, err, errs.KindAlreadyExists)
	_, err = d.CreateMembership(sys, "red", "ghost", auth.RoleMember)
	wantKind(t, err, errs.KindNotFound)
	_, err = d.CreateMembership(sys, "red", "admin", auth.Role(9))
	wantKind(t, err, errs.KindInvalid)
	if !errors.Is(err, errs.Invalid) {
		t.Errorf("errors.Is(err, errs.Invalid): got false, want true")
	}
}
