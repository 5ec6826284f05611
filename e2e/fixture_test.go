package e2e_test

import (
	"strings"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// team is a bootstrapped team "acme" with an admin (alice) and a member
// (bob), and a user of another team (carol in "beta").
type team struct {
	sys               *harness.System
	alice, bob, carol string // bearer tokens
}

func newTeam(t *testing.T, sys *harness.System) team {
	t.Helper()
	admin := sys.AdminToken
	ozOK(t, sys, admin, "", "admin", "team", "create", "acme")
	ozOK(t, sys, admin, "", "admin", "team", "create", "beta")
	ozOK(t, sys, admin, "", "admin", "user", "create", "alice", "--team", "acme", "--role", "admin")
	ozOK(t, sys, admin, "", "admin", "user", "create", "bob", "--team", "acme", "--role", "member")
	ozOK(t, sys, admin, "", "admin", "user", "create", "carol", "--team", "beta", "--role", "admin")
	return team{
		sys:   sys,
		alice: newToken(t, sys, "alice"),
		bob:   newToken(t, sys, "bob"),
		carol: newToken(t, sys, "carol"),
	}
}

// newToken creates a token for user; the command prints only the token.
func newToken(t *testing.T, sys *harness.System, user string, extra ...string) string {
	t.Helper()
	res := ozOK(t, sys, sys.AdminToken, "", append([]string{"admin", "token", "create", "--user", user}, extra...)...)
	tok := strings.TrimSuffix(res.Stdout, "\n")
	if !strings.HasPrefix(tok, "oz_") || strings.ContainsAny(tok, " \n\t") {
		t.Fatalf("token create printed %q, want only an oz_… token and a newline", res.Stdout)
	}
	return tok
}
