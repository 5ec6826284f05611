package admin_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

const integrationToken = "oz_integration_0123456789abcdef"

// startIntegrations serves a fake IntegrationService that creates what it
// is asked, lists two integrations, deletes anything, for a caller in
// teams.
func startIntegrations(t *testing.T, teams ...string) *ozfake.Server {
	t.Helper()
	ct := timestamppb.New(time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC))
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", teams...)},
		Integrations: &ozfake.Integrations{
			CreateIntegrationFunc: func(_ context.Context, r *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error) {
				if r.GetIntegrationId() == "taken" {
					return nil, status.Error(codes.AlreadyExists, `integration "taken" already exists in team "acme"`)
				}
				return &scopev1.CreateIntegrationResponse{
					Integration: &scopev1.Integration{
						Name: r.GetParent() + "/integrations/" + r.GetIntegrationId(), IntegrationId: r.GetIntegrationId(),
						Trigger: r.GetTrigger(), Agents: r.GetAgents(), Description: r.GetDescription(), CreateBy: "users/alice",
					},
					BearerToken: integrationToken,
				}, nil
			},
			ListIntegrationsFunc: func(_ context.Context, r *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error) {
				if r.GetPageToken() == "" {
					return &scopev1.ListIntegrationsResponse{NextPageToken: "p2", Integrations: []*scopev1.Integration{{
						Name: r.GetParent() + "/integrations/nightly", IntegrationId: "nightly", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE,
						Agents: []string{"deployer", "ops"}, CreateBy: "users/alice", CreateTime: ct,
					}}}, nil
				}
				return &scopev1.ListIntegrationsResponse{Integrations: []*scopev1.Integration{{
					Name: r.GetParent() + "/integrations/slack-bot", IntegrationId: "slack-bot", Trigger: scopev1.Trigger_TRIGGER_SLACK,
					Description: "the Slack app", CreateBy: "users/carol", Allowed: true,
				}}}, nil
			},
			DeleteIntegrationFunc: func(context.Context, *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error) {
				return &scopev1.DeleteIntegrationResponse{}, nil
			},
		},
	})
}

func TestIntegrationCreate(t *testing.T) {
	tests := []struct {
		name       string
		teams      []string // the caller's
		args       []string
		want       *scopev1.CreateIntegrationRequest
		wantCaller bool
	}{
		{
			name: "Slack", teams: []string{"acme", "beta"},
			args: []string{"slack-bot", "--team", "acme", "--trigger", "slack"},
			want: &scopev1.CreateIntegrationRequest{Parent: "teams/acme", IntegrationId: "slack-bot", Trigger: scopev1.Trigger_TRIGGER_SLACK},
		},
		{
			name: "ScheduleWithIdentities", teams: []string{"acme", "beta"},
			args: []string{"nightly", "--team", "beta", "--trigger", "schedule", "--agent", "deployer", "--agent", "ops", "-d", "nightly jobs"},
			want: &scopev1.CreateIntegrationRequest{
				Parent: "teams/beta", IntegrationId: "nightly", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE,
				Agents: []string{"deployer", "ops"}, Description: "nightly jobs",
			},
		},
		{
			name: "LinearOnlyTeam", teams: []string{"acme"},
			args:       []string{"--trigger", "linear", "linear-app"},
			want:       &scopev1.CreateIntegrationRequest{Parent: "teams/acme", IntegrationId: "linear-app", Trigger: scopev1.Trigger_TRIGGER_LINEAR},
			wantCaller: true,
		},
		{
			name: "IntegrationTrigger", teams: []string{"acme", "beta"},
			args: []string{"--use-team", "beta", "ci", "--trigger", "integration", "--description", "CI"},
			want: &scopev1.CreateIntegrationRequest{Parent: "teams/beta", IntegrationId: "ci", Trigger: scopev1.Trigger_TRIGGER_INTEGRATION, Description: "CI"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startIntegrations(t, tt.teams...)
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"admin", "integration", "create"}, tt.args...)...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
			}
			if got := ozrun.Only[*scopev1.CreateIntegrationRequest](t, srv, "CreateIntegration"); !proto.Equal(got, tt.want) {
				t.Errorf("got request %v, want %v", got, tt.want)
			}
			if called := len(srv.CallsTo("GetCaller")) > 0; called != tt.wantCaller {
				t.Errorf("got GetCaller called %v, want %v", called, tt.wantCaller)
			}
			if r.Stdout != integrationToken+"\n" || r.Stderr != "" {
				t.Errorf("got stdout %q, stderr %q; want only the token, nothing on stderr", r.Stdout, r.Stderr)
			}
		})
	}
}

func TestIntegrationCreateOnTerminal(t *testing.T) {
	srv := startIntegrations(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "admin", "integration", "create", "slack-bot", "--trigger", "slack")
	if r.Code != 0 || r.Stdout != integrationToken+"\n" {
		t.Fatalf("got %d, stdout %q; want 0 and only the token on a terminal too", r.Code, r.Stdout)
	}
	for _, want := range []string{"Created integration slack-bot (team acme) for slack runs", "shown only once", "oz integration allow slack-bot --team acme"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("got stderr %q, want %q in it", r.Stderr, want)
		}
	}
	if strings.Contains(r.Stderr, integrationToken) {
		t.Error("the token went to stderr too")
	}
}

func TestIntegrationUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"CreateNoTrigger", []string{"create", "x", "--team", "acme"}, "--trigger is required (slack, linear, schedule, integration)"},
		{"CreatePersonTrigger", []string{"create", "x", "--team", "acme", "--trigger", "cli"}, `--trigger: must be one of slack, linear, schedule, integration (got "cli"); people start cli, web and api runs themselves`},
		{"CreateBadTrigger", []string{"create", "x", "--trigger", "cron"}, `--trigger: must be one of slack, linear, schedule, integration (got "cron")`},
		{"CreateNoName", []string{"create", "--trigger", "slack"}, "missing NAME"},
		{"CreateSlash", []string{"create", "a/b", "--trigger", "slack"}, "NAME: must not contain"},
		{"CreateEmptyAgent", []string{"create", "x", "--trigger", "schedule", "--agent", ""}, "--agent: must not be empty"},
		{"CreateTeamsDisagree", []string{"create", "x", "--trigger", "slack", "--team", "acme", "--use-team", "beta"}, "name different teams"},
		{"ListBadOutput", []string{"list", "-o", "yaml"}, "--output"},
		{"DeleteNoTerminal", []string{"delete", "slack-bot"}, "refusing to delete integration slack-bot without confirmation: standard input is not a terminal; pass --force"},
		{"DeleteNoName", []string{"delete", "--force"}, "missing NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startIntegrations(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{Stdin: "y\n"}, append([]string{"admin", "integration"}, tt.args...)...)
			if r.Code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.Code, exitcode.Usage)
			}
			if !strings.HasPrefix(r.Stderr, "oz: ") || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("got stderr %q, want an oz: line with %q", r.Stderr, tt.want)
			}
			if r.Stdout != "" {
				t.Errorf("got stdout %q, want none", r.Stdout)
			}
			if calls := srv.Calls(); len(calls) != 0 {
				t.Errorf("got %d calls (first %s), want none", len(calls), calls[0].Method)
			}
		})
	}
}

func TestIntegrationCreateConflict(t *testing.T) {
	srv := startIntegrations(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "admin", "integration", "create", "taken", "--trigger", "slack")
	if r.Code != exitcode.Conflict || r.Stdout != "" || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("got %d, stdout %q, stderr %q; want %d, no stdout", r.Code, r.Stdout, r.Stderr, exitcode.Conflict)
	}
}

func TestIntegrationList(t *testing.T) {
	srv := startIntegrations(t, "acme", "beta")
	r := ozrun.Run(t, srv, ozrun.Options{}, "admin", "integration", "list", "--team", "beta")
	want := strings.Join([]string{ // off a terminal: times in RFC 3339
		"NAME       TRIGGER   IDENTITIES     CREATED BY  CREATED",
		"nightly    schedule  deployer, ops  alice       2026-05-01T09:30:00Z",
		"slack-bot  slack     -              carol       -",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	calls := srv.CallsTo("ListIntegrations")
	if len(calls) != 2 || calls[0].Req.(*scopev1.ListIntegrationsRequest).GetParent() != "teams/beta" || calls[1].Req.(*scopev1.ListIntegrationsRequest).GetPageToken() != "p2" {
		t.Errorf("got %d ListIntegrations calls, want two pages of teams/beta", len(calls))
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "admin", "integration", "list", "--team", "beta", "-o", "json")
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &items); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(items) != 2 {
		t.Fatalf("got %d items, want 2", len(items))
	}
	wantKeys := []string{"agents", "allowed", "created_at", "created_by", "description", "name", "resource_name", "team", "trigger"}
	if k := keys(items[0]); !slices.Equal(k, wantKeys) {
		t.Errorf("got keys %v, want %v", k, wantKeys)
	}
	if it := items[0]; it["name"] != "nightly" || it["team"] != "beta" || it["trigger"] != "schedule" || it["created_by"] != "users/alice" || it["created_at"] != "2026-05-01T09:30:00Z" {
		t.Errorf("got %v", it)
	}
	if agents, ok := items[1]["agents"].([]any); !ok || len(agents) != 0 {
		t.Errorf("got agents %v, want [] (never null)", items[1]["agents"])
	}
}

func TestIntegrationDelete(t *testing.T) {
	const prompt = "Delete integration slack-bot (team acme) and revoke its tokens? [y/N] "
	tests := []struct {
		name        string
		opts        ozrun.Options
		args        []string
		wantCode    int
		wantDeleted bool
		wantPrompt  string
	}{
		{name: "Force", args: []string{"--force"}, wantDeleted: true},
		{name: "ForceShort", args: []string{"-f"}, wantDeleted: true},
		{name: "ConfirmedYes", opts: ozrun.Options{TTY: true, Answers: []string{"y"}}, wantDeleted: true, wantPrompt: prompt},
		{name: "Declined", opts: ozrun.Options{TTY: true, Answers: []string{"n"}}, wantCode: exitcode.Error, wantPrompt: prompt},
		{name: "NoTerminal", opts: ozrun.Options{Stdin: "y\n"}, wantCode: exitcode.Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startIntegrations(t, "acme")
			r := ozrun.Run(t, srv, tt.opts, append([]string{"admin", "integration", "delete", "slack-bot"}, tt.args...)...)
			if r.Code != tt.wantCode {
				t.Errorf("got exit code %d (stderr %q), want %d", r.Code, r.Stderr, tt.wantCode)
			}
			if !tt.wantDeleted {
				if n := len(srv.CallsTo("DeleteIntegration")); n != 0 {
					t.Errorf("got %d DeleteIntegration calls, want none", n)
				}
			} else if got := ozrun.Only[*scopev1.DeleteIntegrationRequest](t, srv, "DeleteIntegration").GetName(); got != "teams/acme/integrations/slack-bot" {
				t.Errorf("got name %q, want teams/acme/integrations/slack-bot", got)
			}
			var got string
			if len(r.Prompts) > 0 {
				got = r.Prompts[0]
			}
			if got != tt.wantPrompt {
				t.Errorf("got prompt %q, want %q", got, tt.wantPrompt)
			}
		})
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
