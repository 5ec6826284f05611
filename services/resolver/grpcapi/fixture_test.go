package grpcapi_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

// The callers of the authorization matrix, by the token they present.
const (
	sysAdmin     = "SystemAdmin"    // admin, bootstrap system admin
	teamAdmin    = "TeamAdmin"      // ann, admin of red
	teamMember   = "TeamMember"     // max, member of red
	otherTeam    = "OtherTeamAdmin" // oli, admin of blue only
	noToken      = "ServiceCertNoToken"
	expiredToken = "ExpiredToken" // max's, expired at t0+1h
	revokedToken = "RevokedToken" // max's, revoked
	unknownToken = "UnknownToken" // well-formed, never issued
	malformed    = "MalformedToken"
)

var callers = []string{sysAdmin, teamAdmin, teamMember, otherTeam, noToken, expiredToken, revokedToken, unknownToken, malformed}

// fixture is a prepared resolver database: teams red and blue; ann admin
// and max member of red, oli admin of blue, newbie in no team; a token for
// every caller, and a spare token of max's.
type fixture struct {
	pki      pki.Dir
	template string
	tokens   map[string]string // caller → bearer token
	spare    string            // id of max's spare token
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{pki: newPKI(t), template: filepath.Join(t.TempDir(), "template.db")}
	store, err := boltkv.Open(f.template, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := resolvertest.WithRuns(directory.New(resolver.NewStore(store, (&clock{now: t0}).Now)))
	_, admin, err := d.BootstrapAdmin(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	sys := as(authenticate(t, d, admin))
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, team := range []string{"red", "blue"} {
		_, err := d.CreateTeam(sys, team)
		check(err)
	}
	for _, user := range []string{"ann", "max", "oli", "newbie"} {
		_, err := d.CreateUser(sys, user, false)
		check(err)
	}
	for _, m := range []struct {
		team, user string
		role       auth.Role
	}{{"red", "ann", auth.RoleAdmin}, {"red", "max", auth.RoleMember}, {"blue", "oli", auth.RoleAdmin}} {
		_, err := d.CreateMembership(sys, m.team, m.user, m.role)
		check(err)
	}
	token := func(user string, ttl time.Duration) (directory.Token, string) {
		t.Helper()
		tok, bearer, err := d.CreateToken(sys, resolver.UserPrincipal(user), ttl, "fixture")
		check(err)
		return tok, bearer
	}
	f.tokens = map[string]string{sysAdmin: admin, noToken: "", malformed: "oz_notatoken_0000",
		unknownToken: "oz_0123456789abcdef_" + strings.Repeat("A", 43)}
	_, f.tokens[teamAdmin] = token("ann", 0)
	_, f.tokens[teamMember] = token("max", 0)
	_, f.tokens[otherTeam] = token("oli", 0)
	_, f.tokens[expiredToken] = token("max", time.Hour)
	revoked, bearer := token("max", 0)
	f.tokens[revokedToken] = bearer
	_, err = d.RevokeToken(sys, revoked.ID)
	check(err)
	spare, _ := token("max", 0)
	f.spare = spare.ID
	return f
}

// serve starts a resolver on a copy of the fixture's database, with the
// clock at t0+2h (the expired token has expired).
func (f *fixture) serve(t *testing.T) *env {
	t.Helper()
	db := filepath.Join(t.TempDir(), "resolver.db")
	copyFile(t, f.template, db)
	return serve(t, f.pki, db, &clock{now: t0.Add(2 * time.Hour)})
}
