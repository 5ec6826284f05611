package integration_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// trigger of the fake integrations by id.
var triggers = map[string]scopev1.Trigger{
	"slack-bot":  scopev1.Trigger_TRIGGER_SLACK,
	"linear-app": scopev1.Trigger_TRIGGER_LINEAR,
	"nightly":    scopev1.Trigger_TRIGGER_SCHEDULE,
}

func integration(name string, allowed bool) *scopev1.Integration {
	_, id, _ := strings.Cut(name, "/integrations/")
	return &scopev1.Integration{Name: name, IntegrationId: id, Trigger: triggers[id], Allowed: allowed, CreateBy: "users/carol"}
}

// start serves a fake IntegrationService for a member of teams.
func start(t *testing.T, teams ...string) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("bob", teams...)},
		Integrations: &ozfake.Integrations{
			AllowIntegrationFunc: func(_ context.Context, r *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error) {
				if strings.HasSuffix(r.GetName(), "/gone") {
					return nil, status.Error(codes.NotFound, `integration "gone" not found in team "acme"`)
				}
				return &scopev1.AllowIntegrationResponse{Integration: integration(r.GetName(), true)}, nil
			},
			DisallowIntegrationFunc: func(_ context.Context, r *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error) {
				return &scopev1.DisallowIntegrationResponse{Integration: integration(r.GetName(), false)}, nil
			},
			ListIntegrationsFunc: func(_ context.Context, r *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error) {
				p := r.GetParent() + "/integrations/"
				return &scopev1.ListIntegrationsResponse{Integrations: []*scopev1.Integration{
					integration(p+"linear-app", false),
					integration(p+"nightly", false),
					integration(p+"slack-bot", true),
				}}, nil
			},
		},
	})
}

func TestAllowDisallow(t *testing.T) {
	tests := []struct {
		name       string
		teams      []string // the caller's
		args       []string
		method     string
		wantName   string
		wantCaller bool
	}{
		{name: "AllowOnlyTeam", teams: []string{"acme"}, args: []string{"allow", "slack-bot"}, method: "AllowIntegration", wantName: "teams/acme/integrations/slack-bot", wantCaller: true},
		{name: "AllowTeamFlag", teams: []string{"acme", "beta"}, args: []string{"allow", "slack-bot", "--team", "beta"}, method: "AllowIntegration", wantName: "teams/beta/integrations/slack-bot"},
		{name: "DisallowUseTeam", teams: []string{"acme", "beta"}, args: []string{"--use-team", "beta", "disallow", "linear-app"}, method: "DisallowIntegration", wantName: "teams/beta/integrations/linear-app"},
		{name: "DisallowOnlyTeam", teams: []string{"acme"}, args: []string{"disallow", "slack-bot"}, method: "DisallowIntegration", wantName: "teams/acme/integrations/slack-bot", wantCaller: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, tt.teams...)
			args := tt.args
			if args[0] == "--use-team" {
				args = append([]string{args[0], args[1], "integration"}, args[2:]...)
			} else {
				args = append([]string{"integration"}, args...)
			}
			r := ozrun.Run(t, srv, ozrun.Options{}, args...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
			}
			calls := srv.CallsTo(tt.method)
			if len(calls) != 1 {
				t.Fatalf("got %d %s calls, want 1", len(calls), tt.method)
			}
			var got string
			switch req := calls[0].Req.(type) {
			case *scopev1.AllowIntegrationRequest:
				got = req.GetName()
			case *scopev1.DisallowIntegrationRequest:
				got = req.GetName()
			}
			if got != tt.wantName {
				t.Errorf("got name %q, want %q", got, tt.wantName)
			}
			if called := len(srv.CallsTo("GetCaller")) > 0; called != tt.wantCaller {
				t.Errorf("got GetCaller called %v, want %v", called, tt.wantCaller)
			}
			if r.Stdout != "" || r.Stderr != "" {
				t.Errorf("got stdout %q, stderr %q; want nothing off a terminal", r.Stdout, r.Stderr)
			}
		})
	}
}

func TestAllowOnTerminal(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "integration", "allow", "slack-bot")
	if want := "Allowed integration slack-bot (team acme) to start runs on your behalf: your personal secrets are candidates of those runs.\n"; r.Stdout != want {
		t.Errorf("got %q, want %q", r.Stdout, want)
	}
	r = ozrun.Run(t, srv, ozrun.Options{TTY: true}, "integration", "allow", "nightly")
	if !strings.Contains(r.Stdout, "user-less") || !strings.Contains(r.Stdout, "changes nothing") {
		t.Errorf("got %q, want a note that a schedule integration never acts for anyone", r.Stdout)
	}
	r = ozrun.Run(t, srv, ozrun.Options{TTY: true}, "integration", "disallow", "slack-bot")
	if want := "Disallowed integration slack-bot (team acme): it no longer starts runs on your behalf.\n"; r.Stdout != want {
		t.Errorf("got %q, want %q", r.Stdout, want)
	}
	r = ozrun.Run(t, srv, ozrun.Options{TTY: true}, "integration", "allow", "gone")
	if r.Code != exitcode.NotFound || r.Stdout != "" {
		t.Errorf("got %d, stdout %q; want %d and nothing said of success", r.Code, r.Stdout, exitcode.NotFound)
	}
}

func TestList(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "integration", "list")
	want := strings.Join([]string{
		"NAME        TRIGGER   ALLOWED  DESCRIPTION",
		"linear-app  linear    no       -",
		"nightly     schedule  -        -",
		"slack-bot   slack     yes      -",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	if got := ozrun.Only[*scopev1.ListIntegrationsRequest](t, srv, "ListIntegrations").GetParent(); got != "teams/acme" {
		t.Errorf("got parent %q, want teams/acme", got)
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "integration", "list", "--output", "json")
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &items); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(items) != 3 || items[2]["name"] != "slack-bot" || items[2]["allowed"] != true || items[0]["allowed"] != false || items[2]["team"] != "acme" {
		t.Errorf("got %v, want slack-bot allowed, linear-app not", items)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"AllowNoName", []string{"allow"}, "missing NAME"},
		{"DisallowExtra", []string{"disallow", "a", "b"}, `unexpected argument "b"`},
		{"AllowSlash", []string{"allow", "teams/acme"}, "NAME: must not contain"},
		{"ListBadOutput", []string{"list", "-o", "xml"}, "--output"},
		{"TeamsDisagree", []string{"allow", "x", "--team", "acme", "--use-team", "beta"}, "name different teams"},
		{"UnknownVerb", []string{"permit", "x"}, `unknown command "permit"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"integration"}, tt.args...)...)
			if r.Code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.Code, exitcode.Usage)
			}
			if !strings.HasPrefix(r.Stderr, "oz: ") || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("got stderr %q, want an oz: line with %q", r.Stderr, tt.want)
			}
			if calls := srv.Calls(); len(calls) != 0 {
				t.Errorf("got %d calls (first %s), want none", len(calls), calls[0].Method)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := ozrun.Run(t, nil, ozrun.Options{}, "--help")
	if !strings.Contains(r.Stdout, "\n   integration") {
		t.Errorf("oz --help does not list integration:\n%s", r.Stdout)
	}
	r = ozrun.Run(t, nil, ozrun.Options{}, "integration", "--help")
	help := strings.Join(strings.Fields(r.Stdout), " ")
	for _, want := range []string{
		"lets it start user-initiated runs (slack, linear) on your behalf",
		"Your personal secrets are then candidates of those runs",
		"allow Let an integration", "disallow Stop an integration", "list, ls", "Example:",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("oz integration --help lacks %q:\n%s", want, r.Stdout)
		}
	}
}
