package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// Inputs that broke things (issue 14, part D): names at every limit in a
// run, control characters in descriptions, what a teammate can learn of a
// member's personal secrets, and joining a team without consent.

// inputsREST sends a JSON request through the gateway with token and
// returns the status and the body.
func inputsREST(t *testing.T, sys *harness.System, method, path, token, body string) (int, string) {
	t.Helper()
	c, err := sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+sys.Addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// inputsEvents waits (generously) until the team's chain holds events of
// action for run (all parts of a run.resolve), and returns their details.
func inputsEvents(t *testing.T, sys *harness.System, token, team, action, run string, ready func([]map[string]string) bool) []map[string]string {
	t.Helper()
	var details []map[string]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		path := fmt.Sprintf("/v1/teams/%s/events?action=%s&page_size=1000", team, action)
		if run != "" {
			path += "&run_id=" + run
		}
		code, body := inputsREST(t, sys, "GET", path, token, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var resp struct {
			Events []struct {
				Details map[string]string `json:"details"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		details = details[:0]
		for _, ev := range resp.Events {
			details = append(details, ev.Details)
		}
		if ready(details) {
			return details
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %s of %s in %s: got %v", action, run, team, details)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// longName is a valid secret name of n characters, told apart by tag.
func longName(tag string, n int) string {
	return tag + strings.Repeat("X", n-len(tag))
}

// TestInputsNamesAtEveryLimit: runs whose secrets and references have
// names of every length up to 255 and lists of the most names allowed are
// explained and resolved (never a 500), and their run.resolve events name
// every injected secret and unresolved reference.
func TestInputsNamesAtEveryLimit(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	runner := newRunner(t, sys, "runner-a", "acme")

	// Team secrets of 245 to 255 characters: names up to 255 are valid.
	var secrets []string
	for n := 245; n <= 255; n++ {
		name := longName(fmt.Sprintf("S%d_", n), n)
		secrets = append(secrets, name)
		ozOK(t, sys, tm.alice, "value-of-"+name[:8], "secret", "create", "--team", name)
	}
	// The most references an environment may list, each 255 characters:
	// the long secrets and missing ones.
	envList := slices.Clone(secrets)
	for i := len(envList); i < 1000; i++ {
		envList = append(envList, longName(fmt.Sprintf("MISSING_%04d_", i), 255))
	}
	args := []string{"environment", "create", "long-names"}
	for _, n := range envList {
		args = append(args, "--secret", n)
	}
	ozOK(t, sys, tm.alice, "", args...)

	ctx := func(extra string) string {
		return `{"context":{"trigger":"TRIGGER_CLI","user":"users/alice"` + extra + `}}`
	}
	runList := `,"secrets":{"names":["` + strings.Join(envList, `","`) + `"]}`
	for name, c := range map[string]struct {
		start []string
		body  string
	}{
		"NoAllowlist": {nil, ctx("")},
		"Environment": {[]string{"--environment", "long-names"}, ctx(`,"environment":"long-names"`)},
		"RunList":     {nil, ctx(runList)},
	} {
		t.Run(name, func(t *testing.T) {
			if code, body := inputsREST(t, sys, "POST", "/v1/teams/acme/runs:explain", tm.bob, c.body); code != http.StatusOK {
				t.Fatalf("explain: %d %s", code, body)
			}
			id := "run-" + strings.ToLower(name)
			start := append([]string{"--run-id", id}, c.start...)
			if name == "RunList" {
				for _, n := range envList {
					start = append(start, "--secret", n)
				}
			}
			ticket := startRun(t, sys, tm.alice, start...)
			res := redeem(t, sys, runner, ticket, nil, "true")
			if res.Code != 0 || strings.Contains(res.Stderr, "internal") {
				t.Fatalf("oz exec: exit %d: %s", res.Code, res.Stderr)
			}
			if code, body := inputsREST(t, sys, "GET", "/v1/teams/acme/runs/"+id, tm.bob, ""); code != http.StatusOK {
				t.Fatalf("get run: %d %s", code, body)
			}
			wantUnresolved := 0
			if name != "NoAllowlist" {
				wantUnresolved = len(envList) - len(secrets)
			}
			count := func(evs []map[string]string) (injected, unresolved map[string]bool) {
				injected, unresolved = map[string]bool{}, map[string]bool{}
				for _, d := range evs {
					for k, v := range d {
						n, _, _ := strings.Cut(v, "=")
						switch {
						case strings.HasPrefix(k, "injected."):
							injected[n] = true
						case strings.HasPrefix(k, "unresolved."):
							unresolved[n] = true
						}
					}
				}
				return injected, unresolved
			}
			evs := inputsEvents(t, sys, tm.alice, "acme", "run.resolve", id, func(evs []map[string]string) bool {
				in, un := count(evs)
				return len(in) == len(secrets) && len(un) == wantUnresolved
			})
			in, _ := count(evs)
			for _, s := range secrets {
				if !in[s] {
					t.Errorf("the run.resolve events do not name injected %s…", s[:8])
				}
			}
		})
	}
}

// TestInputsDescriptionsRefuseControlCharacters: a description holding an
// escape sequence, a CR/LF or a NUL is refused, naming the field and the
// rule, for every kind that has one, and nothing is created or changed.
func TestInputsDescriptionsRefuseControlCharacters(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	ozOK(t, sys, tm.alice, "v1-value", "secret", "create", "--team", "--description", "before", "KEEP")
	ozOK(t, sys, tm.alice, "", "agent", "create", "keep-agent", "--description", "before")
	ozOK(t, sys, tm.alice, "", "environment", "create", "keep-env", "--description", "before")

	for _, bad := range []struct{ name, json string }{
		{"Escape", `clear \u001b[2J`}, {"CRLF", `fake\r\nrow`}, {"NUL", `nul\u0000byte`},
	} {
		for _, c := range []struct {
			kind, method, path, token, body string
			check                           string // a GET whose answer must not hold the bad text
		}{
			{"SecretCreate", "POST", "/v1/teams/acme/secrets", tm.alice, `{"secretId":"NEW_ONE","value":"dmFsdWU=","description":"%s"}`, "/v1/teams/acme/secrets"},
			{"SecretUpdate", "PATCH", "/v1/teams/acme/secrets/KEEP", tm.alice, `{"description":"%s"}`, "/v1/teams/acme/secrets/KEEP"},
			{"AgentCreate", "POST", "/v1/teams/acme/agents", tm.alice, `{"agentId":"new-agent","description":"%s"}`, "/v1/teams/acme/agents"},
			{"AgentUpdate", "PATCH", "/v1/teams/acme/agents/keep-agent", tm.alice, `{"description":"%s","updateMask":"description"}`, "/v1/teams/acme/agents/keep-agent"},
			{"EnvironmentCreate", "POST", "/v1/teams/acme/environments", tm.alice, `{"environmentId":"new-env","description":"%s"}`, "/v1/teams/acme/environments"},
			{"EnvironmentUpdate", "PATCH", "/v1/teams/acme/environments/keep-env", tm.alice, `{"description":"%s","updateMask":"description"}`, "/v1/teams/acme/environments/keep-env"},
			{"TokenCreate", "POST", "/v1/tokens", sys.AdminToken, `{"principal":"users/bob","description":"%s"}`, "/v1/tokens"},
			{"IntegrationCreate", "POST", "/v1/teams/acme/integrations", tm.alice, `{"integrationId":"new-bot","trigger":"TRIGGER_SCHEDULE","description":"%s"}`, "/v1/teams/acme/integrations"},
		} {
			t.Run(bad.name+"/"+c.kind, func(t *testing.T) {
				_, before := inputsREST(t, sys, "GET", c.check, c.token, "")
				code, body := inputsREST(t, sys, c.method, c.path, c.token, fmt.Sprintf(c.body, bad.json))
				if code != http.StatusBadRequest || !strings.Contains(body, "description") || !strings.Contains(body, "control characters") {
					t.Errorf("got %d %s, want 400 naming description and the rule", code, body)
				}
				if _, after := inputsREST(t, sys, "GET", c.check, c.token, ""); stripVolatile(after) != stripVolatile(before) {
					t.Errorf("the refused write changed %s:\n before %s\n after  %s", c.check, before, after)
				}
			})
		}
	}
}

// stripVolatile drops what a read says of the moment it was made (none of
// the reads compared here have such fields today; kept for safety).
func stripVolatile(s string) string { return s }

// TestInputsPersonalSecretsPrivate: a teammate and a system admin are
// shown the same explanations and run records of alice's runs whether or
// not alice has a personal secret of a name, whichever name they guess;
// alice herself is still told.
func TestInputsPersonalSecretsPrivate(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	runner := newRunner(t, sys, "runner-a", "acme")
	ozOK(t, sys, tm.alice, "team-shared-value", "secret", "create", "--team", "SHARED_KEY")
	ozOK(t, sys, tm.alice, "team-other-value", "secret", "create", "--team", "OTHER_KEY")

	contexts := map[string]string{
		"NoAllowlist": `{"trigger":"TRIGGER_CLI","user":"users/alice"}`,
		"Allowlist":   `{"trigger":"TRIGGER_CLI","user":"users/alice","secrets":{"names":["SHARED_KEY","ALICE_ONLY","OTHER_KEY"]}}`,
	}
	startFlags := map[string][]string{
		"NoAllowlist": nil,
		"Allowlist":   {"--secret", "SHARED_KEY", "--secret", "ALICE_ONLY", "--secret", "OTHER_KEY"},
	}
	readers := map[string]string{"Member": tm.bob, "SystemAdmin": sys.AdminToken}
	look := func(world string) (views, own map[string]string) {
		views, own = map[string]string{}, map[string]string{}
		for cname, rc := range contexts {
			id := "run-" + world + "-" + strings.ToLower(cname)
			ticket := startRun(t, sys, tm.alice, append([]string{"--run-id", id}, startFlags[cname]...)...)
			if res := redeem(t, sys, runner, ticket, nil, "true"); res.Code != 0 {
				t.Fatalf("oz exec: exit %d: %s", res.Code, res.Stderr)
			}
			for rname, token := range readers {
				code, ex := inputsREST(t, sys, "POST", "/v1/teams/acme/runs:explain", token, `{"context":`+rc+`}`)
				if code != http.StatusOK {
					t.Fatalf("explain as %s: %d %s", rname, code, ex)
				}
				views[cname+"/"+rname+"/explain"] = ex
				code, run := inputsREST(t, sys, "GET", "/v1/teams/acme/runs/"+id, token, "")
				if code != http.StatusOK {
					t.Fatalf("get run as %s: %d %s", rname, code, run)
				}
				views[cname+"/"+rname+"/record"] = runView(t, run)
				cli := ozOK(t, sys, token, "", "run", "show", id, "--team", "acme")
				var lines []string
				for _, l := range strings.Split(cli.Stdout, "\n") {
					// Times differ from one run to the next.
					if !strings.HasPrefix(l, "TIME ") && !timeLabel(l) &&
						!strings.HasPrefix(l, "TICKET EXPIRES") && !strings.HasPrefix(l, "DURATION") {
						lines = append(lines, strings.ReplaceAll(l, id, "RUN"))
					}
				}
				views[cname+"/"+rname+"/cli"] = strings.Join(lines, "\n")
			}
			_, ex := inputsREST(t, sys, "POST", "/v1/teams/acme/runs:explain", tm.alice, `{"context":`+rc+`}`)
			_, run := inputsREST(t, sys, "GET", "/v1/teams/acme/runs/"+id, tm.alice, "")
			own[cname] = ex + runView(t, run)
		}
		return views, own
	}

	ozOK(t, sys, tm.alice, "alice-shared-value", "secret", "create", "--personal", "SHARED_KEY")
	ozOK(t, sys, tm.alice, "alice-only-value", "secret", "create", "--personal", "ALICE_ONLY")
	has, hasOwn := look("has")
	ozOK(t, sys, tm.alice, "", "secret", "delete", "--personal", "--force", "SHARED_KEY")
	ozOK(t, sys, tm.alice, "", "secret", "delete", "--personal", "--force", "ALICE_ONLY")
	hasNot, hasNotOwn := look("hasnot")

	for k, v := range has {
		if hasNot[k] != v {
			t.Errorf("%s differs with and without alice's personal secrets:\n has:     %s\n has not: %s", k, v, hasNot[k])
		}
		if strings.Contains(v, "users/alice/") || strings.Contains(v, "overridden by") || strings.Contains(v, `"overridesTeamSecret":true`) ||
			strings.Contains(v, `"redacted":true`) || strings.Contains(v, "SECRET_SCOPE_PERSONAL") || strings.Contains(v, "personal  ") {
			t.Errorf("%s says something of alice's personal secrets: %s", k, v)
		}
	}
	for cname, v := range hasOwn {
		if v == hasNotOwn[cname] || !strings.Contains(v, "users/alice") || !strings.Contains(v, "ALICE_ONLY") {
			t.Errorf("%s: alice's own view does not show her personal secrets: %s", cname, v)
		}
	}
}

// timeLabel reports whether the line of `oz run show` is a time: its label,
// of one or two words ("CREATED AT", "RESOLVED AT"), ends in AT.
func timeLabel(l string) bool {
	f := strings.Fields(l)
	for i := 0; i < len(f) && i < 2; i++ {
		if strings.HasSuffix(f[i], "AT") {
			return true
		}
	}
	return false
}

// runView is a run record's JSON without what differs from one run to the
// next (its name, id and times).
func runView(t *testing.T, body string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("run %s: %v", body, err)
	}
	run, _ := v["run"].(map[string]any)
	for k := range run {
		if k == "name" || k == "runId" || strings.HasSuffix(k, "Time") || k == "end" {
			delete(run, k)
		}
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestInputsJoiningNeedsConsent: a team admin cannot make a user a member
// of their team; they invite, and only the invited user sees, accepts or
// declines. Each step is an audit event in the team's chain. A system
// admin still adds members directly (newTeam does).
func TestInputsJoiningNeedsConsent(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)

	// carol, admin of beta, tries to add bob (of acme) directly.
	code, body := inputsREST(t, sys, "POST", "/v1/teams/beta/members", tm.carol, `{"user":"users/bob","role":"ROLE_MEMBER"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "invitation") {
		t.Errorf("direct add by a team admin: got %d %s, want 400 pointing to invitations", code, body)
	}
	if code, _ := inputsREST(t, sys, "GET", "/v1/teams/beta", tm.bob, ""); code != http.StatusForbidden {
		t.Fatalf("bob reads beta: got %d, want 403 (not a member)", code)
	}

	// oz admin member add invites, and says so.
	res := ozOK(t, sys, tm.carol, "", "admin", "member", "add", "bob", "--team", "beta")
	if !strings.Contains(res.Stderr, "Invited bob to team beta") || !strings.Contains(res.Stderr, "oz invitation accept beta") {
		t.Errorf("member add: stderr %q, want it to say bob was invited", res.Stderr)
	}
	if code, _ := inputsREST(t, sys, "GET", "/v1/teams/beta", tm.bob, ""); code != http.StatusForbidden {
		t.Errorf("bob reads beta after the invitation: got %d, want 403 until he accepts", code)
	}
	// Nobody but bob sees or answers his invitations.
	for who, token := range map[string]string{"carol": tm.carol, "alice": tm.alice, "sysadmin": sys.AdminToken} {
		if code, body := inputsREST(t, sys, "GET", "/v1/users/bob/invitations", token, ""); code != http.StatusForbidden {
			t.Errorf("%s lists bob's invitations: %d %s", who, code, body)
		}
		if code, body := inputsREST(t, sys, "POST", "/v1/users/bob/invitations/beta:accept", token, "{}"); code != http.StatusForbidden {
			t.Errorf("%s accepts bob's invitation: %d %s", who, code, body)
		}
	}
	list := ozOK(t, sys, tm.bob, "", "invitation", "list", "-o", "json")
	if !strings.Contains(list.Stdout, `"team": "beta"`) || !strings.Contains(list.Stdout, "users/carol") {
		t.Errorf("bob's invitations: %s", list.Stdout)
	}

	// Declined: nothing changes; invited again and accepted: a member.
	ozOK(t, sys, tm.bob, "", "invitation", "decline", "beta")
	if res := oz(t, sys, tm.bob, "", "invitation", "accept", "beta"); res.Code != 3 {
		t.Errorf("accepting a declined invitation: exit %d (%s), want 3 (not found)", res.Code, res.Stderr)
	}
	ozOK(t, sys, tm.carol, "", "admin", "member", "add", "bob", "--team", "beta", "--role", "admin")
	ozOK(t, sys, tm.bob, "", "invitation", "accept", "beta")
	deadline := time.Now().Add(30 * time.Second) // the 5-second authentication cache
	for {
		code, _ := inputsREST(t, sys, "GET", "/v1/teams/beta", tm.bob, "")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob reads beta after accepting: got %d, want 200", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := ozOK(t, sys, tm.bob, "", "invitation", "list").Stdout; out != "" {
		t.Errorf("bob's invitations after accepting: %q, want none", out)
	}

	// Each step is in beta's chain.
	for _, action := range []string{"invitation.create", "invitation.decline", "invitation.accept", "membership.create"} {
		want := 1
		if action == "invitation.create" || action == "membership.create" {
			want = 2 // invited twice; carol's own membership and bob's
		}
		inputsEvents(t, sys, tm.carol, "beta", action, "", func(evs []map[string]string) bool {
			return len(evs) >= want
		})
	}
}
