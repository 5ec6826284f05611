package run_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// boundRecord is record with host-bound secrets (one of them another
// user's, whose binding the server sent by mistake) and the egress counts
// its runner reported at its end.
func boundRecord(name string) *scopev1.Run {
	r := record(name)
	r.Injected[0].Binding = &secretsv1.HostBinding{Hosts: []string{"api.openai.com", "*.example.com"}}
	r.Injected[1].Binding = &secretsv1.HostBinding{Hosts: []string{"api.github.com"}, AllowQuery: true, AllowBody: true}
	r.Injected[2].Binding = &secretsv1.HostBinding{Hosts: []string{"leaked-host.example.org"}}
	r.End.Egress = []*scopev1.EgressCount{
		{Host: "api.openai.com", Substitutions: 12},
		{Host: "evil.example.net", Denials: 2},
		{Host: "10.0.0.7", Substitutions: 0, Denials: 1},
	}
	return r
}

func startBound(t *testing.T) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("bob", "acme")},
		Runs: &ozfake.Runs{
			GetRunFunc: func(_ context.Context, r *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
				return &scopev1.GetRunResponse{Run: boundRecord(r.GetName())}, nil
			},
		},
	})
}

// TestShowHostBound: oz run show marks each host-bound secret with its
// hosts, and lists the egress counts of the run's end; nothing of another
// user's secret is printed.
func TestShowHostBound(t *testing.T) {
	srv := startBound(t)
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "run", "show", "run-7")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	_, tail, ok := strings.Cut(r.Stdout, "\nInjected:\n")
	if !ok {
		t.Fatalf("no Injected section in\n%s", r.Stdout)
	}
	want := strings.Join([]string{
		"NAME                               SCOPE     VERSION  NOTE",
		"DEPLOY_TOKEN                       team      3        bound to api.openai.com, *.example.com",
		"GITHUB_TOKEN                       personal  2        overrides team secret; bound to api.github.com +query +body",
		"(personal secret of another user)  personal  5        -",
		"",
		"Egress:",
		"HOST              SUBSTITUTIONS  DENIALS",
		"api.openai.com    12             0",
		"evil.example.net  0              2",
		"10.0.0.7          0              1",
		"",
		"Unresolved references:",
	}, "\n") + "\n"
	if !strings.HasPrefix(tail, want) {
		t.Errorf("got\n%s\nwant it to start with\n%s", tail, want)
	}
	for _, leak := range []string{"LEAKED_NAME", "leaked-host"} {
		if strings.Contains(r.Stdout, leak) {
			t.Errorf("printed %s, of another user's secret", leak)
		}
	}
}

// TestShowHostBoundJSON: --output json carries each injected secret's
// binding (null when unbound or redacted) and the end's egress counts.
func TestShowHostBoundJSON(t *testing.T) {
	srv := startBound(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "show", "run-7", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	var got struct {
		Injected []struct {
			Name    string `json:"name"`
			Binding *struct {
				Hosts      []string `json:"hosts"`
				AllowQuery bool     `json:"allow_query"`
				AllowBody  bool     `json:"allow_body"`
			} `json:"binding"`
		} `json:"injected"`
		End struct {
			Egress []map[string]any `json:"egress"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if b := got.Injected[0].Binding; b == nil || strings.Join(b.Hosts, ",") != "api.openai.com,*.example.com" || b.AllowQuery || b.AllowBody {
		t.Errorf("DEPLOY_TOKEN binding %+v, want api.openai.com,*.example.com headers only", b)
	}
	if b := got.Injected[1].Binding; b == nil || !b.AllowQuery || !b.AllowBody {
		t.Errorf("GITHUB_TOKEN binding %+v, want query and body", b)
	}
	if b := got.Injected[2].Binding; b != nil || strings.Contains(r.Stdout, "leaked-host") {
		t.Errorf("the redacted entry's binding was printed: %+v", b)
	}
	if e := got.End.Egress; len(e) != 3 || e[1]["host"] != "evil.example.net" || e[1]["denials"] != 2.0 || e[0]["substitutions"] != 12.0 {
		t.Errorf("end.egress %v, want the three hosts with their counts", e)
	}
}

// TestExplainHostBound: oz run explain says that a host-bound candidate
// would be injected as a placeholder, and to which hosts, in the table and
// in --output json.
func TestExplainHostBound(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("bob", "acme")},
		Runs: &ozfake.Runs{
			ExplainRunFunc: func(_ context.Context, r *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error) {
				return &scopev1.ExplainRunResponse{Explanation: &scopev1.Explanation{
					Context: r.GetContext(),
					Candidates: []*scopev1.CandidateDecision{{
						SecretName: "OPENAI_API_KEY", Scope: scopev1.SecretScope_SECRET_SCOPE_TEAM, Owner: "teams/acme",
						ValueVersion: 2, Decision: scopev1.Decision_DECISION_INJECTED,
						Binding: &secretsv1.HostBinding{Hosts: []string{"api.openai.com"}, AllowBody: true},
					}},
				}}, nil
			},
		},
	})
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "cli")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "OPENAI_API_KEY  team   injected  version 2, as a placeholder: bound to api.openai.com +body") {
		t.Errorf("the table does not say the candidate is injected as a placeholder:\n%s", r.Stdout)
	}
	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "cli", "--output", "json")
	var got struct {
		Candidates []struct {
			Binding *struct {
				Hosts     []string `json:"hosts"`
				AllowBody bool     `json:"allow_body"`
			} `json:"binding"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil || len(got.Candidates) != 1 || got.Candidates[0].Binding == nil ||
		got.Candidates[0].Binding.Hosts[0] != "api.openai.com" || !got.Candidates[0].Binding.AllowBody {
		t.Errorf("--output json: %v\n%s", err, r.Stdout)
	}
}
