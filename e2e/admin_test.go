package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTeamsAndMembersFromCLI drives the teams and members commands, oz
// login and oz --version through the real CLI and services, as a new user
// would (issue 17).
func TestTeamsAndMembersFromCLI(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)

	var teams []struct{ Team string }
	if err := json.Unmarshal([]byte(ozOK(t, sys, tm.alice, "", "admin", "team", "list", "--output", "json").Stdout), &teams); err != nil {
		t.Fatal(err)
	}
	if len(teams) != 1 || teams[0].Team != "acme" {
		t.Errorf("alice's teams: %+v, want acme only", teams)
	}

	roles := func() map[string]string {
		t.Helper()
		var ms []struct{ User, Role string }
		if err := json.Unmarshal([]byte(ozOK(t, sys, tm.alice, "", "admin", "member", "list", "--team", "acme", "--output", "json").Stdout), &ms); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range ms {
			out[strings.TrimPrefix(m.User, "users/")] = m.Role
		}
		return out
	}
	if got := roles(); got["alice"] != "admin" || got["bob"] != "member" || len(got) != 2 {
		t.Fatalf("members of acme: %v", got)
	}

	// A member may not change roles, not even their own.
	if res := oz(t, sys, tm.bob, "", "admin", "member", "set-role", "bob", "--team", "acme", "--role", "admin"); res.Code != 4 {
		t.Errorf("bob makes himself admin: exit %d %s, want 4", res.Code, res.Stderr)
	}
	if res := oz(t, sys, tm.alice, "", "admin", "member", "set-role", "bob", "--team", "acme"); res.Code != 2 || !strings.Contains(res.Stderr, "--role") {
		t.Errorf("set-role without --role: exit %d %s, want 2 naming --role", res.Code, res.Stderr)
	}
	if res := oz(t, sys, tm.alice, "", "admin", "member", "set-role", "carol", "--team", "acme", "--role", "admin"); res.Code != 3 {
		t.Errorf("set-role of a non-member: exit %d %s, want 3", res.Code, res.Stderr)
	}
	ozOK(t, sys, tm.alice, "", "admin", "member", "set-role", "bob", "--team", "acme", "--role", "admin")
	if got := roles(); got["bob"] != "admin" {
		t.Fatalf("bob's role after set-role: %q", got["bob"])
	}
	// Now an admin, bob manages members himself.
	ozOK(t, sys, tm.bob, "", "admin", "member", "set-role", "bob", "--team", "acme", "--role", "member")
	if got := roles(); got["bob"] != "member" {
		t.Fatalf("bob's role after setting it back: %q", got["bob"])
	}

	res := ozOK(t, sys, tm.alice, "", "admin", "member", "remove", "bob", "--team", "acme", "--force", "--quiet")
	if res.Stdout != "" {
		t.Errorf("remove --quiet printed %q", res.Stdout)
	}
	if got := roles(); len(got) != 1 {
		t.Errorf("members after bob's removal: %v", got)
	}

	// oz login: a piped token is checked, stored, and used by later commands.
	if res := oz(t, sys, "", "oz_not-a-real-token\n", "login"); res.Code != 4 {
		t.Errorf("login with a bad token: exit %d %s, want 4", res.Code, res.Stderr)
	}
	res = ozOK(t, sys, "", tm.carol+"\n", "login")
	if strings.Contains(res.Stdout+res.Stderr, tm.carol) || !strings.Contains(res.Stderr, "users/carol") {
		t.Errorf("login printed %q %q: want who, never the token", res.Stdout, res.Stderr)
	}
	if out := ozOK(t, sys, "", "", "whoami").Stdout; !strings.Contains(out, "carol") {
		t.Errorf("whoami after login: %q", out)
	}

	v := ozOK(t, sys, "", "", "--version").Stdout
	if !strings.HasPrefix(v, "oz ") || strings.Contains(v, " dev") {
		t.Errorf("oz --version: %q", v)
	}
}
