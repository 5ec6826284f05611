package e2e_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// Values planted by the run-resolution tests; none may ever come back to a
// person, a log or a record.
const (
	canaryDeploy    = "canary-deploy-token-4e1f0b"
	canaryPager     = "canary-pagerduty-key-93aa1c"
	canaryOther     = "canary-other-team-secret-d7c2"
	canaryRestrict  = "canary-restricted-key-0b9e55"
	canaryPersonalG = "canary-alice-github-77f1aa"
	canaryRecreated = "canary-deploy-recreated-5c3d"
)

var runCanaries = []string{canaryDeploy, canaryPager, canaryOther, canaryRestrict, canaryPersonalG, canaryRecreated}

// runTeam is newTeam plus the seed's example: team secrets DEPLOY_TOKEN,
// PAGERDUTY_API_KEY, OTHER_KEY and RESTRICTED_KEY (referenced by the
// identity "deployer"), alice's personal GITHUB_TOKEN, the environment
// ops-tools listing DEPLOY_TOKEN, PAGERDUTY_API_KEY and MISSING_KEY,
// runners for acme and for beta, and the scheduler that starts acme's
// user-less runs (an integration, allowed to run as deployer).
type runTeam struct {
	team
	runnerA, runnerB string // runner tokens of acme and of beta
	cron             string // the schedule integration's token
}

func newRunTeam(t *testing.T, sys *harness.System) runTeam {
	t.Helper()
	tm := newTeam(t, sys)
	for name, value := range map[string]string{
		"DEPLOY_TOKEN": canaryDeploy, "PAGERDUTY_API_KEY": canaryPager,
		"OTHER_KEY": canaryOther, "RESTRICTED_KEY": canaryRestrict,
	} {
		ozOK(t, sys, tm.alice, value, "secret", "create", "--team", name)
	}
	ozOK(t, sys, tm.alice, canaryPersonalG, "secret", "create", "--personal", "GITHUB_TOKEN")
	ozOK(t, sys, tm.alice, "", "agent", "create", "deployer", "--description", "deploys", "--secret", "RESTRICTED_KEY")
	ozOK(t, sys, tm.alice, "", "environment", "create", "ops-tools",
		"--secret", "DEPLOY_TOKEN", "--secret", "PAGERDUTY_API_KEY", "--secret", "MISSING_KEY")
	return runTeam{
		team:    tm,
		runnerA: newRunner(t, sys, "runner-a", "acme"),
		runnerB: newRunner(t, sys, "runner-b", "beta"),
		cron:    newIntegration(t, sys, tm.alice, "cron", "acme", "schedule", "--agent", "deployer"),
	}
}

// newRunner creates a runner granted teams; the command prints only its token.
func newRunner(t *testing.T, sys *harness.System, name string, teams ...string) string {
	t.Helper()
	args := []string{"admin", "runner", "create", name}
	for _, tm := range teams {
		args = append(args, "--team", tm)
	}
	return onlyToken(t, "runner create", ozOK(t, sys, sys.AdminToken, "", args...))
}

// newIntegration creates integration name of team, as the team admin
// admin; the command prints only its token.
func newIntegration(t *testing.T, sys *harness.System, admin, name, team, trigger string, extra ...string) string {
	t.Helper()
	args := append([]string{"admin", "integration", "create", name, "--team", team, "--trigger", trigger}, extra...)
	return onlyToken(t, "integration create", ozOK(t, sys, admin, "", args...))
}

func onlyToken(t *testing.T, what string, res harness.CLIResult) string {
	t.Helper()
	tok := strings.TrimSuffix(res.Stdout, "\n")
	if !strings.HasPrefix(tok, "oz_") || strings.ContainsAny(tok, " \n\t") {
		t.Fatalf("%s printed %q, want only an oz_… token", what, res.Stdout)
	}
	return tok
}

// startRun starts a run with token (`oz run start`) and returns the
// ticket, which is all the command prints.
func startRun(t *testing.T, sys *harness.System, token string, flags ...string) string {
	t.Helper()
	res := ozOK(t, sys, token, "", append([]string{"run", "start"}, flags...)...)
	ticket := strings.TrimSuffix(res.Stdout, "\n")
	if !strings.HasPrefix(ticket, "ozt_") || strings.ContainsAny(ticket, " \n\t") {
		t.Fatalf("oz run start printed %q, want only an ozt_… ticket", res.Stdout)
	}
	return ticket
}

// redeem runs `oz exec` as runner with ticket in OZ_TICKET (and flags),
// the child running child.
func redeem(t *testing.T, sys *harness.System, runner, ticket string, flags []string, child ...string) harness.CLIResult {
	t.Helper()
	args := append(append([]string{"exec", "--ticket-env", "OZ_TICKET"}, flags...), "--")
	res, err := sys.OZ(runner, nil, []string{"OZ_TICKET=" + ticket}, append(args, child...)...)
	if err != nil {
		t.Fatalf("oz exec: %v", err)
	}
	return res
}

func sum(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

// envDigest is a child command printing NAME=sha256(value) for each name
// (or NAME=unset), so a test can check the values a run received without
// the values ever being printed.
func envDigest(names ...string) []string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(`if [ -n "${` + n + `+x}" ]; then printf '` + n + `=%s\n' "$(printf %s "$` + n + `" | sha256sum | cut -d' ' -f1)"; else echo ` + n + `=unset; fi; `)
	}
	return []string{"sh", "-c", b.String()}
}

func digestLines(names map[string]string) string {
	var b strings.Builder
	for _, n := range sortedKeys(names) {
		v := names[n]
		if v == "" {
			b.WriteString(n + "=unset\n")
		} else {
			b.WriteString(n + "=" + sum(v) + "\n")
		}
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// execRun starts a run with starter and flags (oz run start) and
// redeems it as runner with the child printing digests of want's names,
// and checks what the child saw.
func execRun(t *testing.T, sys *harness.System, runner, starter string, want map[string]string, flags ...string) harness.CLIResult {
	t.Helper()
	ticket := startRun(t, sys, starter, flags...)
	res := redeem(t, sys, runner, ticket, nil, envDigest(sortedKeys(want)...)...)
	if res.Code != 0 {
		t.Fatalf("oz exec of a run started with %v: exit %d\nstderr: %s", flags, res.Code, res.Stderr)
	}
	if got, w := res.Stdout, digestLines(want); got != w {
		t.Errorf("run started with %v: the child saw\n%s\nwant\n%s", flags, got, w)
	}
	return res
}

// TestRunResolution drives DESIGN §5 through real processes: the trigger
// starts a run (a member for themselves, the scheduler integration), a
// runner redeems the ticket by `oz exec`, opens the sealed values and
// hands them to the child; people explain and inspect runs by CLI and
// REST.
func TestRunResolution(t *testing.T) {
	sys := startSystem(t)
	rt := newRunTeam(t, sys)

	// The environment is the allowlist: its two secrets, MISSING_KEY unresolved.
	res := execRun(t, sys, rt.runnerA, rt.cron, map[string]string{
		"DEPLOY_TOKEN": canaryDeploy, "PAGERDUTY_API_KEY": canaryPager, "OTHER_KEY": "", "GITHUB_TOKEN": "", "RESTRICTED_KEY": "",
	}, "--environment", "ops-tools", "--run-id", "run-ops-1")
	for _, want := range []string{"run-ops-1", "DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "MISSING_KEY"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("oz exec stderr does not mention %q:\n%s", want, res.Stderr)
		}
	}

	// No allowlist, user-initiated: every unrestricted team secret and
	// alice's personal one; RESTRICTED_KEY only for the deployer identity.
	execRun(t, sys, rt.runnerA, rt.alice, map[string]string{
		"DEPLOY_TOKEN": canaryDeploy, "PAGERDUTY_API_KEY": canaryPager, "OTHER_KEY": canaryOther,
		"GITHUB_TOKEN": canaryPersonalG, "RESTRICTED_KEY": "",
	})
	execRun(t, sys, rt.runnerA, rt.cron, map[string]string{
		"DEPLOY_TOKEN": canaryDeploy, "OTHER_KEY": canaryOther, "RESTRICTED_KEY": canaryRestrict, "GITHUB_TOKEN": "",
	}, "--agent", "deployer")
	// alice is a team admin: she may start her own run as deployer; bob,
	// a member, may not (deployer's start policy is admins).
	execRun(t, sys, rt.runnerA, rt.alice, map[string]string{"RESTRICTED_KEY": canaryRestrict, "GITHUB_TOKEN": canaryPersonalG},
		"--agent", "deployer", "--secret", "RESTRICTED_KEY", "--secret", "GITHUB_TOKEN")
	if r := oz(t, sys, rt.bob, "", "run", "start", "--agent", "deployer"); r.Code != 4 || !strings.Contains(r.Stderr, "admins") {
		t.Errorf("bob starting a run as deployer: exit %d, stderr %q; want 4 and the start policy named", r.Code, r.Stderr)
	}

	// A run list naming a missing secret: the rest resolves; strict fails
	// before the child starts, with its own exit code.
	execRun(t, sys, rt.runnerA, rt.bob, map[string]string{"OTHER_KEY": canaryOther, "DEPLOY_TOKEN": ""},
		"--trigger", "api", "--secret", "OTHER_KEY", "--secret", "NOPE_KEY")
	ticket := startRun(t, sys, rt.bob, "--trigger", "api", "--secret", "OTHER_KEY", "--secret", "NOPE_KEY", "--strict")
	strict := redeem(t, sys, rt.runnerA, ticket, nil, "sh", "-c", "echo child-started")
	if strict.Code != 7 || strings.Contains(strict.Stdout, "child-started") || !strings.Contains(strict.Stderr, "NOPE_KEY") {
		t.Errorf("strict run with an unresolved reference: exit %d, stdout %q, stderr %q; want exit 7, no child, NOPE_KEY named",
			strict.Code, strict.Stdout, strict.Stderr)
	}
	// --no-secrets: nothing.
	execRun(t, sys, rt.runnerA, rt.cron, map[string]string{"OTHER_KEY": "", "DEPLOY_TOKEN": ""}, "--no-secrets")
	// The runner may narrow a ticket: to nothing.
	ticket = startRun(t, sys, rt.alice)
	if r := redeem(t, sys, rt.runnerA, ticket, []string{"--no-secrets"}, envDigest("DEPLOY_TOKEN", "GITHUB_TOKEN")...); r.Code != 0 ||
		r.Stdout != "DEPLOY_TOKEN=unset\nGITHUB_TOKEN=unset\n" {
		t.Errorf("a ticket narrowed to nothing: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	// Deleting and recreating a secret keeps the environment pointing at it.
	ozOK(t, sys, rt.alice, "", "secret", "delete", "--team", "--force", "DEPLOY_TOKEN")
	ozOK(t, sys, rt.alice, canaryRecreated, "secret", "create", "--team", "DEPLOY_TOKEN")
	execRun(t, sys, rt.runnerA, rt.cron, map[string]string{"DEPLOY_TOKEN": canaryRecreated, "PAGERDUTY_API_KEY": canaryPager},
		"--environment", "ops-tools")

	// Refusals. Starting: for another user, a trigger a person may not
	// use, a user-less run with a user, no such identity or environment.
	for _, c := range []struct {
		name  string
		token string
		args  []string
		code  int
	}{
		{"member for another member", rt.bob, []string{"--user", "alice"}, 4},
		{"member with a slack trigger", rt.bob, []string{"--trigger", "slack"}, 4},
		{"runner starting a run", rt.runnerA, []string{"--trigger", "schedule"}, 4},
		{"scheduler with a user", rt.cron, []string{"--user", "alice"}, 2},
		{"member of another team", rt.carol, []string{"--team", "acme"}, 4},
		{"identity of no such name", rt.cron, []string{"--agent", "ghost"}, 2},
		{"environment of no such name", rt.cron, []string{"--environment", "ghost"}, 2},
		{"expiry over an hour", rt.alice, []string{"--expires", "2h"}, 2},
	} {
		r := oz(t, sys, c.token, "", append([]string{"run", "start"}, c.args...)...)
		if r.Code != c.code || strings.HasPrefix(r.Stdout, "ozt_") {
			t.Errorf("start, %s: exit %d (want %d), stdout %q, stderr %q", c.name, r.Code, c.code, r.Stdout, r.Stderr)
		}
	}
	// Redeeming: another team's runner, a person, a used ticket, no ticket,
	// a widened context.
	fresh := startRun(t, sys, rt.cron)
	used := startRun(t, sys, rt.cron)
	redeem(t, sys, rt.runnerA, used, nil, "true")
	for _, c := range []struct {
		name, token, ticket string
		flags               []string
		code                int
	}{
		{"runner of another team", rt.runnerB, fresh, nil, 4},
		{"member redeeming", rt.bob, fresh, nil, 4},
		{"ticket redeemed already", rt.runnerA, used, nil, 4},
		{"no ticket", rt.runnerA, "", nil, 2},
		{"a ticket of another team", rt.runnerA, fresh, []string{"--team", "beta"}, 4},
		{"widened to another identity", rt.runnerA, fresh, []string{"--agent", "deployer"}, 4},
		{"widened to another user", rt.runnerA, fresh, []string{"--trigger", "cli", "--user", "alice"}, 4},
		{"widened list", rt.runnerA, fresh, []string{"--secret", "RESTRICTED_KEY"}, 4},
	} {
		r := redeem(t, sys, c.token, c.ticket, c.flags, "sh", "-c", "echo child-started")
		if r.Code != c.code || strings.Contains(r.Stdout, "child-started") {
			t.Errorf("redeem, %s: exit %d (want %d), stdout %q, stderr %q", c.name, r.Code, c.code, r.Stdout, r.Stderr)
		}
	}
	// The fresh ticket survived all that, and still works once.
	if r := redeem(t, sys, rt.runnerA, fresh, nil, "sh", "-c", "echo child-started"); r.Code != 0 || !strings.Contains(r.Stdout, "child-started") {
		t.Errorf("the fresh ticket after refused redemptions: exit %d, stderr %q", r.Code, r.Stderr)
	}

	// The run record: readable by members, never a value; it says who
	// started the run, and that it ended, with its exit code.
	show := ozOK(t, sys, rt.bob, "", "run", "show", "run-ops-1", "--output", "json")
	for _, want := range []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "MISSING_KEY", "runners/runner-a", "teams/acme/integrations/cron", "ended"} {
		if !strings.Contains(show.Stdout, want) {
			t.Errorf("oz run show: %q missing:\n%s", want, show.Stdout)
		}
	}
	list := ozOK(t, sys, rt.bob, "", "run", "list", "--trigger", "schedule")
	if !strings.Contains(list.Stdout, "run-ops-1") {
		t.Errorf("oz run list --trigger schedule does not show run-ops-1:\n%s", list.Stdout)
	}
	// bob sees that alice's run got a personal secret, not its name.
	listAll := ozOK(t, sys, rt.bob, "", "run", "list", "--output", "json")
	if strings.Contains(listAll.Stdout, "GITHUB_TOKEN\"") && strings.Contains(listAll.Stdout, `"owner":"users/alice"`) {
		t.Errorf("bob's run list names alice's personal secret:\n%s", listAll.Stdout)
	}

	// Explain, by CLI and REST, for a member.
	ex := ozOK(t, sys, rt.bob, "", "run", "explain", "--trigger", "schedule", "--environment", "ops-tools", "--output", "json")
	for _, want := range []string{"DEPLOY_TOKEN", "MISSING_KEY", "OTHER_KEY"} {
		if !strings.Contains(ex.Stdout, want) {
			t.Errorf("oz run explain: %q missing:\n%s", want, ex.Stdout)
		}
	}
	exAlice := ozOK(t, sys, rt.bob, "", "run", "explain", "--trigger", "cli", "--user", "alice")
	if strings.Contains(exAlice.Stdout, "GITHUB_TOKEN") {
		t.Errorf("bob's explain of alice's run names her personal secret:\n%s", exAlice.Stdout)
	}
	body := restJSON(t, sys, rt.bob, "POST", "/v1/teams/acme/runs:explain",
		`{"context":{"trigger":"TRIGGER_SCHEDULE","agent":"deployer"}}`, http.StatusOK)
	if !strings.Contains(body, "RESTRICTED_KEY") || !strings.Contains(body, "DECISION_INJECTED") {
		t.Errorf("REST explain as deployer: %s", body)
	}
	restJSON(t, sys, rt.bob, "GET", "/v1/teams/acme/runs/run-ops-1", "", http.StatusOK)
	restJSON(t, sys, rt.carol, "GET", "/v1/teams/acme/runs/run-ops-1", "", http.StatusForbidden)
	restJSON(t, sys, rt.bob, "GET", "/v1/teams/acme/agents", "", http.StatusOK)
	restJSON(t, sys, rt.bob, "GET", "/v1/teams/acme/environments/ops-tools", "", http.StatusOK)
	// A member starts a run over REST too: the ticket is in the answer.
	started := restJSON(t, sys, rt.bob, "POST", "/v1/teams/acme/runs:start", `{"context":{"trigger":"TRIGGER_API"}}`, http.StatusOK)
	if !strings.Contains(started, `"ticket":"ozt_`) || !strings.Contains(started, "RUN_STATE_STARTED") {
		t.Errorf("REST runs:start: %s", started)
	}

	// Nothing anywhere holds a value: responses above, logs and data files.
	for _, out := range []string{show.Stdout, list.Stdout, listAll.Stdout, ex.Stdout, exAlice.Stdout, body, res.Stderr, sys.Output()} {
		for _, c := range runCanaries {
			if strings.Contains(out, c) {
				t.Fatalf("a planted value appeared in output:\n%s", out)
			}
		}
	}
	scanDataDir(t, sys, runCanaries)
}

// TestAgentIdentities: the default identity, restriction by reference,
// tokens bound to an identity and their revocation with it.
func TestAgentIdentities(t *testing.T) {
	sys := startSystem(t)
	rt := newRunTeam(t, sys)

	list := ozOK(t, sys, rt.bob, "", "agent", "list", "--output", "json")
	if !strings.Contains(list.Stdout, `"default"`) || !strings.Contains(list.Stdout, "Default Service Account") {
		t.Errorf("agent list lacks the default identity:\n%s", list.Stdout)
	}
	if r := oz(t, sys, rt.alice, "", "agent", "delete", "default", "--force"); r.Code == 0 {
		t.Errorf("deleting the default identity succeeded")
	}
	if r := oz(t, sys, rt.bob, "", "agent", "create", "bobs-bot"); r.Code != 4 {
		t.Errorf("member creating an identity: exit %d, want 4 (%s)", r.Code, r.Stderr)
	}

	// A run started with a deployer token executes as deployer.
	res := ozOK(t, sys, rt.alice, "", "admin", "token", "create", "--agent", "deployer", "--team", "acme")
	agentTok := strings.TrimSuffix(res.Stdout, "\n")
	if !strings.HasPrefix(agentTok, "oz_") {
		t.Fatalf("agent token create printed %q", res.Stdout)
	}
	ticket := startRun(t, sys, agentTok, "--trigger", "schedule", "--run-id", "run-agent-2")
	r := redeem(t, sys, rt.runnerA, ticket, nil, "sh", "-c", `test -n "$RESTRICTED_KEY" && echo restricted-present`)
	if r.Code != 0 || !strings.Contains(r.Stdout, "restricted-present") {
		t.Errorf("run started with the deployer's token: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stderr, agentTok) || strings.Contains(sys.Output(), agentTok) {
		t.Errorf("the start token was echoed")
	}
	show := ozOK(t, sys, rt.bob, "", "run", "show", "run-agent-2", "--output", "json")
	if !strings.Contains(show.Stdout, "deployer") || strings.Contains(show.Stdout, agentTok) {
		t.Errorf("run-agent-2's record: %s", show.Stdout)
	}
	// The identity's token starts runs as the identity only.
	if r := oz(t, sys, agentTok, "", "run", "start", "--trigger", "schedule", "--agent", "default"); r.Code != 4 {
		t.Errorf("the deployer's token starting a run as default: exit %d, want 4 (%s)", r.Code, r.Stderr)
	}

	// Deleting the identity revokes its token, and a ticket it started
	// no longer resolves.
	ticket = startRun(t, sys, agentTok, "--trigger", "schedule")
	ozOK(t, sys, rt.alice, "", "agent", "delete", "deployer", "--force")
	if r := redeem(t, sys, rt.runnerA, ticket, nil, "sh", "-c", "echo child-started"); r.Code == 0 || strings.Contains(r.Stdout, "child-started") {
		t.Errorf("a run started by a deleted identity's token: exit %d, stdout %q", r.Code, r.Stdout)
	}
	// Refused either way: unauthenticated once the services' 5-second
	// token cache lets go of it (4), and until then because the identity
	// it would execute as is gone (2).
	if r := oz(t, sys, agentTok, "", "run", "start", "--trigger", "schedule"); (r.Code != 4 && r.Code != 2) || strings.HasPrefix(r.Stdout, "ozt_") {
		t.Errorf("a deleted identity's token starting a run: exit %d, stdout %q; want it refused", r.Code, r.Stdout)
	}
	// With the identity gone, RESTRICTED_KEY is no longer restricted.
	execRun(t, sys, rt.runnerA, rt.cron, map[string]string{"RESTRICTED_KEY": canaryRestrict}, "--secret", "RESTRICTED_KEY")
}

// restJSON makes a REST call through the gateway and checks the status.
func restJSON(t *testing.T, sys *harness.System, token, method, path, body string, want int) string {
	t.Helper()
	hc, err := sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "https://"+sys.Addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if len(b) > 0 && !json.Valid(b) {
		t.Errorf("%s %s: body is not JSON: %s", method, path, b)
	}
	return string(b)
}
