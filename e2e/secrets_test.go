package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// canary values are planted as secret values; they must never come back.
const (
	canaryTeam     = "canary-team-value-7f3a9c"
	canaryPersonal = "canary-personal-value-51d2e8"
	canaryRotated  = "canary-rotated-value-c0ffee"
	canaryREST     = "canary-rest-value-8b1e44"
	canaryBindCLI  = "canary-bound-value-a91c07"
)

var canaries = []string{canaryTeam, canaryPersonal, canaryRotated, canaryREST, canaryBindCLI}

// listed is the JSON the CLI prints for `oz secret list --output json`.
type listed struct {
	Name         string `json:"name"`
	Scope        string `json:"scope"`
	Description  string `json:"description"`
	ValueVersion int64  `json:"value_version"`
	UpdatedAt    string `json:"updated_at"`
	Binding      *struct {
		Hosts      []string `json:"hosts"`
		AllowQuery bool     `json:"allow_query"`
		AllowBody  bool     `json:"allow_body"`
	} `json:"binding"`
}

func listSecrets(t *testing.T, tm team, token string) map[string]listed {
	t.Helper()
	res := ozOK(t, tm.sys, token, "", "secret", "list", "--output", "json")
	var items []listed
	if err := json.Unmarshal([]byte(res.Stdout), &items); err != nil {
		t.Fatalf("list --output json: %v\n%s", err, res.Stdout)
	}
	out := map[string]listed{}
	for _, it := range items {
		out[it.Scope+"/"+it.Name] = it
	}
	return out
}

// TestCLIWalkthrough is the README's walk-through, by CLI.
func TestCLIWalkthrough(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)

	// A team secret from standard input (one trailing newline removed).
	ozOK(t, sys, tm.alice, canaryTeam+"\n", "secret", "create", "--team", "--description", "deploys", "API_KEY")
	// A personal secret from a file (exact bytes, multi-line).
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, []byte(canaryPersonal+"\nline two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ozOK(t, sys, tm.alice, "", "secret", "create", "--personal", "--value-file", file, "MY_KEY")

	got := listSecrets(t, tm, tm.alice)
	if s, ok := got["team/API_KEY"]; !ok || s.Description != "deploys" || s.ValueVersion != 1 {
		t.Errorf("alice's list: team/API_KEY = %+v (present %v), want description deploys, version 1", s, ok)
	}
	if _, ok := got["personal/MY_KEY"]; !ok {
		t.Errorf("alice's list: personal/MY_KEY missing; got %v", got)
	}
	// bob (member) sees the team secret but not alice's personal one.
	got = listSecrets(t, tm, tm.bob)
	if _, ok := got["team/API_KEY"]; !ok {
		t.Errorf("bob's list: team/API_KEY missing; got %v", got)
	}
	if _, ok := got["personal/MY_KEY"]; ok {
		t.Errorf("bob's list shows alice's personal secret")
	}
	// carol (another team) sees neither.
	if got = listSecrets(t, tm, tm.carol); len(got) != 0 {
		t.Errorf("carol's list: got %v, want nothing", got)
	}

	// The table for people.
	table := ozOK(t, sys, tm.alice, "", "secret", "list")
	if !strings.Contains(table.Stdout, "NAME") || !strings.Contains(table.Stdout, "SCOPE") || !strings.Contains(table.Stdout, "LAST UPDATED") {
		t.Errorf("list table header: got %q, want NAME SCOPE LAST UPDATED", table.Stdout)
	}

	// A member cannot create a team secret: permission exit code.
	if res := oz(t, sys, tm.bob, "x-value\n", "secret", "create", "--team", "BOB_KEY"); res.Code != 4 {
		t.Errorf("bob create team secret: exit %d, want 4 (permission); stderr %s", res.Code, res.Stderr)
	}

	// Rotate the value: the version goes up.
	ozOK(t, sys, tm.alice, canaryRotated+"\n", "secret", "update", "--team", "--value", "API_KEY")
	if v := listSecrets(t, tm, tm.alice)["team/API_KEY"].ValueVersion; v != 2 {
		t.Errorf("value_version after rotation: got %d, want 2", v)
	}
	// Description only: the version stays.
	ozOK(t, sys, tm.alice, "", "secret", "update", "--team", "-d", "new description", "API_KEY")
	if s := listSecrets(t, tm, tm.alice)["team/API_KEY"]; s.ValueVersion != 2 || s.Description != "new description" {
		t.Errorf("after description update: got %+v, want version 2 and the new description", s)
	}
	// Nothing to update is an error.
	if res := oz(t, sys, tm.alice, "", "secret", "update", "--team", "API_KEY"); res.Code == 0 {
		t.Errorf("update with nothing to change: exit 0, want an error")
	}

	// Delete without a terminal and without --force refuses, and deletes nothing.
	if res := oz(t, sys, tm.alice, "", "secret", "delete", "--team", "API_KEY"); res.Code != 2 {
		t.Errorf("delete without --force and no terminal: exit %d, want 2; stderr %s", res.Code, res.Stderr)
	}
	if _, ok := listSecrets(t, tm, tm.alice)["team/API_KEY"]; !ok {
		t.Fatalf("refused delete removed the secret")
	}
	ozOK(t, sys, tm.alice, "", "secret", "delete", "--team", "--force", "API_KEY")
	if _, ok := listSecrets(t, tm, tm.alice)["team/API_KEY"]; ok {
		t.Errorf("team/API_KEY still listed after delete")
	}
	// Not found has its own exit code.
	if res := oz(t, sys, tm.alice, "", "secret", "delete", "--team", "--force", "API_KEY"); res.Code != 3 {
		t.Errorf("delete missing secret: exit %d, want 3; stderr %s", res.Code, res.Stderr)
	}

	// whoami names the caller.
	if res := ozOK(t, sys, tm.alice, "", "whoami"); !strings.Contains(res.Stdout, "alice") {
		t.Errorf("whoami: got %q, want it to name alice", res.Stdout)
	}
	assertNoCanary(t, sys)
}

// TestCLIHostBinding binds a secret to hosts with the CLI, through the
// gateway to the secretstore: create with --bind-host, update with
// --unbind-host and --bind-query, the binding in the list's table and
// JSON, the changes in the team's audit log (hosts, never the value), and
// --no-bind.
func TestCLIHostBinding(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)

	ozOK(t, sys, tm.alice, canaryBindCLI+"\n", "secret", "create", "--team",
		"--bind-host", "api.example.com", "--bind-host", "*.Metabase.example.com", "API_KEY")
	s := listSecrets(t, tm, tm.alice)["team/API_KEY"]
	if s.Binding == nil || strings.Join(s.Binding.Hosts, ",") != "api.example.com,*.metabase.example.com" || s.Binding.AllowQuery {
		t.Fatalf("after create: got binding %+v, want api.example.com,*.metabase.example.com (normalised), headers only", s.Binding)
	}

	res := ozOK(t, sys, tm.alice, "", "secret", "update", "--team", "--unbind-host", "api.example.com", "--bind-query", "API_KEY")
	if strings.Contains(res.Stderr, "no longer bound") {
		t.Errorf("update: stderr %q says unbound, want still bound", res.Stderr)
	}
	s = listSecrets(t, tm, tm.alice)["team/API_KEY"]
	if s.Binding == nil || strings.Join(s.Binding.Hosts, ",") != "*.metabase.example.com" || !s.Binding.AllowQuery {
		t.Errorf("after update: got binding %+v, want *.metabase.example.com with allow_query", s.Binding)
	}
	if s.ValueVersion != 1 {
		t.Errorf("after a binding update: got value version %d, want 1 (the value did not change)", s.ValueVersion)
	}

	// A member sees the binding too; a secret not bound has none.
	ozOK(t, sys, tm.alice, canaryTeam+"\n", "secret", "create", "--team", "PLAIN")
	got := listSecrets(t, tm, tm.bob)
	if got["team/API_KEY"].Binding == nil || got["team/PLAIN"].Binding != nil {
		t.Errorf("bob's list: got API_KEY binding %+v, PLAIN binding %+v; want API_KEY's only", got["team/API_KEY"].Binding, got["team/PLAIN"].Binding)
	}
	table := ozOK(t, sys, tm.alice, "", "secret", "list").Stdout
	lines := strings.Split(table, "\n")
	if !strings.HasSuffix(lines[0], "BOUND TO") || !strings.Contains(table, "*.metabase.example.com +query") {
		t.Errorf("list table: got\n%s\nwant a BOUND TO column with *.metabase.example.com +query", table)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "PLAIN ") && !strings.HasSuffix(l, "  -") {
			t.Errorf("list table: PLAIN's row %q, want - under BOUND TO", l)
		}
	}

	// Refused on the server too: a value too short to be bound.
	if r := oz(t, sys, tm.alice, "short\n", "secret", "create", "--team", "--bind-host", "api.example.com", "SHORT"); r.Code != 2 {
		t.Errorf("create a bound secret with a 5-byte value: exit %d, want 2; stderr %s", r.Code, r.Stderr)
	}

	// The audit log records each binding: its hosts and flags, no value.
	type event struct {
		Action  string            `json:"action"`
		Details map[string]string `json:"details"`
	}
	var events []event
	eventually(t, 30*time.Second, "the secret events of API_KEY in acme's audit log", func() bool {
		res := ozOK(t, sys, tm.alice, "", "audit", "list", "--team", "acme", "--resource", "teams/acme/secrets/API_KEY", "--output", "json")
		events = nil
		if err := json.Unmarshal([]byte(res.Stdout), &events); err != nil {
			t.Fatalf("audit list --output json: %v\n%s", err, res.Stdout)
		}
		return len(events) >= 2
	})
	var created, updated *event
	for i := range events {
		switch events[i].Action {
		case "secret.create":
			created = &events[i]
		case "secret.update":
			updated = &events[i]
		}
	}
	if created == nil || created.Details["bound_hosts"] != "api.example.com,*.metabase.example.com" {
		t.Errorf("secret.create event: got %+v, want bound_hosts api.example.com,*.metabase.example.com", created)
	}
	if updated == nil || updated.Details["binding_changed"] != "true" || updated.Details["bound_hosts"] != "*.metabase.example.com" ||
		updated.Details["allow_query"] != "true" || updated.Details["value_changed"] == "true" {
		t.Errorf("secret.update event: got %+v, want binding_changed, bound_hosts *.metabase.example.com, allow_query, no value change", updated)
	}

	// --no-bind: runs get the value again, and the user is told.
	res = ozOK(t, sys, tm.alice, "", "secret", "update", "--team", "--no-bind", "API_KEY")
	if !strings.Contains(res.Stderr, "API_KEY is no longer bound to hosts: runs get its value") {
		t.Errorf("--no-bind: stderr %q, want it to say API_KEY is no longer bound", res.Stderr)
	}
	if b := listSecrets(t, tm, tm.alice)["team/API_KEY"].Binding; b != nil {
		t.Errorf("after --no-bind: got binding %+v, want none", b)
	}
	assertNoCanary(t, sys)
}

// rest sends one JSON request to the gateway as token.
func rest(t *testing.T, tm team, token, method, path string, body any) (int, map[string]any, string) {
	t.Helper()
	client, err := tm.sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+tm.sys.Addr+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// TestRESTWalkthrough is the README's curl walk-through.
func TestRESTWalkthrough(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	val := base64.StdEncoding.EncodeToString([]byte(canaryREST))

	code, body, raw := rest(t, tm, tm.alice, "POST", "/v1/teams/acme/secrets", map[string]any{
		"secretId": "DB_PASSWORD", "value": val, "description": "primary db",
	})
	if code != 200 {
		t.Fatalf("POST secret: %d %s", code, raw)
	}
	secret, _ := body["secret"].(map[string]any)
	if secret["name"] != "teams/acme/secrets/DB_PASSWORD" {
		t.Errorf("created name: got %v, want teams/acme/secrets/DB_PASSWORD", secret["name"])
	}
	etag, _ := secret["etag"].(string)

	code, _, raw = rest(t, tm, tm.alice, "POST", "/v1/users/me/secrets", map[string]any{"secretId": "MY_TOKEN", "value": val})
	if code != 200 {
		t.Fatalf("POST personal secret: %d %s", code, raw)
	}

	for _, path := range []string{"/v1/teams/acme/secrets", "/v1/teams/acme/secrets/DB_PASSWORD", "/v1/secrets", "/v1/users/me/secrets", "/v1/users/alice/secrets/MY_TOKEN"} {
		code, _, raw = rest(t, tm, tm.alice, "GET", path, nil)
		if code != 200 {
			t.Errorf("GET %s: %d %s", path, code, raw)
		}
		if strings.Contains(raw, canaryREST) || strings.Contains(raw, val) {
			t.Errorf("GET %s returned the value", path)
		}
	}
	// bob (member) reads team metadata, not alice's personal secret.
	if code, _, _ = rest(t, tm, tm.bob, "GET", "/v1/teams/acme/secrets/DB_PASSWORD", nil); code != 200 {
		t.Errorf("member GET team secret: %d, want 200", code)
	}
	if code, _, _ = rest(t, tm, tm.bob, "GET", "/v1/users/alice/secrets/MY_TOKEN", nil); code != 403 {
		t.Errorf("bob GET alice's personal secret: %d, want 403", code)
	}
	// carol (another team) is refused before existence is revealed.
	for _, path := range []string{"/v1/teams/acme/secrets/DB_PASSWORD", "/v1/teams/acme/secrets/NOPE"} {
		if code, _, _ = rest(t, tm, tm.carol, "GET", path, nil); code != 403 {
			t.Errorf("carol GET %s: %d, want 403", path, code)
		}
	}

	// Conditional update with a stale etag is refused; with the right one it works.
	code, _, raw = rest(t, tm, tm.alice, "PATCH", "/v1/teams/acme/secrets/DB_PASSWORD", map[string]any{
		"description": "x", "etag": "stale-etag", "updateMask": "description"})
	if code != 400 && code != 409 && code != 412 {
		t.Errorf("PATCH with stale etag: %d %s, want a precondition failure", code, raw)
	}
	code, body, raw = rest(t, tm, tm.alice, "PATCH", "/v1/teams/acme/secrets/DB_PASSWORD", map[string]any{
		"description": "rotated", "value": base64.StdEncoding.EncodeToString([]byte(canaryRotated)), "etag": etag})
	if code != 200 {
		t.Fatalf("PATCH: %d %s", code, raw)
	}
	secret, _ = body["secret"].(map[string]any)
	if secret["valueVersion"] != "2" || secret["description"] != "rotated" {
		t.Errorf("after PATCH: got version %v description %v, want 2 and rotated", secret["valueVersion"], secret["description"])
	}

	// Bad input names the field and the rule.
	code, body, raw = rest(t, tm, tm.alice, "POST", "/v1/teams/acme/secrets", map[string]any{"secretId": "1ABC", "value": val})
	if code != 400 || !strings.Contains(raw, "secret_id") {
		t.Errorf("POST bad name: %d %s, want 400 naming secret_id", code, raw)
	}

	if code, _, raw = rest(t, tm, tm.alice, "DELETE", "/v1/teams/acme/secrets/DB_PASSWORD", nil); code != 200 {
		t.Errorf("DELETE: %d %s", code, raw)
	}
	if code, _, _ = rest(t, tm, tm.alice, "GET", "/v1/teams/acme/secrets/DB_PASSWORD", nil); code != 404 {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	if code, _, _ = rest(t, tm, "", "GET", "/v1/secrets", nil); code != 401 {
		t.Errorf("GET without a token: %d, want 401", code)
	}
	if code, _, raw = rest(t, tm, "", "GET", "/openapi.json", nil); code != 200 || !strings.Contains(raw, "/v1/") {
		t.Errorf("GET /openapi.json: %d", code)
	}
	assertNoCanary(t, sys)
}

// assertNoCanary searches every file the system wrote (logs, bbolt files,
// keys, dev.env) and ozdev's own output for every canary and its base64.
func assertNoCanary(t *testing.T, sys *harness.System) {
	t.Helper()
	scanDataDir(t, sys, canaries)
}

// scanDataDir searches every file the system wrote and ozdev's output for
// each value in planted and its base64.
func scanDataDir(t *testing.T, sys *harness.System, planted []string) {
	t.Helper()
	var needles [][]byte
	for _, c := range planted {
		needles = append(needles, []byte(c), []byte(base64.StdEncoding.EncodeToString([]byte(c))))
	}
	for _, n := range needles {
		if bytes.Contains([]byte(sys.Output()), n) {
			t.Errorf("ozdev output contains a planted value")
		}
	}
	files := 0
	err := filepath.Walk(sys.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains a planted value", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("scan data dir: %v", err)
	}
	if files < 5 {
		t.Errorf("scanned %d files in %s, want the logs, databases and keys", files, sys.DataDir)
	}
}
