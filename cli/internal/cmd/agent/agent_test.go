package agent_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

var (
	created = timestamppb.New(time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC))
	updated = timestamppb.New(time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC))
)

const (
	admins  = scopev1.StartPolicy_START_POLICY_ADMINS
	members = scopev1.StartPolicy_START_POLICY_MEMBERS
)

// start serves a fake AgentService that answers with what it was asked,
// and a caller in teams.
func start(t *testing.T, teams ...string) *ozfake.Server {
	t.Helper()
	echo := func(parent, id, display, desc string, names []string) *scopev1.Agent {
		return &scopev1.Agent{
			Name: parent + "/agents/" + id, AgentId: id, DisplayName: display, Description: desc,
			SecretNames: names, CreateTime: created, UpdateTime: updated, Etag: "e1",
			StartPolicy: admins,
		}
	}
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", teams...)},
		Agents: &ozfake.Agents{
			CreateAgentFunc: func(_ context.Context, r *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error) {
				return &scopev1.CreateAgentResponse{Agent: echo(r.GetParent(), r.GetAgentId(), r.GetDisplayName(), r.GetDescription(), r.GetSecretNames())}, nil
			},
			UpdateAgentFunc: func(_ context.Context, r *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error) {
				parent, id, _ := strings.Cut(r.GetName(), "/agents/")
				return &scopev1.UpdateAgentResponse{Agent: echo(parent, id, "", r.GetDescription(), r.GetAddSecretNames())}, nil
			},
			GetAgentFunc: func(_ context.Context, r *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error) {
				parent, id, _ := strings.Cut(r.GetName(), "/agents/")
				return &scopev1.GetAgentResponse{Agent: echo(parent, id, "Deployer", "deploys", []string{"DEPLOY_KEY", "AWS_KEY"})}, nil
			},
			ListAgentsFunc: func(_ context.Context, r *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
				if r.GetPageToken() == "" {
					return &scopev1.ListAgentsResponse{NextPageToken: "p2", Agents: []*scopev1.Agent{
						echo(r.GetParent(), "deployer", "", "deploys", []string{"DEPLOY_KEY", "AWS_KEY"}),
					}}, nil
				}
				def := echo(r.GetParent(), "default", "Default Service Account", "", nil)
				def.Default, def.StartPolicy = true, members
				return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{def}}, nil
			},
			DeleteAgentFunc: func(context.Context, *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
				return &scopev1.DeleteAgentResponse{}, nil
			},
		},
	})
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name       string
		teams      []string // the caller's teams
		env        map[string]string
		args       []string
		want       *scopev1.CreateAgentRequest
		wantCaller bool
	}{
		{
			name: "OnlyTeam", teams: []string{"acme"},
			args:       []string{"agent", "create", "deployer"},
			want:       &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: "deployer"},
			wantCaller: true,
		},
		{
			name: "SecretsAndDescription", teams: []string{"acme", "beta"},
			args: []string{"agent", "create", "deployer", "--description", "deploys", "--secret", "DEPLOY_KEY", "--secret", "AWS_KEY", "--team", "beta"},
			want: &scopev1.CreateAgentRequest{Parent: "teams/beta", AgentId: "deployer", Description: "deploys", SecretNames: []string{"DEPLOY_KEY", "AWS_KEY"}},
		},
		{
			name: "UseTeamAfterVerb", teams: []string{"acme", "beta"},
			args: []string{"agent", "create", "--use-team", "beta", "bot", "--display-name", "Bot"},
			want: &scopev1.CreateAgentRequest{Parent: "teams/beta", AgentId: "bot", DisplayName: "Bot"},
		},
		{
			name: "GlobalUseTeam", teams: []string{"acme", "beta"},
			args: []string{"--use-team", "beta", "agent", "create", "bot"},
			want: &scopev1.CreateAgentRequest{Parent: "teams/beta", AgentId: "bot"},
		},
		{
			name: "EnvTeam", teams: []string{"acme", "beta"}, env: map[string]string{"OZ_TEAM": "beta"},
			args: []string{"agent", "create", "bot"},
			want: &scopev1.CreateAgentRequest{Parent: "teams/beta", AgentId: "bot"},
		},
		{
			name: "TeamFlagOverEnv", teams: []string{"acme", "beta"}, env: map[string]string{"OZ_TEAM": "beta"},
			args: []string{"agent", "create", "bot", "--team", "acme"},
			want: &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: "bot"},
		},
		{
			name: "StartPolicyMembers", teams: []string{"acme"},
			args:       []string{"agent", "create", "bot", "--start-policy", "members"},
			want:       &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: "bot", StartPolicy: members},
			wantCaller: true,
		},
		{
			name: "StartPolicyAdmins", teams: []string{"acme"},
			args:       []string{"agent", "create", "--start-policy", "admins", "bot", "--secret", "K"},
			want:       &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: "bot", SecretNames: []string{"K"}, StartPolicy: admins},
			wantCaller: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, tt.teams...)
			r := ozrun.Run(t, srv, ozrun.Options{Env: tt.env}, tt.args...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (stderr %q), want 0", r.Code, r.Stderr)
			}
			got := ozrun.Only[*scopev1.CreateAgentRequest](t, srv, "CreateAgent")
			if !proto.Equal(got, tt.want) {
				t.Errorf("got request %v, want %v", got, tt.want)
			}
			if called := len(srv.CallsTo("GetCaller")) > 0; called != tt.wantCaller {
				t.Errorf("got GetCaller called %v, want %v", called, tt.wantCaller)
			}
			if r.Stdout != "" {
				t.Errorf("got stdout %q, want none (not a terminal)", r.Stdout)
			}
		})
	}
}

func TestCreateOutput(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "agent", "create", "deployer")
	if want := "Created agent identity deployer (team acme)\n"; r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d %q, want 0 %q", r.Code, r.Stdout, want)
	}
	r = ozrun.Run(t, srv, ozrun.Options{}, "agent", "create", "deployer", "--secret", "K", "-o", "json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if got["name"] != "deployer" || got["team"] != "acme" || got["resource_name"] != "teams/acme/agents/deployer" {
		t.Errorf("got %v, want name deployer, team acme", got)
	}
	if names, _ := got["secret_names"].([]any); len(names) != 1 || names[0] != "K" {
		t.Errorf("got secret_names %v, want [K]", got["secret_names"])
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *scopev1.UpdateAgentRequest
	}{
		{
			name: "AddRemove",
			args: []string{"--add-secret", "A", "--add-secret", "B", "--remove-secret", "C"},
			want: &scopev1.UpdateAgentRequest{Name: "teams/acme/agents/deployer", AddSecretNames: []string{"A", "B"}, RemoveSecretNames: []string{"C"}},
		},
		{
			name: "Description",
			args: []string{"--description", "new"},
			want: &scopev1.UpdateAgentRequest{Name: "teams/acme/agents/deployer", Description: "new", UpdateMask: mask("description")},
		},
		{
			name: "ClearDescription",
			args: []string{"-d", ""},
			want: &scopev1.UpdateAgentRequest{Name: "teams/acme/agents/deployer", UpdateMask: mask("description")},
		},
		{
			name: "Everything",
			args: []string{"-d", "x", "--display-name", "Deployer", "--add-secret", "A", "--etag", "e7"},
			want: &scopev1.UpdateAgentRequest{
				Name: "teams/acme/agents/deployer", Description: "x", DisplayName: "Deployer",
				AddSecretNames: []string{"A"}, Etag: "e7", UpdateMask: mask("description", "display_name"),
			},
		},
		{
			name: "StartPolicyOnly",
			args: []string{"--start-policy", "members"},
			want: &scopev1.UpdateAgentRequest{Name: "teams/acme/agents/deployer", StartPolicy: members, UpdateMask: mask("start_policy")},
		},
		{
			name: "StartPolicyAndSecrets",
			args: []string{"--add-secret", "A", "--start-policy", "admins", "-d", "y"},
			want: &scopev1.UpdateAgentRequest{
				Name: "teams/acme/agents/deployer", Description: "y", AddSecretNames: []string{"A"},
				StartPolicy: admins, UpdateMask: mask("description", "start_policy"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"agent", "update", "deployer"}, tt.args...)...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (stderr %q), want 0", r.Code, r.Stderr)
			}
			if got := ozrun.Only[*scopev1.UpdateAgentRequest](t, srv, "UpdateAgent"); !proto.Equal(got, tt.want) {
				t.Errorf("got request %v, want %v", got, tt.want)
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
		{"UpdateNothing", []string{"agent", "update", "deployer"}, "nothing to update: pass --description, --display-name, --start-policy, --add-secret or --remove-secret"},
		{"CreateBadStartPolicy", []string{"agent", "create", "bot", "--start-policy", "everyone"}, `--start-policy: must be admins or members (got "everyone")`},
		{"UpdateBadStartPolicy", []string{"agent", "update", "deployer", "--start-policy", ""}, `--start-policy: must be admins or members (got "")`},
		{"UpdateAddAndRemove", []string{"agent", "update", "deployer", "--add-secret", "A", "--remove-secret", "A"}, "both name A"},
		{"CreateNoName", []string{"agent", "create"}, "missing NAME"},
		{"CreateSlash", []string{"agent", "create", "a/b"}, "NAME: must not contain"},
		{"CreateEmptySecret", []string{"agent", "create", "bot", "--secret", ""}, "--secret: a secret name must not be empty"},
		{"GetExtra", []string{"agent", "get", "a", "b"}, `unexpected argument "b"`},
		{"ListBadOutput", []string{"agent", "list", "-o", "yaml"}, "--output"},
		{"DeleteNoTerminal", []string{"agent", "delete", "deployer"}, "refusing to delete agent identity deployer without confirmation: standard input is not a terminal; pass --force"},
		{"TeamsDisagree", []string{"agent", "list", "--team", "acme", "--use-team", "beta"}, "name different teams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{Stdin: "y\n"}, tt.args...)
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

func TestList(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "agent", "list")
	want := strings.Join([]string{
		"NAME               START POLICY  SECRETS              DESCRIPTION",
		"default (default)  members       -                    -",
		"deployer           admins        DEPLOY_KEY, AWS_KEY  deploys",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	if n := len(srv.CallsTo("ListAgents")); n != 2 {
		t.Errorf("got %d ListAgents calls, want 2 (two pages)", n)
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "agent", "list", "--output", "json")
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &items); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(items) != 2 {
		t.Fatalf("got %d items, want 2", len(items))
	}
	def := items[0]
	wantKeys := []string{"created_at", "default", "description", "display_name", "etag", "name", "resource_name", "secret_names", "start_policy", "team", "updated_at"}
	if got := keys(def); !slices.Equal(got, wantKeys) {
		t.Errorf("got keys %v, want %v", got, wantKeys)
	}
	if def["name"] != "default" || def["default"] != true || def["display_name"] != "Default Service Account" || def["created_at"] != "2026-05-01T09:30:00Z" {
		t.Errorf("got %v, want the default identity with its times", def)
	}
	if def["start_policy"] != "members" || items[1]["start_policy"] != "admins" {
		t.Errorf("got start_policy %v and %v, want members and admins", def["start_policy"], items[1]["start_policy"])
	}
	if names, ok := def["secret_names"].([]any); !ok || len(names) != 0 {
		t.Errorf("got secret_names %v, want [] (never null)", def["secret_names"])
	}
}

func TestGet(t *testing.T) {
	srv := start(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "agent", "get", "deployer")
	want := strings.Join([]string{
		"NAME          deployer",
		"TEAM          acme",
		"DISPLAY NAME  Deployer",
		"DESCRIPTION   deploys",
		"SECRETS       DEPLOY_KEY, AWS_KEY",
		"START POLICY  admins (only the team's admins start runs as it)",
		"CREATED       2026-05-01 09:30",
		"UPDATED       2026-05-02 10:00",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	if got := ozrun.Only[*scopev1.GetAgentRequest](t, srv, "GetAgent").GetName(); got != "teams/acme/agents/deployer" {
		t.Errorf("got name %q, want teams/acme/agents/deployer", got)
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name        string
		opts        ozrun.Options
		args        []string
		wantCode    int
		wantDeleted bool
		wantPrompt  string
	}{
		{name: "Force", args: []string{"--force"}, wantDeleted: true},
		{name: "ConfirmedYes", opts: ozrun.Options{TTY: true, Answers: []string{"y"}}, wantDeleted: true,
			wantPrompt: "Delete agent identity deployer (team acme) and revoke its tokens? [y/N] "},
		{name: "Declined", opts: ozrun.Options{TTY: true, Answers: []string{"n"}}, wantCode: exitcode.Error,
			wantPrompt: "Delete agent identity deployer (team acme) and revoke its tokens? [y/N] "},
		{name: "NoTerminal", opts: ozrun.Options{Stdin: "y\n"}, wantCode: exitcode.Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, "acme")
			r := ozrun.Run(t, srv, tt.opts, append([]string{"agent", "delete", "deployer"}, tt.args...)...)
			if r.Code != tt.wantCode {
				t.Errorf("got exit code %d (stderr %q), want %d", r.Code, r.Stderr, tt.wantCode)
			}
			calls := srv.CallsTo("DeleteAgent")
			if !tt.wantDeleted {
				if len(calls) != 0 {
					t.Errorf("got %d DeleteAgent calls, want none", len(calls))
				}
			} else if got := ozrun.Only[*scopev1.DeleteAgentRequest](t, srv, "DeleteAgent").GetName(); got != "teams/acme/agents/deployer" {
				t.Errorf("got name %q, want teams/acme/agents/deployer", got)
			}
			var prompt string
			if len(r.Prompts) > 0 {
				prompt = r.Prompts[0]
			}
			if prompt != tt.wantPrompt {
				t.Errorf("got prompt %q, want %q", prompt, tt.wantPrompt)
			}
		})
	}
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestStoredControlCharactersAreEscaped: a description or display name
// stored before the services refused control characters is printed
// escaped, so that it cannot clear the reader's screen or fake a row.
func TestStoredControlCharactersAreEscaped(t *testing.T) {
	const desc = "ok\x1b[2J\r\nevil    admins  -  fake row\x00\u202e"
	agent := &scopev1.Agent{Name: "teams/acme/agents/legacy", AgentId: "legacy", DisplayName: "Leg\x1b]0;pwned\x07acy",
		Description: desc, CreateTime: created, UpdateTime: updated, StartPolicy: admins}
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Agents: &ozfake.Agents{
			ListAgentsFunc: func(context.Context, *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
				return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{agent}}, nil
			},
			GetAgentFunc: func(context.Context, *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error) {
				return &scopev1.GetAgentResponse{Agent: agent}, nil
			},
		},
	})
	wantDesc := `ok\x1b[2J\r\nevil    admins  -  fake row\x00\u202e`
	for _, args := range [][]string{{"agent", "list"}, {"agent", "get", "legacy"}} {
		r := ozrun.Run(t, srv, ozrun.Options{}, args...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.Code, r.Stderr)
		}
		if strings.ContainsAny(r.Stdout, "\x1b\r\x00\a\u202e") || !strings.Contains(r.Stdout, wantDesc) {
			t.Errorf("%v: got %q, want the description escaped: %s", args, r.Stdout, wantDesc)
		}
		if lines := strings.Count(r.Stdout, "\n"); args[1] == "list" && lines != 2 {
			t.Errorf("%v: got %d lines, want a header and one row:\n%s", args, lines, r.Stdout)
		}
	}
}
