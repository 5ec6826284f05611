package run_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

const (
	team   = scopev1.SecretScope_SECRET_SCOPE_TEAM
	person = scopev1.SecretScope_SECRET_SCOPE_PERSONAL
)

// explanation is the canned answer of ExplainRun: the seed's example,
// with another user's personal secret the server did not name.
func explanation(rc *scopev1.RunContext) *scopev1.Explanation {
	return &scopev1.Explanation{
		Context:         rc,
		Agent:           "deployer",
		AllowlistSource: scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT,
		Allowlist:       []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "MISSING_KEY"},
		Candidates: []*scopev1.CandidateDecision{
			{SecretName: "DEPLOY_TOKEN", Scope: team, Owner: "teams/acme", ValueVersion: 3, Decision: scopev1.Decision_DECISION_INJECTED},
			{SecretName: "PAGERDUTY_API_KEY", Scope: person, Owner: "users/alice", ValueVersion: 1, Decision: scopev1.Decision_DECISION_INJECTED, Detail: "overrides the team secret"},
			{SecretName: "PAGERDUTY_API_KEY", Scope: team, Owner: "teams/acme", ValueVersion: 2, Decision: scopev1.Decision_DECISION_EXCLUDED_OVERRIDDEN},
			{SecretName: "OTHER_KEY", Scope: team, Owner: "teams/acme", ValueVersion: 1, Decision: scopev1.Decision_DECISION_EXCLUDED_NOT_IN_ALLOWLIST},
			{SecretName: "RESTRICTED_KEY", Scope: team, Owner: "teams/acme", ValueVersion: 1, Decision: scopev1.Decision_DECISION_EXCLUDED_RESTRICTED, Detail: "restricted to agent identities: ops-bot"},
			{Scope: person, Decision: scopev1.Decision_DECISION_EXCLUDED_NOT_IN_ALLOWLIST},
		},
		Unresolved: []*scopev1.UnresolvedReference{
			{SecretName: "MISSING_KEY", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND, Detail: "no secret named MISSING_KEY is available to this run"},
		},
		Notes:           []string{"the environment ops-tools is the allowlist"},
		WouldFailStrict: true,
	}
}

var (
	created  = timestamppb.New(time.Date(2026, 5, 20, 9, 15, 0, 0, time.UTC))
	expires  = timestamppb.New(time.Date(2026, 5, 20, 9, 25, 0, 0, time.UTC))
	resolved = timestamppb.New(time.Date(2026, 5, 20, 9, 16, 0, 0, time.UTC))
	ended    = timestamppb.New(time.Date(2026, 5, 20, 9, 18, 0, 0, time.UTC))
)

// record is the canned run record, ended: one injected secret of each
// scope, one redacted (with a name the CLI must not print), one
// unresolved.
func record(name string) *scopev1.Run {
	_, id, _ := strings.Cut(name, "/runs/")
	return &scopev1.Run{
		Name:  name,
		RunId: id,
		Context: &scopev1.RunContext{
			Trigger: scopev1.Trigger_TRIGGER_SLACK, User: "users/alice", Environment: "ops-tools",
			Secrets: &scopev1.SecretNameList{Names: []string{"DEPLOY_TOKEN", "GITHUB_TOKEN", "MISSING_KEY"}},
		},
		Agent:            "deployer",
		ResolvedBy:       "runners/runner-a",
		CreateTime:       created,
		State:            scopev1.RunState_RUN_STATE_ENDED,
		StartedBy:        "teams/acme/integrations/slack-bot",
		TicketExpireTime: expires,
		ResolveTime:      resolved,
		EndTime:          ended,
		End:              &scopev1.RunEnd{ExitCode: 137, Signal: 9, Duration: durationpb.New(2*time.Minute + 400*time.Millisecond)},
		AllowlistSource:  scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN,
		Outcome:          scopev1.RunOutcome_RUN_OUTCOME_RESOLVED,
		Injected: []*scopev1.InjectedSecret{
			{SecretName: "DEPLOY_TOKEN", Scope: team, Owner: "teams/acme", ValueVersion: 3},
			{SecretName: "GITHUB_TOKEN", Scope: person, Owner: "users/alice", ValueVersion: 2, OverridesTeamSecret: true},
			{SecretName: "LEAKED_NAME", Scope: person, Owner: "users/carol", ValueVersion: 5, Redacted: true},
		},
		Unresolved: []*scopev1.UnresolvedReference{
			{SecretName: "MISSING_KEY", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND},
			{SecretName: "DEPLOY_KEY", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED, Detail: "restricted to agent identities: ops-bot"},
		},
	}
}

func start(t *testing.T, teams ...string) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("bob", teams...)},
		Runs: &ozfake.Runs{
			ExplainRunFunc: func(_ context.Context, r *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error) {
				return &scopev1.ExplainRunResponse{Explanation: explanation(r.GetContext())}, nil
			},
			GetRunFunc: func(_ context.Context, r *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
				return &scopev1.GetRunResponse{Run: record(r.GetName())}, nil
			},
			ListRunsFunc: func(_ context.Context, r *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
				first := record(r.GetParent() + "/runs/run-2")
				second := record(r.GetParent() + "/runs/run-1")
				second.Context = &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE}
				second.Agent, second.Injected, second.Unresolved = "default", nil, nil
				second.Outcome = scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT
				second.State, second.StartedBy, second.End = scopev1.RunState_RUN_STATE_FAILED, "teams/acme/agents/default", nil
				if r.GetPageToken() == "" {
					return &scopev1.ListRunsResponse{Runs: []*scopev1.Run{first}, NextPageToken: "p2"}, nil
				}
				return &scopev1.ListRunsResponse{Runs: []*scopev1.Run{second}}, nil
			},
		},
	})
}

func TestExplainRequest(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *scopev1.RunContext
	}{
		{
			name: "NoSecretFlagIsAbsent",
			args: []string{"--trigger", "schedule"},
			want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE},
		},
		{
			name: "NoSecretsIsEmpty",
			args: []string{"--trigger", "schedule", "--no-secrets"},
			want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE, Secrets: &scopev1.SecretNameList{}},
		},
		{
			name: "SecretsAreTheList",
			args: []string{"--trigger", "api", "--user", "alice", "--secret", "A", "--secret", "B", "--strict"},
			want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_API, User: "users/alice", Secrets: &scopev1.SecretNameList{Names: []string{"A", "B"}}, Strict: true},
		},
		{
			name: "Everything",
			args: []string{"--trigger", "slack", "--user", "users/alice", "--agent", "deployer", "--environment", "ops-tools"},
			want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SLACK, User: "users/alice", Agent: "deployer", Environment: "ops-tools"},
		},
		{name: "Cli", args: []string{"--trigger", "cli"}, want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI}},
		{name: "Linear", args: []string{"--trigger", "linear"}, want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_LINEAR}},
		{name: "Web", args: []string{"--trigger", "web"}, want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_WEB}},
		{name: "Integration", args: []string{"--trigger", "integration"}, want: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_INTEGRATION}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"run", "explain"}, tt.args...)...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
			}
			req := ozrun.Only[*scopev1.ExplainRunRequest](t, srv, "ExplainRun")
			if req.GetParent() != "teams/acme" {
				t.Errorf("got parent %q, want teams/acme", req.GetParent())
			}
			if !proto.Equal(req.GetContext(), tt.want) {
				t.Errorf("got context %v, want %v", req.GetContext(), tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"SecretAndNoSecrets", []string{"run", "explain", "--trigger", "cli", "--secret", "A", "--no-secrets"}, "--secret and --no-secrets cannot be used together"},
		{"NoTrigger", []string{"run", "explain"}, "--trigger is required (cli, slack, linear, web, api, schedule, integration)"},
		{"BadTrigger", []string{"run", "explain", "--trigger", "cron"}, `--trigger: must be one of cli, slack, linear, web, api, schedule, integration (got "cron")`},
		{"ListBadTrigger", []string{"run", "list", "--trigger", "email"}, "--trigger: must be one of cli, slack, linear, web, api, schedule, integration"},
		{"ListBadLimit", []string{"run", "list", "--limit", "-1"}, "--limit"},
		{"ShowNoID", []string{"run", "show"}, "missing RUN_ID"},
		{"ShowBadName", []string{"run", "show", "teams/acme/agents/x"}, "RUN_ID: want an id or teams/TEAM/runs/RUN_ID"},
		{"ExplainExtraArg", []string{"run", "explain", "--trigger", "cli", "extra"}, `unexpected argument "extra"`},
		{"BadOutput", []string{"run", "show", "r1", "-o", "xml"}, "--output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{}, tt.args...)
			if r.Code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.Code, exitcode.Usage)
			}
			if want := "oz: " + tt.want; !strings.HasPrefix(r.Stderr, "oz: ") || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("got stderr %q, want %q", r.Stderr, want)
			}
			if n := len(srv.Calls()); n != 0 {
				t.Errorf("got %d calls, want none", n)
			}
		})
	}
}

func TestExplainTable(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "slack", "--user", "alice", "--environment", "ops-tools")
	want := strings.Join([]string{
		"TEAM         acme",
		"TRIGGER      slack",
		"USER         users/alice",
		"EXECUTES AS  agent deployer",
		"ENVIRONMENT  ops-tools",
		"ALLOWLIST    environment ops-tools: DEPLOY_TOKEN, PAGERDUTY_API_KEY, MISSING_KEY",
		"STRICT       no (with --strict the run would fail: 1 unresolved reference)",
		"",
		"NAME                               SCOPE     DECISION  DETAIL",
		"DEPLOY_TOKEN                       team      injected  version 3",
		"PAGERDUTY_API_KEY                  personal  injected  overrides the team secret",
		"PAGERDUTY_API_KEY                  team      excluded  overridden by a personal secret of the same name",
		"OTHER_KEY                          team      excluded  not in the allowlist",
		"RESTRICTED_KEY                     team      excluded  restricted to agent identities: ops-bot",
		"(personal secret of another user)  personal  excluded  not in the allowlist",
		"",
		"Unresolved references:",
		"NAME         REASON     DETAIL",
		"MISSING_KEY  not found  no secret named MISSING_KEY is available to this run",
		"",
		"Notes:",
		"  the environment ops-tools is the allowlist",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "schedule", "--strict")
	if !strings.Contains(r.Stdout, "STRICT       yes: the run would fail (1 unresolved reference), nothing injected\n") {
		t.Errorf("got\n%s\nwant the strict line to say the run would fail", r.Stdout)
	}
}

func TestExplainJSON(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "schedule", "--no-secrets", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	wantKeys := []string{"agent", "allowlist", "allowlist_source", "candidates", "environment", "notes", "secrets", "strict", "team", "trigger", "unresolved", "user", "would_fail_strict"}
	if k := keys(got); !slices.Equal(k, wantKeys) {
		t.Errorf("got keys %v, want %v", k, wantKeys)
	}
	if got["trigger"] != "schedule" || got["agent"] != "deployer" || got["allowlist_source"] != "environment" || got["would_fail_strict"] != true {
		t.Errorf("got %v", got)
	}
	if s, ok := got["secrets"].([]any); !ok || len(s) != 0 {
		t.Errorf("got secrets %v, want [] for --no-secrets", got["secrets"])
	}
	cands := got["candidates"].([]any)
	first := cands[0].(map[string]any)
	if k := keys(first); !slices.Equal(k, []string{"binding", "decision", "detail", "name", "owner", "scope", "value_version"}) {
		t.Errorf("got candidate keys %v", k)
	}
	if first["name"] != "DEPLOY_TOKEN" || first["decision"] != "injected" || first["value_version"] != 3.0 {
		t.Errorf("got candidate %v", first)
	}
	if d := cands[4].(map[string]any)["decision"]; d != "excluded_restricted" {
		t.Errorf("got decision %v, want excluded_restricted", d)
	}
	un := got["unresolved"].([]any)[0].(map[string]any)
	if un["name"] != "MISSING_KEY" || un["reason"] != "not_found" {
		t.Errorf("got unresolved %v", un)
	}

	// Without --secret or --no-secrets the list is absent: null.
	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "schedule", "-o", "json")
	if !strings.Contains(r.Stdout, `"secrets": null`) {
		t.Errorf("got %s, want \"secrets\": null", r.Stdout)
	}
}

func TestShow(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "run", "show", "run-7")
	want := strings.Join([]string{
		"RUN             run-7",
		"TEAM            acme",
		"TIME            2026-05-20 09:15",
		"STATE           ended",
		"TRIGGER         slack",
		"USER            users/alice",
		"AGENT           deployer",
		"ENVIRONMENT     ops-tools",
		"RUN LIST        DEPLOY_TOKEN, GITHUB_TOKEN, MISSING_KEY",
		"STRICT          no",
		"STARTED BY      teams/acme/integrations/slack-bot",
		"RESOLVED BY     runners/runner-a",
		"OUTCOME         resolved",
		"ALLOWLIST       the run's list: DEPLOY_TOKEN, GITHUB_TOKEN, MISSING_KEY",
		"TICKET EXPIRES  2026-05-20 09:25",
		"RESOLVED AT     2026-05-20 09:16",
		"ENDED AT        2026-05-20 09:18",
		"EXIT CODE       137 (signal 9)",
		"DURATION        2m",
		"",
		"Injected:",
		"NAME                               SCOPE     VERSION  NOTE",
		"DEPLOY_TOKEN                       team      3        -",
		"GITHUB_TOKEN                       personal  2        overrides team secret",
		"(personal secret of another user)  personal  5        -",
		"",
		"Unresolved references:",
		"NAME         REASON                                DETAIL",
		"MISSING_KEY  not found                             -",
		"DEPLOY_KEY   restricted to other agent identities  restricted to agent identities: ops-bot",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	if got := ozrun.Only[*scopev1.GetRunRequest](t, srv, "GetRun").GetName(); got != "teams/acme/runs/run-7" {
		t.Errorf("got name %q, want teams/acme/runs/run-7", got)
	}
	if strings.Contains(r.Stdout, "LEAKED_NAME") {
		t.Error("a redacted entry's name was printed")
	}
}

func TestShowJSON(t *testing.T) {
	srv := start(t, "acme", "beta") // the resource name says which team
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "show", "teams/beta/runs/run-7", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	if n := len(srv.CallsTo("GetCaller")); n != 0 {
		t.Errorf("got %d GetCaller calls, want none", n)
	}
	if strings.Contains(r.Stdout, "LEAKED_NAME") {
		t.Error("a redacted entry's name was printed")
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	wantKeys := []string{
		"agent", "allowlist_source", "created_at", "end", "ended_at", "environment", "holds_stale_values", "id", "injected", "outcome",
		"resolved_at", "resolved_by", "resource_name", "secrets", "started_by", "state", "strict", "team", "ticket_expires_at",
		"trigger", "unresolved", "user",
	}
	if k := keys(got); !slices.Equal(k, wantKeys) {
		t.Errorf("got keys %v, want %v", k, wantKeys)
	}
	for k, want := range map[string]any{
		"id": "run-7", "resource_name": "teams/beta/runs/run-7", "team": "beta", "created_at": "2026-05-20T09:15:00Z",
		"trigger": "slack", "user": "users/alice", "agent": "deployer", "resolved_by": "runners/runner-a",
		"outcome": "resolved", "allowlist_source": "run",
		"state": "ended", "started_by": "teams/acme/integrations/slack-bot", "ticket_expires_at": "2026-05-20T09:25:00Z",
		"resolved_at": "2026-05-20T09:16:00Z", "ended_at": "2026-05-20T09:18:00Z", "holds_stale_values": false,
	} {
		if got[k] != want {
			t.Errorf("got %s %v, want %v", k, got[k], want)
		}
	}
	injected := got["injected"].([]any)
	gh := injected[1].(map[string]any)
	if gh["name"] != "GITHUB_TOKEN" || gh["scope"] != "personal" || gh["overrides_team_secret"] != true || gh["value_version"] != 2.0 {
		t.Errorf("got %v, want GITHUB_TOKEN personal overriding", gh)
	}
	if end, _ := got["end"].(map[string]any); end["exit_code"] != 137.0 || end["signal"] != 9.0 || end["duration_seconds"] != 120.4 {
		t.Errorf("got end %v, want exit_code 137, signal 9, duration_seconds 120.4", got["end"])
	}
	if gh["binding"] != nil {
		t.Errorf("got binding %v, want null (not bound)", gh["binding"])
	}
	if end, _ := got["end"].(map[string]any); end["egress"] == nil || len(end["egress"].([]any)) != 0 {
		t.Errorf("got end %v, want egress [] (none reported)", got["end"])
	}
	if gh["value_state"] != "" {
		t.Errorf("got value_state %v, want \"\" (not in flight)", gh["value_state"])
	}
	if k := keys(gh); !slices.Equal(k, []string{"binding", "name", "overrides_team_secret", "owner", "redacted", "scope", "value_state", "value_version"}) {
		t.Errorf("got injected keys %v", k)
	}
	if red := injected[2].(map[string]any); red["name"] != "" || red["redacted"] != true {
		t.Errorf("got %v, want a redacted entry without a name", red)
	}
	if un := got["unresolved"].([]any)[1].(map[string]any); un["name"] != "DEPLOY_KEY" || un["reason"] != "restricted" {
		t.Errorf("got %v, want DEPLOY_KEY restricted", un)
	}
}

func TestList(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "list", "--agent", "deployer", "--trigger", "slack")
	want := strings.Join([]string{
		"ID     TIME                  STATE   TRIGGER   USER   AGENT     ENVIRONMENT  STARTED BY             INJECTED  UNRESOLVED  EXIT            DURATION",
		"run-2  2026-05-20T09:15:00Z  ended   slack     alice  deployer  ops-tools    integration slack-bot  3         2           137 (signal 9)  2m",
		"run-1  2026-05-20T09:15:00Z  failed  schedule  -      default   -            agent default          0         0           -               -",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	calls := srv.CallsTo("ListRuns")
	if len(calls) != 2 {
		t.Fatalf("got %d ListRuns calls, want 2", len(calls))
	}
	req := calls[0].Req.(*scopev1.ListRunsRequest)
	wantReq := &scopev1.ListRunsRequest{Parent: "teams/acme", Agent: "deployer", Trigger: scopev1.Trigger_TRIGGER_SLACK, PageSize: 20}
	if !proto.Equal(req, wantReq) {
		t.Errorf("got %v, want %v", req, wantReq)
	}
	if tok := calls[1].Req.(*scopev1.ListRunsRequest).GetPageToken(); tok != "p2" {
		t.Errorf("got page token %q, want p2", tok)
	}

	// --limit stops paging once it has enough.
	srv = start(t, "acme")
	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "list", "--limit", "1", "-o", "json")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &recs); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(recs) != 1 || recs[0]["id"] != "run-2" || recs[0]["team"] != "acme" {
		t.Errorf("got %v, want run-2 only", recs)
	}
	calls = srv.CallsTo("ListRuns")
	if len(calls) != 1 || calls[0].Req.(*scopev1.ListRunsRequest).GetPageSize() != 1 {
		t.Errorf("got %d calls, want one with page_size 1", len(calls))
	}
	if strings.Contains(r.Stdout, "LEAKED_NAME") {
		t.Error("a redacted entry's name was printed")
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
