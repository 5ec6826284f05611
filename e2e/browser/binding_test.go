package browser_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ozsecrets/oz/lib/hostbind"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// bindingBody is the part of a create or update request body (and of a
// secret as the API returns it) that binds a secret to hosts.
type bindingBody struct {
	Binding *struct {
		Hosts      []string `json:"hosts"`
		AllowQuery bool     `json:"allowQuery"`
		AllowBody  bool     `json:"allowBody"`
	} `json:"binding"`
	UpdateMask string `json:"updateMask"`
	Etag       string `json:"etag"`
}

func parseBinding(t *testing.T, body []byte) bindingBody {
	t.Helper()
	var b bindingBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("request body: %v: %s", err, body)
	}
	return b
}

// boundValue is a value that can be bound to hosts: one line, long enough,
// unique per call.
func boundValue(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// TestSecretBinding binds a secret to hosts in the web app: in the Add
// pane, then in its Edit binding pane (adding and removing a host), sees
// the Bound to column follow, sees a bad pattern and a value that cannot
// be bound refused next to their field before anything is sent, sees the
// server's refusal where it belongs, and clears every host to unbind. The
// steps build on each other.
func TestSecretBinding(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	admin := newTab(t, e, e.gw.URL)
	teamSecrets := "/v1/teams/" + tm.id + "/secrets"
	const name = "OPENAI_KEY"
	secretPath := teamSecrets + "/" + name
	value := boundValue("sk-bound")
	row := fmt.Sprintf(`#secrets tr[data-secret=%q][data-scope="team"]`, name)
	// stored is the secret's binding as the API returns it (nil: not bound).
	stored := func(t *testing.T, secret string) []string {
		t.Helper()
		var got struct {
			Secret bindingBody `json:"secret"`
		}
		e.rest(t, tm.aliceTok, "GET", teamSecrets+"/"+secret, nil, &got)
		if got.Secret.Binding == nil {
			return nil
		}
		return got.Secret.Binding.Hosts
	}

	steps := []struct {
		name string
		run  func(t *testing.T, admin *tab)
	}{
		{"AddBound", func(t *testing.T, admin *tab) {
			admin.signIn(tm.aliceTok)
			admin.click("#add-secret")
			admin.waitVisible("#add-secret-form")
			if !eval[bool](admin, `document.querySelector("#secret-allow-query").disabled && document.querySelector("#secret-allow-body").disabled`) {
				t.Errorf("the query and body checkboxes are enabled with no hosts")
			}
			admin.typeInto("#secret-name", name)
			admin.typeInto("#secret-value", value)
			// Upper case and a duplicate: stored lower-cased, once.
			admin.typeInto("#secret-hosts", "api.openai.com\n*.Metabase.example.com, api.openai.com")
			if eval[bool](admin, `document.querySelector("#secret-allow-query").disabled`) {
				t.Fatalf("the query checkbox stays disabled with hosts typed")
			}
			admin.click("#secret-allow-query")
			admin.screenshot("secrets-add-bound")
			before := len(e.gw.requests("POST", teamSecrets))
			admin.submit("#add-secret-form", row)
			posts := e.gw.requests("POST", teamSecrets)[before:]
			if len(posts) != 1 {
				t.Fatalf("POST %s at the gateway: got %d, want 1", teamSecrets, len(posts))
			}
			checkNoPlaintext(t, posts[0].Body, value)
			parseSealed(t, posts[0].Body)
			b := parseBinding(t, posts[0].Body)
			want := []string{"api.openai.com", "*.metabase.example.com"}
			if b.Binding == nil || !slices.Equal(b.Binding.Hosts, want) || !b.Binding.AllowQuery || b.Binding.AllowBody {
				t.Errorf("binding sent: got %+v, want hosts %v, allowQuery only", b.Binding, want)
			}
			if got := stored(t, name); !slices.Equal(got, want) {
				t.Errorf("stored binding: got %v, want %v", got, want)
			}
		}},
		{"ColumnShowsHosts", func(t *testing.T, admin *tab) {
			got := admin.text(row + " td.bound")
			for _, want := range []string{"api.openai.com", "*.metabase.example.com", "query string"} {
				if !strings.Contains(got, want) {
					t.Errorf("Bound to %q lacks %q", got, want)
				}
			}
			if strings.Contains(admin.text("#page"), value) {
				t.Errorf("the page shows the value")
			}
			admin.screenshot("secrets-bound")
		}},
		{"BadPatternInAddPane", func(t *testing.T, admin *tab) {
			before := len(e.gw.requests("POST", teamSecrets))
			admin.click("#add-secret")
			admin.typeInto("#secret-name", "BAD_BIND")
			admin.typeInto("#secret-value", boundValue("sk-bad"))
			admin.typeInto("#secret-hosts", "api.example.com:443")
			// Leaving the field checks it at once, before any submit.
			admin.click("#secret-description")
			admin.waitVisible("#secret-hosts-error")
			if got := admin.text("#secret-hosts-error"); !strings.Contains(got, "port") {
				t.Errorf("the hosts field's error %q does not say a port is not allowed", got)
			}
			admin.click("#add-secret-submit")
			admin.waitVisible("#secret-hosts-error")
			if !eval[bool](admin, `document.querySelector("#secret-hosts").getAttribute("aria-invalid") === "true"`) {
				t.Errorf("the hosts field is not marked invalid")
			}
			admin.screenshot("secrets-bad-pattern")
			if n := len(e.gw.requests("POST", teamSecrets)) - before; n != 0 {
				t.Errorf("a bad pattern sent %d POSTs, want none", n)
			}
			admin.click("#pane-close")
			admin.waitGone("#add-secret-form")
			if admin.exists(`#secrets tr[data-secret="BAD_BIND"]`) {
				t.Errorf("the secret with a bad pattern was stored")
			}
		}},
		{"BoundValueRulesInAddPane", func(t *testing.T, admin *tab) {
			// A bound value travels in headers: one line, 8 bytes or more.
			before := len(e.gw.requests("POST", teamSecrets))
			admin.click("#add-secret")
			admin.typeInto("#secret-name", "SHORT_BOUND")
			admin.typeInto("#secret-value", "short1")
			admin.typeInto("#secret-hosts", "api.example.com")
			admin.click("#add-secret-submit")
			admin.waitVisible("#secret-value-error")
			if got := admin.text("#secret-value-error"); !strings.Contains(got, "8 bytes") {
				t.Errorf("the value field's error %q does not say a bound value is 8 bytes or more", got)
			}
			admin.typeInto("#secret-value", "first-line\nsecond-line")
			admin.click("#add-secret-submit")
			admin.waitText("#secret-value-error", "LF")
			if n := len(e.gw.requests("POST", teamSecrets)) - before; n != 0 {
				t.Errorf("a value that cannot be bound sent %d POSTs, want none", n)
			}
			admin.click("#pane-close")
			admin.waitGone("#add-secret-form")
		}},
		{"EditBinding", func(t *testing.T, admin *tab) {
			admin.click(row + ` button[data-action="bind"]`)
			admin.waitVisible("#binding-form")
			if got := eval[string](admin, `document.querySelector("#binding-hosts").value`); got != "api.openai.com\n*.metabase.example.com" {
				t.Errorf("the pane shows hosts %q, want the current ones, one per line", got)
			}
			if !eval[bool](admin, `document.querySelector("#binding-allow-query").checked && !document.querySelector("#binding-allow-body").checked`) {
				t.Errorf("the pane's checkboxes do not show the current binding (query only)")
			}
			// Remove *.metabase.example.com, add uploads.openai.com; body, not query.
			admin.typeInto("#binding-hosts", "api.openai.com\nuploads.openai.com")
			admin.click("#binding-allow-query")
			admin.click("#binding-allow-body")
			before := len(e.gw.requests("PATCH", secretPath))
			admin.submit("#binding-form", row+` td.bound[data-hosts="api.openai.com uploads.openai.com"]`)
			patches := e.gw.requests("PATCH", secretPath)[before:]
			if len(patches) != 1 {
				t.Fatalf("PATCH %s at the gateway: got %d, want 1", secretPath, len(patches))
			}
			b := parseBinding(t, patches[0].Body)
			if b.UpdateMask != "binding" || b.Etag == "" {
				t.Errorf("PATCH: updateMask %q etag %q, want \"binding\" and the secret's etag", b.UpdateMask, b.Etag)
			}
			want := []string{"api.openai.com", "uploads.openai.com"}
			if b.Binding == nil || !slices.Equal(b.Binding.Hosts, want) || b.Binding.AllowQuery || !b.Binding.AllowBody {
				t.Errorf("binding sent: got %+v, want hosts %v, allowBody only", b.Binding, want)
			}
			if got := stored(t, name); !slices.Equal(got, want) {
				t.Errorf("stored binding: got %v, want %v", got, want)
			}
			if got := admin.text(row + " td.bound"); strings.Contains(got, "metabase") || !strings.Contains(got, "request body") {
				t.Errorf("Bound to after the edit: %q", got)
			}
		}},
		{"BadPatternInEditPane", func(t *testing.T, admin *tab) {
			admin.click(row + ` button[data-action="bind"]`)
			admin.waitVisible("#binding-form")
			admin.typeInto("#binding-hosts", "api.openai.com\n*.*.example.com")
			before := len(e.gw.requests("PATCH", secretPath))
			admin.click("#binding-submit")
			admin.waitVisible("#binding-hosts-error")
			if got := admin.text("#binding-hosts-error"); !strings.Contains(got, "*.*.example.com") || !strings.Contains(got, "first label") {
				t.Errorf("the hosts field's error %q does not name the pattern and the rule", got)
			}
			if n := len(e.gw.requests("PATCH", secretPath)) - before; n != 0 {
				t.Errorf("a bad pattern sent %d PATCHes, want none", n)
			}
			admin.click("#pane-close")
			admin.waitGone("#binding-form")
			if got := stored(t, name); !slices.Equal(got, []string{"api.openai.com", "uploads.openai.com"}) {
				t.Errorf("stored binding after a refused edit: %v", got)
			}
		}},
		{"ServerRefusalNextToField", func(t *testing.T, admin *tab) {
			// A 5-byte value cannot be bound: the browser does not know the
			// stored value, so only the server can refuse.
			const short = "SHORT_KEY"
			e.restSecret(t, tm.aliceTok, tm.id, short, "abcde")
			admin.open("#/secrets")
			shortRow := fmt.Sprintf(`#secrets tr[data-secret=%q]`, short)
			admin.click(shortRow + ` button[data-action="bind"]`)
			admin.waitVisible("#binding-form")
			admin.typeInto("#binding-hosts", "api.example.com")
			admin.click("#binding-submit")
			admin.waitFor("the server's refusal", `document.querySelector("#binding-form .field-error:not([hidden]), #binding-form .form-error:not([hidden])") !== null || document.querySelector("#binding-form") === null`)
			if !admin.exists("#binding-form") {
				t.Fatalf("the server bound a 5-byte value to hosts (want a refusal: hostbind.MinValueLen)")
			}
			admin.screenshot("secrets-binding-server-error")
			// Where the refusal belongs: ask the API the same thing.
			status, body := e.restStatus(t, tm.aliceTok, "PATCH", teamSecrets+"/"+short,
				map[string]any{"binding": map[string]any{"hosts": []string{"api.example.com"}}, "updateMask": "binding"})
			if status != http.StatusBadRequest {
				t.Fatalf("PATCH over REST: %d %s, want 400", status, body)
			}
			var errBody struct {
				Details []struct {
					FieldViolations []struct{ Field, Description string } `json:"fieldViolations"`
				} `json:"details"`
			}
			_ = json.Unmarshal(body, &errBody)
			named := false
			for _, d := range errBody.Details {
				for _, v := range d.FieldViolations {
					if strings.HasPrefix(v.Field, "binding") {
						named = true
					}
				}
			}
			if named {
				if !admin.exists("#binding-hosts-error:not([hidden])") {
					t.Errorf("the server named the binding (%s), but its error is not next to the hosts field", body)
				}
			} else if !admin.exists("#binding-form .form-error:not([hidden]), #binding-form .field-error:not([hidden])") {
				t.Errorf("the server's refusal is not shown")
			}
			admin.click("#pane-close")
			if got := stored(t, short); got != nil {
				t.Errorf("the short value was bound to %v", got)
			}
		}},
		{"ClearUnbinds", func(t *testing.T, admin *tab) {
			admin.click(row + ` button[data-action="bind"]`)
			admin.waitVisible("#binding-form")
			if got := admin.text("#binding-form"); !strings.Contains(got, "Clear every host to unbind") {
				t.Errorf("the pane does not say that clearing every host unbinds: %q", got)
			}
			admin.clearField("#binding-hosts")
			if !eval[bool](admin, `document.querySelector("#binding-allow-query").disabled && document.querySelector("#binding-allow-body").disabled`) {
				t.Errorf("the checkboxes stay enabled with every host cleared")
			}
			before := len(e.gw.requests("PATCH", secretPath))
			admin.submit("#binding-form", "#pane[hidden]")
			admin.waitText(row+" td.bound", "—")
			patches := e.gw.requests("PATCH", secretPath)[before:]
			if len(patches) != 1 {
				t.Fatalf("PATCH %s at the gateway: got %d, want 1", secretPath, len(patches))
			}
			if b := parseBinding(t, patches[0].Body); b.UpdateMask != "binding" || (b.Binding != nil && len(b.Binding.Hosts) > 0) {
				t.Errorf("unbind PATCH: updateMask %q binding %+v, want \"binding\" and no hosts", b.UpdateMask, b.Binding)
			}
			if got := stored(t, name); got != nil {
				t.Errorf("stored binding after clearing every host: %v, want none", got)
			}
			admin.screenshot("secrets-unbound")
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
	for _, o := range e.gw.all() {
		if strings.Contains(string(o.Body), value) {
			t.Errorf("%s %s: the body holds the plaintext value", o.Method, o.Path)
		}
	}
}

// TestRunShowsBinding checks a run's page says which injected secrets were
// bound to hosts, and what the run's egress proxy did per host.
func TestRunShowsBinding(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	const name = "BOUND_KEY"
	e.rest(t, tm.aliceTok, "POST", "/v1/teams/"+tm.id+"/secrets", map[string]any{
		"secretId": name,
		"value":    []byte(boundValue("sk-run")),
		"binding":  map[string]any{"hosts": []string{"api.openai.com"}, "allowQuery": true},
	}, nil)
	ticket := e.startAsIntegration(t, tm, "bound-nightly", "TRIGGER_SCHEDULE",
		map[string]any{"context": map[string]any{"secrets": map[string]any{"names": []string{name}}}, "runId": "bound-run-1"})
	r := e.newRunner(t, tm, "bound-runner")
	run, _ := r.redeem(t, ticket)
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	_, err := r.runs.EndRun(ctx, &scopev1.EndRunRequest{
		Name: run.GetName(), Duration: durationpb.New(time.Second),
		Egress: []*scopev1.EgressCount{{Host: "api.openai.com", Substitutions: 3}, {Host: "evil.example.com", Denials: 1}},
	})
	if err != nil {
		t.Fatalf("end the run: %v", err)
	}

	admin := newTab(t, e, e.gw.URL)
	admin.signIn(tm.aliceTok)
	admin.open("#/runs/bound-run-1")
	injected := fmt.Sprintf(`#injected tr[data-secret=%q]`, name)
	admin.waitVisible(injected)
	if got := admin.text(injected + " td.notes"); !strings.Contains(got, "bound to api.openai.com") || !strings.Contains(got, "query string") {
		t.Errorf("injected row notes %q, want bound to api.openai.com (also in the query string)", got)
	}
	admin.waitVisible(`#egress tr[data-host="api.openai.com"]`)
	if got := admin.text(`#egress tr[data-host="api.openai.com"]`); !strings.Contains(got, "3") {
		t.Errorf("egress row for api.openai.com %q, want 3 substitutions", got)
	}
	if got := admin.text(`#egress tr[data-host="evil.example.com"]`); !strings.Contains(got, "1") {
		t.Errorf("egress row for evil.example.com %q, want 1 refused", got)
	}
	admin.screenshot("run-detail-bound")

	// Explain a run says, before any run, that the secret would go as a
	// placeholder.
	admin.open("#/runs")
	admin.click("#explain-run")
	admin.waitVisible("#explain-form")
	admin.do("choose the trigger", chromedp.SetValue(chromedp.CSS("#explain-trigger"), "schedule"))
	admin.submit("#explain-form", "#explanation #candidates")
	if got := admin.text(fmt.Sprintf(`#candidates tr[data-secret=%q]`, name)); !strings.Contains(got, "as a placeholder: bound to api.openai.com") {
		t.Errorf("explanation of %s: %q, want it injected as a placeholder, bound to api.openai.com", name, got)
	}
	admin.checkNoSecurityMessages()
}

// clearField empties a text field as a person would (select all, delete),
// so that the page hears the input.
func (tb *tab) clearField(sel string) {
	tb.t.Helper()
	tb.do("clear "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.focus(); el.select(); })()`, js(sel))),
		chromedp.SendKeys(chromedp.CSS(sel), kb.Backspace),
	)
}

// restStatus calls the system's gateway as token and returns the status
// and body, whatever the status.
func (e *env) restStatus(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	client, err := e.sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "https://"+e.sys.Addr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestHostPatternsAsLibHostbind types host patterns into the Add pane's
// hosts field and checks the page refuses exactly those that
// hostbind.ValidatePattern refuses: the page's copy of the rules says at
// once what the secret store would say later.
func TestHostPatternsAsLibHostbind(t *testing.T) {
	e := setup(t)
	tm := e.newTeam(t)
	tb := newTab(t, e, e.gw.URL)
	tb.signIn(tm.aliceTok)
	tb.click("#add-secret")
	tb.waitVisible("#add-secret-form")
	long := strings.Repeat("a", 63)
	patterns := []string{
		"api.openai.com", "*.metabase.example.com", "a.b", "API.Example.COM", "x_y.example.com", "a-b.c1",
		"01.example.com", "a.0x1", "a.b-", long + ".com", long + "a.com", strings.Repeat("a.", 126) + "com",
		strings.Repeat("a.", 127) + "com", "example", "*.com", "*", "*.", "*.example.com.", "example.com.",
		"api.example.com:443", "[::1]", "::1", "1.2.3.4", "*.1.2.3.4", "1.2.3.04", "127.1", "a.123", "*example.com",
		"a.*.example.com", "*.*.example.com", "**.example.com", "*a.example.com", "a..b.com", ".example.com",
		"ünï.example.com", "a.b/c", "a.b@c", "xn--nxa.example.com",
	}
	for _, p := range patterns {
		tb.typeInto("#secret-hosts", p)
		tb.click("#secret-description") // leaving the field checks it
		shown := eval[bool](tb, `!document.querySelector("#secret-hosts-error").hidden`)
		if want := hostbind.ValidatePattern(p); (want != nil) != shown {
			t.Errorf("pattern %q: the page shows an error: %v; hostbind.ValidatePattern: %v", p, shown, want)
		}
	}
	tb.click("#pane-close")
}
