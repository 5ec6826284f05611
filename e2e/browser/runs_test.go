package browser_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRunLifecycle starts a run in the browser and follows it: the ticket
// is shown once (and not after a reload), an identity whose start policy
// is admins refuses a member next to the field, a runner redeems the
// ticket and the run is in flight, rotating a value it holds says so on
// the Secrets page and flags the run, and the run's end shows with its
// exit code. The steps build on each other.
func TestRunLifecycle(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	const name = "DEPLOY_TOKEN"
	value, rotated := testValue("deploy"), testValue("deploy-rotated")
	e.restSecret(t, tm.aliceTok, tm.id, name, value)
	e.restSecret(t, tm.aliceTok, tm.id, "OTHER_KEY", testValue("other"))
	admin := newTab(t, e, e.gw.URL)
	startPath := "/v1/teams/" + tm.id + "/runs:start"
	var ticket, runID string
	r := e.newRunner(t, tm, "lifecycle-runner")
	runRow := func() string { return fmt.Sprintf(`#runs tr[data-run=%q]`, runID) }

	steps := []struct {
		name string
		run  func(t *testing.T, admin *tab)
	}{
		{"AgentStartPolicy", func(t *testing.T, admin *tab) {
			admin.signIn(tm.aliceTok)
			admin.open("#/agents")
			defaultRow := `#agents tr[data-agent="default"]`
			admin.waitVisible(defaultRow)
			if got := admin.text(defaultRow + " td.policy"); got != "any member" {
				t.Errorf("the default identity's start policy: got %q, want any member", got)
			}
			// A new identity is admins-only unless chosen otherwise.
			admin.click("#add-agent")
			admin.typeInto("#agent-id", "deployer")
			if got := eval[string](admin, `document.querySelector("#agent-start-policy").value`); got != "START_POLICY_ADMINS" {
				t.Errorf("a new identity's start policy: got %s, want START_POLICY_ADMINS chosen", got)
			}
			admin.submit("#add-agent-form", `#agents tr[data-agent="deployer"] td.policy[data-policy="admins"]`)
			admin.click("#add-agent")
			admin.typeInto("#agent-id", "helper")
			admin.selectOption("#agent-start-policy", "START_POLICY_MEMBERS")
			admin.submit("#add-agent-form", `#agents tr[data-agent="helper"] td.policy[data-policy="members"]`)
			// Edit: helper becomes admins-only.
			admin.click(`#agents tr[data-agent="helper"] button[data-action="edit"]`)
			admin.waitVisible("#edit-agent-form")
			admin.selectOption("#edit-agent-start-policy", "START_POLICY_ADMINS")
			admin.submit("#edit-agent-form", `#agents tr[data-agent="helper"] td.policy[data-policy="admins"]`)
			patches := e.gw.requests("PATCH", "/v1/teams/"+tm.id+"/agents/helper")
			if len(patches) != 1 || !strings.Contains(string(patches[0].Body), `"startPolicy":"START_POLICY_ADMINS"`) {
				t.Errorf("PATCH helper: want one with startPolicy START_POLICY_ADMINS, got %d", len(patches))
			}
			// The default identity's policy is shown, not editable.
			admin.click(defaultRow + ` button[data-action="edit"]`)
			admin.waitVisible("#edit-agent-form")
			if admin.exists("#edit-agent-start-policy") {
				t.Errorf("the default identity's start policy is editable")
			}
			if got := admin.text("#edit-agent-start-policy-fixed"); got != "Any member of the team" {
				t.Errorf("the default identity's edit pane shows %q for its start policy", got)
			}
			admin.screenshot("agents-edit-default")
			admin.click("#pane-close")
			admin.screenshot("agents-start-policy")
		}},
		{"StartShowsTicketOnce", func(t *testing.T, admin *tab) {
			admin.open("#/runs")
			admin.click("#start-run")
			admin.waitVisible("#start-run-form")
			if got := eval[string](admin, `document.querySelector("#start-agent").value`); got != "default" {
				t.Errorf("execute as: got %q chosen, want the default identity", got)
			}
			if got := eval[string](admin, `document.querySelector("#start-ttl").value`); got != "10" {
				t.Errorf("expiry: got %q minutes, want 10", got)
			}
			admin.selectOption("#start-list-mode", "names")
			admin.typeInto("#start-secrets", name)
			admin.typeInto("#start-ttl", "15")
			admin.screenshot("runs-start-pane")
			before := len(e.gw.requests("POST", startPath))
			admin.submit("#start-run-form", "#ticket-value")

			ticket = eval[string](admin, `document.querySelector("#ticket-value").value`)
			if !strings.HasPrefix(ticket, "ozt_") {
				t.Fatalf("ticket %q, want ozt_…", ticket)
			}
			runID = admin.text("#ticket-run-id")
			if runID == "" {
				t.Fatalf("no run id shown with the ticket")
			}
			command := eval[string](admin, `document.querySelector("#ticket-command").value`)
			if !strings.Contains(command, ticket) || !strings.Contains(command, "oz exec --ticket-env OZ_TICKET --") {
				t.Errorf("the runner's command %q lacks the ticket or `oz exec --ticket-env OZ_TICKET --`", command)
			}
			if got := admin.text("#pane"); !strings.Contains(got, "shown only this once") {
				t.Errorf("the pane does not say the ticket is shown only once: %q", got)
			}
			if admin.text("#ticket-expires") == "" {
				t.Errorf("no expiry shown with the ticket")
			}
			if !shownOrKept(admin, ticket) { // the check below, after a reload, can fail
				t.Errorf("shownOrKept does not find the ticket the pane shows")
			}
			admin.click("#ticket-value-copy")
			admin.waitFor("the copy status", `document.querySelector("#ticket-value-copied").textContent !== ""`)
			admin.screenshot("runs-ticket")

			posts := e.gw.requests("POST", startPath)[before:]
			if len(posts) != 1 {
				t.Fatalf("POST %s at the gateway: got %d, want 1", startPath, len(posts))
			}
			var body struct {
				Context struct {
					Trigger, User, Agent string
					Secrets              *struct{ Names []string }
				}
				TTL string
			}
			if err := json.Unmarshal(posts[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			c := body.Context
			if c.Trigger != "TRIGGER_WEB" || c.User != "" || c.Agent != "default" || c.Secrets == nil ||
				strings.Join(c.Secrets.Names, ",") != name || body.TTL != "900s" {
				t.Errorf("start body: %s", posts[0].Body)
			}
			// The list behind the pane has the run, waiting for a runner.
			admin.waitText(runRow(), "started")
		}},
		{"ReloadDoesNotShowItAgain", func(t *testing.T, admin *tab) {
			admin.open("#/runs")
			admin.waitVisible(runRow())
			if shownOrKept(admin, ticket) {
				t.Errorf("the ticket is shown or kept after a reload")
			}
			if admin.exists("#ticket-value") {
				t.Errorf("the ticket pane is back after a reload")
			}
			admin.click(runRow() + " a")
			admin.waitVisible("#run-id")
			if got := admin.text("#page"); !strings.Contains(got, "started") || !strings.Contains(got, "Ticket expires") {
				t.Errorf("run detail: %q, want it started with its ticket's expiry", got)
			}
			if shownOrKept(admin, ticket) {
				t.Errorf("the run's detail shows the ticket")
			}
			// Nothing the browser sent carries the ticket.
			for _, o := range e.gw.all() {
				if strings.Contains(string(o.Body), ticket) || strings.Contains(o.Path, ticket) {
					t.Errorf("%s %s carries the ticket", o.Method, o.Path)
				}
			}
		}},
		{"MemberGetsThePolicyErrorAtTheAgentField", func(t *testing.T, _ *tab) {
			bob := newTab(t, e, e.gw.URL)
			bob.signIn(tm.bobTok)
			bob.open("#/runs")
			bob.click("#start-run")
			bob.waitVisible("#start-run-form")
			bob.selectOption("#start-agent", "deployer")
			bob.click("#start-run-submit")
			bob.waitVisible("#start-agent-error")
			if got := bob.text("#start-agent-error"); !strings.Contains(got, "admins") {
				t.Errorf("the agent field's error %q does not say the identity admits only admins", got)
			}
			if bob.exists("#start-run-form-error:not([hidden])") {
				t.Errorf("the error is also at the top of the form: %q", bob.text("#start-run-form-error"))
			}
			if bob.exists("#ticket-value") {
				t.Errorf("a ticket was shown")
			}
			bob.screenshot("runs-start-member-refused")
			// The default identity admits members.
			bob.selectOption("#start-agent", "default")
			bob.submit("#start-run-form", "#ticket-value")
			bob.checkNoSecurityMessages()
		}},
		{"RunnerRedeemsIt", func(t *testing.T, admin *tab) {
			run, values := r.redeem(t, ticket)
			if run.GetRunId() != runID {
				t.Fatalf("redeemed run %q, want %q", run.GetRunId(), runID)
			}
			if values[name] != value || len(values) != 1 {
				t.Fatalf("the run received %d values (%s: %d bytes), want only %s", len(values), name, len(values[name]), name)
			}
			admin.open("#/runs")
			admin.waitText(runRow(), "in flight")
			if got := admin.text(runRow()); !strings.Contains(got, tm.alice) || !strings.Contains(got, "web") {
				t.Errorf("runs row %q: want started by %s, trigger web", got, tm.alice)
			}
			before := len(e.gw.requests("GET", "/v1/teams/"+tm.id+"/runs"))
			admin.click("#runs-filter-in-flight")
			admin.waitFor("the in-flight list", `document.querySelector("#runs-filter-in-flight").getAttribute("aria-pressed") === "true"`)
			admin.waitVisible(runRow())
			// bob's run waits for a runner: not in flight.
			admin.waitFor("only runs in flight", `[...document.querySelectorAll("#runs tbody tr")].every(r => r.dataset.state === "resolved")`)
			gets := e.gw.requests("GET", "/v1/teams/"+tm.id+"/runs")[before:]
			if len(gets) == 0 || !strings.Contains(gets[len(gets)-1].Query, "inFlight=true") {
				t.Errorf("choosing In flight did not ask for runs with inFlight=true")
			}
			admin.screenshot("runs-in-flight")
		}},
		{"RotateTellsRunsInFlight", func(t *testing.T, admin *tab) {
			admin.open("#/secrets")
			row := fmt.Sprintf(`#secrets tr[data-secret=%q][data-scope="team"]`, name)
			admin.click(row + ` button[data-action="rotate"]`)
			admin.waitVisible("#rotate-form")
			admin.typeInto("#rotate-value", rotated)
			admin.submit("#rotate-form", row+` [data-version="2"]`)
			admin.waitText("#status", "1 run in flight holds the previous value")
			if !admin.exists(fmt.Sprintf(`#status a[href=%q]`, "#/runs/"+runID)) {
				t.Errorf("the message does not link the run: %q", admin.text("#status"))
			}
			admin.screenshot("secrets-rotated-in-flight")

			admin.open("#/runs")
			admin.waitVisible(runRow() + `[data-stale="true"] .stale`)
			admin.click(runRow() + " a")
			admin.waitVisible("#run-stale")
			injected := fmt.Sprintf(`#injected tr[data-secret=%q]`, name)
			admin.waitVisible(injected + `[data-value-state="rotated"]`)
			if got := admin.text(injected); !strings.Contains(got, "rotated since") {
				t.Errorf("injected row %q lacks rotated since", got)
			}
			admin.screenshot("run-detail-stale")
		}},
		{"EndShowsExitCode", func(t *testing.T, admin *tab) {
			r.end(t, "teams/"+tm.id+"/runs/"+runID, 3, 2500*time.Millisecond)
			admin.open("#/runs/" + runID)
			admin.waitText("#page dl.facts", "ended")
			if got := admin.text("#run-exit-code"); got != "3" {
				t.Errorf("exit code: got %q, want 3", got)
			}
			if got := admin.text("#page dl.facts"); !strings.Contains(got, "2.5s") {
				t.Errorf("facts %q lack the duration 2.5s", got)
			}
			if admin.exists("#run-stale") {
				t.Errorf("an ended run is flagged as holding stale values")
			}
			admin.screenshot("run-detail-ended")
			admin.open("#/runs")
			admin.waitText(runRow(), "exit 3")
			// The In flight filter is kept; the run is no longer listed there.
			admin.click("#runs-filter-in-flight")
			admin.waitFor("the run to leave the in-flight list", fmt.Sprintf(`document.querySelector(%s) === null && document.querySelector("#runs-empty, #runs") !== null`, js(runRow())))
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, admin.in(t)) }) {
			t.Fatalf("step %s failed; later steps depend on it", s.name)
		}
	}
	admin.checkNoSecurityMessages()
	if ex := admin.exceptions(); len(ex) > 0 {
		t.Errorf("uncaught exceptions in the app:\n%s", strings.Join(ex, "\n"))
	}
}

// TestIntegrationsPage creates an integration in the browser (its token
// shown once), allows and disallows it for oneself, and deletes it.
func TestIntegrationsPage(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	admin := newTab(t, e, e.gw.URL)
	admin.signIn(tm.aliceTok)
	admin.open("#/integrations")
	admin.waitVisible("#integrations-empty")
	row := `#integrations tr[data-integration="slack-app"]`

	t.Run("FieldError", func(t *testing.T) {
		admin := admin.in(t)
		admin.click("#add-integration")
		admin.waitVisible("#add-integration-form")
		admin.typeInto("#integration-id", "Not_An_Id")
		admin.click("#add-integration-submit")
		admin.waitVisible("#integration-id-error")
		admin.click("#pane-close")
	})
	var token string
	t.Run("CreateShowsTokenOnce", func(t *testing.T) {
		admin := admin.in(t)
		admin.click("#add-integration")
		admin.waitVisible("#add-integration-form")
		if admin.exists("#integration-agents:not([disabled])") {
			t.Errorf("identities can be named for a slack integration")
		}
		admin.typeInto("#integration-id", "slack-app")
		admin.typeInto("#integration-description", "our Slack app")
		admin.submit("#add-integration-form", "#integration-token")
		token = eval[string](admin, `document.querySelector("#integration-token").value`)
		if !strings.HasPrefix(token, "oz_") {
			t.Fatalf("token %q, want oz_…", token)
		}
		if !shownOrKept(admin, token) {
			t.Errorf("shownOrKept does not find the token the pane shows")
		}
		if got := admin.text("#pane"); !strings.Contains(got, "shown only this once") {
			t.Errorf("the pane does not say the token is shown only once: %q", got)
		}
		admin.waitVisible(row)
		got := admin.text(row)
		for _, want := range []string{"slack", "our Slack app", tm.alice, "not allowed"} {
			if !strings.Contains(got, want) {
				t.Errorf("row %q lacks %q", got, want)
			}
		}
		admin.screenshot("integrations-token")
		// The token is the integration's.
		var caller struct {
			Principal struct{ Kind, Name string }
		}
		e.rest(t, token, "GET", "/v1/caller", nil, &caller)
		if caller.Principal.Name != "teams/"+tm.id+"/integrations/slack-app" {
			t.Errorf("the token is %+v's, want the integration's", caller.Principal)
		}
		admin.open("#/integrations")
		admin.waitVisible(row)
		if shownOrKept(admin, token) {
			t.Errorf("the token is shown or kept after a reload")
		}
	})
	t.Run("ScheduleNamesIdentities", func(t *testing.T) {
		admin := admin.in(t)
		e.rest(t, tm.aliceTok, "POST", "/v1/teams/"+tm.id+"/agents", map[string]any{"agentId": "nightly-bot"}, nil)
		admin.click("#add-integration")
		admin.waitVisible("#add-integration-form")
		admin.typeInto("#integration-id", "nightly")
		admin.selectOption("#integration-trigger", "TRIGGER_SCHEDULE")
		admin.typeInto("#integration-agents", "nightly-bot")
		admin.submit("#add-integration-form", "#integration-token")
		admin.click("#pane-close")
		nightly := `#integrations tr[data-integration="nightly"]`
		admin.waitVisible(nightly)
		if got := admin.text(nightly); !strings.Contains(got, "schedule") || !strings.Contains(got, "nightly-bot") {
			t.Errorf("row %q: want trigger schedule and identity nightly-bot", got)
		}
		if admin.exists(nightly + ` button[data-action="allow"]`) {
			t.Errorf("a user-less integration offers Allow")
		}
	})
	allowed := func(who string) bool {
		t.Helper()
		var got struct{ Integration struct{ Allowed bool } }
		e.rest(t, who, "GET", "/v1/teams/"+tm.id+"/integrations/slack-app", nil, &got)
		return got.Integration.Allowed
	}
	t.Run("AllowAndDisallow", func(t *testing.T) {
		admin := admin.in(t)
		admin.click(row + ` button[data-action="allow"]`)
		admin.waitVisible(row + `[data-allowed="true"] button[data-action="disallow"]`)
		if !allowed(tm.aliceTok) {
			t.Errorf("allowed in the browser, but not for the API")
		}
		if allowed(tm.bobTok) {
			t.Errorf("alice's allowance counts for bob")
		}
		admin.screenshot("integrations-allowed")
		admin.click(row + ` button[data-action="disallow"]`)
		admin.waitVisible(row + `[data-allowed="false"] button[data-action="allow"]`)
		if allowed(tm.aliceTok) {
			t.Errorf("disallowed in the browser, but still allowed for the API")
		}
	})
	t.Run("MemberAllowsButDoesNotManage", func(t *testing.T) {
		bob := newTab(t, e, e.gw.URL)
		bob.signIn(tm.bobTok)
		bob.open("#/integrations")
		bob.waitVisible(row)
		if bob.exists("#add-integration") || bob.exists(row+` button[data-action="delete"]`) {
			t.Errorf("a member can create or delete integrations")
		}
		bob.click(row + ` button[data-action="allow"]`)
		bob.waitVisible(row + `[data-allowed="true"]`)
		if !allowed(tm.bobTok) {
			t.Errorf("bob allowed it in the browser, but not for the API")
		}
		bob.checkNoSecurityMessages()
	})
	t.Run("DeleteWithConfirmation", func(t *testing.T) {
		admin := admin.in(t)
		admin.click(row + ` button[data-action="delete"]`)
		admin.waitVisible("#confirm")
		if got := admin.text("#confirm"); !strings.Contains(got, "slack-app") {
			t.Errorf("the confirmation %q does not name the integration", got)
		}
		admin.click("#confirm-cancel")
		admin.waitGone("#confirm")
		if !admin.exists(row) {
			t.Fatalf("cancel deleted the integration")
		}
		admin.click(row + ` button[data-action="delete"]`)
		admin.click("#confirm-ok")
		admin.waitGone(row)
		admin.waitText("#status", "slack-app deleted")
	})
	admin.checkNoSecurityMessages()
	if ex := admin.exceptions(); len(ex) > 0 {
		t.Errorf("uncaught exceptions in the app:\n%s", strings.Join(ex, "\n"))
	}
}

// shownOrKept reports whether the page shows secret (in its markup or a
// field's value) or the tab keeps it in storage.
func shownOrKept(tb *tab, secret string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf(`(() => {
		const s = %s;
		const fields = [...document.querySelectorAll("input, textarea")].some(i => i.value.includes(s));
		const stored = [sessionStorage, localStorage].some(st => Object.keys(st).some(k => (st.getItem(k) || "").includes(s)));
		return document.documentElement.outerHTML.includes(s) || fields || stored;
	})()`, js(secret)))
}
