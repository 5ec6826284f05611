package browser_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebApp walks the web app as a team admin and a member would, against
// the real system, through the recording gateway. The steps build on each
// other (the secret added first is rotated, attached, injected and deleted
// later), so a failed step ends the walk.
func TestWebApp(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	admin := newTab(t, e, e.gw.URL)
	teamSecrets := "/v1/teams/" + tm.id + "/secrets"
	value := testValue("sk-live")
	rotated := testValue("sk-rotated")
	const name = "API_KEY"
	row := fmt.Sprintf(`#secrets tr[data-secret=%q][data-scope="team"]`, name)

	steps := []struct {
		name string
		run  func(t *testing.T, admin *tab)
	}{
		{"SignIn", func(t *testing.T, admin *tab) {
			admin.signIn(tm.aliceTok)
			if got := admin.text("#caller-name"); got != tm.alice {
				t.Errorf("signed in as %q, want %s", got, tm.alice)
			}
			if got := admin.text("#caller-role"); got != "admin" {
				t.Errorf("role %q, want admin", got)
			}
			if !eval[bool](admin, `sessionStorage.getItem("oz.token") !== null && document.cookie === ""`) {
				t.Errorf("want the token in sessionStorage and no cookie")
			}
			admin.screenshot("sign-in-done")
		}},
		{"AddTeamSecret", func(t *testing.T, admin *tab) {
			admin.click("#add-secret")
			admin.waitVisible("#add-secret-form")
			if got := admin.text("#pane"); !strings.Contains(got, "The value is encrypted in your browser before it is sent to the server") {
				t.Errorf("the side pane does not say the value is encrypted in the browser: %q", got)
			}
			if !eval[bool](admin, `document.querySelector("#scope-team").checked`) {
				t.Errorf("scope: want Team chosen for an admin")
			}
			admin.typeInto("#secret-name", name)
			admin.typeInto("#secret-value", value)
			admin.typeInto("#secret-description", "deploy key")
			admin.screenshot("secrets-add-pane")
			before := len(e.gw.requests("POST", teamSecrets))
			admin.submit("#add-secret-form", row)

			posts := e.gw.requests("POST", teamSecrets)[before:]
			if len(posts) != 1 {
				t.Fatalf("POST %s at the gateway: got %d, want 1", teamSecrets, len(posts))
			}
			checkNoPlaintext(t, posts[0].Body, value)
			b := parseSealed(t, posts[0].Body)
			if b.SecretID != name || b.Description != "deploy key" {
				t.Errorf("body: secretId %q description %q, want %q, %q", b.SecretID, b.Description, name, "deploy key")
			}
			if got := posts[0].Header.Get("Authorization"); got != "Bearer "+tm.aliceTok {
				t.Errorf("Authorization header: want alice's bearer token")
			}
			if got := posts[0].Header.Get("Cookie"); got != "" {
				t.Errorf("Cookie: got %q, want none", got)
			}
		}},
		{"ListShowsIt", func(t *testing.T, admin *tab) {
			text := admin.text(row)
			for _, want := range []string{name, "team", "deploy key", "value v1"} {
				if !strings.Contains(text, want) {
					t.Errorf("row %q lacks %q", text, want)
				}
			}
			if strings.Contains(admin.text("#page"), "sk-live") {
				t.Errorf("the page shows the value")
			}
			admin.screenshot("secrets")
		}},
		{"Rotate", func(t *testing.T, admin *tab) {
			admin.click(row + ` button[data-action="rotate"]`)
			admin.waitVisible("#rotate-form")
			admin.typeInto("#rotate-value", rotated)
			before := len(e.gw.requests("PATCH", teamSecrets+"/"+name))
			admin.submit("#rotate-form", row+` [data-version="2"]`)
			patches := e.gw.requests("PATCH", teamSecrets+"/"+name)[before:]
			if len(patches) != 1 {
				t.Fatalf("PATCH at the gateway: got %d, want 1", len(patches))
			}
			checkNoPlaintext(t, patches[0].Body, rotated)
			parseSealed(t, patches[0].Body)
		}},
		{"EditDescription", func(t *testing.T, admin *tab) {
			admin.click(row + ` button[data-action="describe"]`)
			admin.waitVisible("#describe-form")
			admin.typeInto("#edit-description", "rotated monthly")
			admin.submit("#describe-form", "#pane[hidden]")
			admin.waitText(row+" td.description", "rotated monthly")
			admin.waitVisible(row + ` [data-version="2"]`) // the value is unchanged
		}},
		{"AddPersonalSecret", func(t *testing.T, admin *tab) {
			admin.click("#add-secret")
			admin.typeInto("#secret-name", "MY_TOKEN")
			admin.typeInto("#secret-value", testValue("mine"))
			admin.click("#scope-personal")
			admin.submit("#add-secret-form", `#secrets tr[data-secret="MY_TOKEN"][data-scope="personal"]`)
			if n := len(e.gw.requests("POST", "/v1/users/"+tm.alice+"/secrets")); n != 1 {
				t.Errorf("POST /v1/users/%s/secrets: got %d, want 1", tm.alice, n)
			}
		}},
		{"BadNameShowsFieldError", func(t *testing.T, admin *tab) {
			admin.click("#add-secret")
			admin.typeInto("#secret-name", "1ABC")
			admin.typeInto("#secret-value", "some-value")
			admin.click("#add-secret-submit")
			admin.waitVisible("#secret-name-error")
			msg := admin.text("#secret-name-error")
			if strings.TrimSpace(msg) == "" {
				t.Errorf("the Name field's error is empty")
			}
			if !eval[bool](admin, `document.querySelector("#secret-name").getAttribute("aria-invalid") === "true"`) {
				t.Errorf("the Name field is not marked invalid")
			}
			if admin.exists(`#add-secret-form-error:not([hidden])`) && strings.Contains(admin.text("#add-secret-form-error"), msg) {
				t.Errorf("the field's error is shown at the top of the form, want it next to the field")
			}
			admin.screenshot("secrets-field-error")
			admin.click("#pane-close")
			admin.waitGone("#add-secret-form")
			if admin.exists(`#secrets tr[data-secret="1ABC"]`) {
				t.Errorf("the bad name was stored")
			}
		}},
		{"AttachToEnvironment", func(t *testing.T, admin *tab) {
			admin.open("#/environments")
			admin.click("#add-environment")
			admin.typeInto("#environment-id", "web-env")
			admin.typeInto("#environment-description", "made in the browser")
			admin.typeInto("#environment-secrets", "MISSING_KEY")
			envRow := `#environments tr[data-environment="web-env"]`
			admin.submit("#add-environment-form", envRow)
			admin.click(envRow + ` button[data-action="attach"]`)
			admin.typeInto("#attach-names", name)
			admin.submit("#attach-form", envRow+fmt.Sprintf(` li[data-ref=%q]`, name))
			admin.screenshot("environments")
		}},
		{"RunDetailShowsUnresolved", func(t *testing.T, admin *tab) {
			// A schedule run is started by its integration, not the runner:
			// the integration's token starts it (the ticket fixes the
			// context), and a runner redeems the ticket.
			ticket := e.startAsIntegration(t, tm, "nightly", "TRIGGER_SCHEDULE",
				map[string]any{"context": map[string]any{"environment": "web-env"}, "runId": "web-run-1"})
			r := e.newRunner(t, tm, "web-runner")
			run, values := r.redeem(t, ticket)
			// The run gets the value typed (and sealed) in the browser.
			if values[name] != rotated {
				t.Fatalf("the run did not receive the value rotated in the browser (got %d bytes)", len(values[name]))
			}
			r.end(t, run.GetName(), 0, time.Second)
			admin.open("#/runs")
			runRow := `#runs tr[data-run="web-run-1"]`
			admin.waitVisible(runRow)
			got := admin.text(runRow)
			for _, want := range []string{"ended", "exit 0", "integration nightly", "schedule"} {
				if !strings.Contains(got, want) {
					t.Errorf("runs row %q lacks %q", got, want)
				}
			}
			admin.screenshot("runs")
			admin.click(runRow + " a")
			admin.waitVisible(`#unresolved tr[data-ref="MISSING_KEY"]`)
			if got := admin.text(`#unresolved tr[data-ref="MISSING_KEY"]`); !strings.Contains(got, "not found") {
				t.Errorf("unresolved MISSING_KEY: got %q, want the reason not found", got)
			}
			injected := admin.text(fmt.Sprintf(`#injected tr[data-secret=%q]`, name))
			for _, want := range []string{"team", "teams/" + tm.id, "v2"} {
				if !strings.Contains(injected, want) {
					t.Errorf("injected row %q lacks %q", injected, want)
				}
			}
			admin.screenshot("run-detail")
		}},
		{"UsageListsTheRun", func(t *testing.T, admin *tab) {
			// From the audit log, which the services fill asynchronously.
			admin.open("#/secrets")
			found := false
			for deadline := time.Now().Add(20 * time.Second); !found && time.Now().Before(deadline); {
				admin.click(row + ` button[data-action="usage"]`)
				admin.waitFor("usage", `document.querySelector("#usage-runs, #usage .empty, #usage .form-error") !== null`)
				if admin.exists(`#usage .form-error`) {
					t.Fatalf("usage: %s", admin.text("#usage .form-error"))
				}
				found = admin.exists(`#usage-runs tr[data-run="web-run-1"]`)
				if !found {
					time.Sleep(300 * time.Millisecond)
				}
			}
			if !found {
				t.Fatalf("the usage pane does not list web-run-1")
			}
			admin.screenshot("secrets-usage")
			admin.click("#pane-close")
		}},
		{"ExplainRun", func(t *testing.T, admin *tab) {
			admin.open("#/runs")
			admin.click("#explain-run")
			admin.waitVisible("#explain-form")
			admin.do("choose the trigger", chromedp.SetValue(chromedp.CSS("#explain-trigger"), "schedule"))
			admin.typeInto("#explain-environment", "web-env")
			admin.submit("#explain-form", "#explanation #candidates")
			got := admin.text(fmt.Sprintf(`#candidates tr[data-secret=%q]`, name))
			if !strings.Contains(got, "injected") {
				t.Errorf("explanation of %s: got %q, want injected", name, got)
			}
			if !admin.exists(`#explain-unresolved tr[data-ref="MISSING_KEY"]`) {
				t.Errorf("the explanation does not list MISSING_KEY as unresolved")
			}
			admin.screenshot("runs-explain")
		}},
		{"Agents", func(t *testing.T, admin *tab) {
			admin.open("#/agents")
			admin.waitVisible(`#agents tr[data-agent="default"]`)
			admin.click("#add-agent")
			admin.typeInto("#agent-id", "deployer")
			admin.typeInto("#agent-display-name", "Deployer")
			admin.typeInto("#agent-secrets", "PROD_DB_URL")
			admin.submit("#add-agent-form", `#agents tr[data-agent="deployer"] li[data-ref="PROD_DB_URL"]`)
			if admin.exists(`#agents tr[data-agent="default"] button[data-action="delete"]`) {
				t.Errorf("the default identity has a delete button")
			}
			admin.screenshot("agents")
		}},
		{"MemberSeesTeamSecretButCannotAddTeamScope", func(t *testing.T, admin *tab) {
			bob := newTab(t, e, e.gw.URL)
			bob.signIn(tm.bobTok)
			if got := bob.text("#caller-role"); got != "member" {
				t.Errorf("role %q, want member", got)
			}
			bob.waitVisible(row)
			if bob.exists(row + " button") {
				t.Errorf("a member has buttons on a team secret")
			}
			if bob.exists(`#secrets tr[data-secret="MY_TOKEN"]`) {
				t.Errorf("the member sees the admin's personal secret")
			}
			if bob.exists("#nav-audit") || bob.exists("#nav-review") {
				t.Errorf("a member sees Audit or Review")
			}
			bob.click("#add-secret")
			bob.waitVisible("#add-secret-form")
			if bob.exists("#scope-team") {
				t.Errorf("a member can choose team scope")
			}
			if !eval[bool](bob, `document.querySelector("#scope-personal").checked`) {
				t.Errorf("scope: want Personal chosen for a member")
			}
			bob.screenshot("secrets-member-add-pane")
			bob.checkNoSecurityMessages()
		}},
		{"DeleteWithConfirmation", func(t *testing.T, admin *tab) {
			admin.open("#/secrets")
			admin.click(row + ` button[data-action="delete"]`)
			admin.waitVisible("#confirm")
			if got := admin.text("#confirm"); !strings.Contains(got, name) {
				t.Errorf("the confirmation %q does not name the secret", got)
			}
			admin.screenshot("secrets-delete-confirm")
			admin.click("#confirm-cancel")
			admin.waitGone("#confirm")
			if !admin.exists(row) {
				t.Fatalf("cancel deleted the secret")
			}
			before := len(e.gw.requests("DELETE", teamSecrets+"/"+name))
			admin.click(row + ` button[data-action="delete"]`)
			admin.click("#confirm-ok")
			admin.waitGone(row)
			if n := len(e.gw.requests("DELETE", teamSecrets+"/"+name)) - before; n != 1 {
				t.Errorf("DELETE at the gateway: got %d, want 1", n)
			}
			// The environment keeps the reference, now dangling.
			admin.open("#/environments")
			admin.waitVisible(fmt.Sprintf(`#environments tr[data-environment="web-env"] li.ref.missing[data-ref=%q]`, name))
		}},
		{"AuditAndReview", func(t *testing.T, admin *tab) {
			// Audit and Review come from the audit service; either the page
			// or the API's error shows, never a blank page.
			found := false
			for deadline := time.Now().Add(20 * time.Second); !found && time.Now().Before(deadline); {
				admin.open("#/audit")
				admin.waitFor("audit page", `document.querySelector("#events, #events-empty, #audit-filters-error:not([hidden])") !== null`)
				if admin.exists("#audit-filters-error:not([hidden])") {
					t.Fatalf("audit: %s", admin.text("#audit-filters-error"))
				}
				found = eval[bool](admin, `[...document.querySelectorAll("#events tr")].some(r => r.textContent.includes("run.resolve") && r.textContent.includes("web-run-1"))`)
				if !found {
					time.Sleep(300 * time.Millisecond)
				}
			}
			if !found {
				t.Errorf("the audit page does not list the resolution of web-run-1")
			}
			admin.click("#verify-chain")
			admin.waitFor("the verification", `!!document.querySelector("#verify-result .badge, #verify-result .field-error")`)
			if got := admin.text("#verify-result"); !strings.Contains(got, "intact") {
				t.Errorf("verify the chain: got %q, want intact", got)
			}
			admin.screenshot("audit")
			admin.open("#/review")
			admin.waitFor("review page", `document.querySelector("#page table, #page .empty, #page .form-error:not([hidden])") !== null`)
			admin.screenshot("review")
			// The secret deleted above is still named by web-env: a dangling row.
			row := fmt.Sprintf(`#page tr[data-secret=%q]`, name)
			if !admin.exists(row) || !strings.Contains(strings.ToLower(admin.text(row)), "dangling") {
				t.Errorf("review: no dangling row for %s: %q", name, admin.text("#page"))
			}
		}},
		{"SignOut", func(t *testing.T, admin *tab) {
			admin.click("#sign-out")
			admin.waitVisible("#token")
			if !eval[bool](admin, `sessionStorage.length === 0`) {
				t.Errorf("sign out left the token in sessionStorage")
			}
			admin.screenshot("sign-in")
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
	// Nothing the gateway received holds a value typed in the browser.
	for _, o := range e.gw.all() {
		for _, v := range []string{value, rotated} {
			if strings.Contains(string(o.Body), v) {
				t.Errorf("%s %s: the body holds a plaintext value", o.Method, o.Path)
			}
		}
	}
}

// TestCSPBlocksInlineScript checks the policy is in force on the app's page:
// a script element with inline code, added to the page, does not run, and
// the browser reports the violation.
func TestCSPBlocksInlineScript(t *testing.T) {
	e := setup(t)
	tb := newTab(t, e, e.gw.URL)
	tb.open("")
	tb.waitVisible("#token")
	eval[bool](tb, `(() => { const s = document.createElement("script"); s.textContent = "window.ozInlineRan = true"; document.body.appendChild(s); return true; })()`)
	if eval[bool](tb, `window.ozInlineRan === true`) {
		t.Errorf("an inline script ran: the CSP is not in force")
	}
	for deadline := time.Now().Add(5 * time.Second); len(tb.securityMessages()) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if len(tb.securityMessages()) == 0 {
		t.Errorf("no CSP violation was reported for the inline script")
	}
}
