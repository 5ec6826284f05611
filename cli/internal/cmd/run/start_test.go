package run_test

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
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/run"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

const ticket = "ozt_0123456789abcdef0123456789abcdef"

// startRuns serves a fake RunService whose StartRun issues ticket for
// the run id asked for (else "run-gen"), expiring at ozrun.Now plus the
// ttl asked for (else 10 minutes), to a caller in teams.
func startRuns(t *testing.T, teams ...string) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", teams...)},
		Runs: &ozfake.Runs{
			StartRunFunc: func(_ context.Context, r *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error) {
				id := r.GetRunId()
				if id == "" {
					id = "run-gen"
				}
				ttl := 10 * time.Minute
				if r.GetTtl() != nil {
					ttl = r.GetTtl().AsDuration()
				}
				exp := timestamppb.New(ozrun.Now.Add(ttl))
				return &scopev1.StartRunResponse{
					Ticket: ticket, ExpireTime: exp, RunId: id,
					Run: &scopev1.Run{Name: r.GetParent() + "/runs/" + id, RunId: id, State: scopev1.RunState_RUN_STATE_STARTED, TicketExpireTime: exp},
				}, nil
			},
		},
	})
}

func TestStartRequest(t *testing.T) {
	tests := []struct {
		name  string
		teams []string // the caller's
		args  []string
		want  *scopev1.StartRunRequest
	}{
		{
			// No --trigger: unspecified, for the server to take the
			// client's (x-oz-client: cli) or an integration's own.
			name: "Defaults", teams: []string{"acme"},
			want: &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{}},
		},
		{
			name: "Everything", teams: []string{"acme", "beta"},
			args: []string{
				"--team", "beta", "--trigger", "api", "--agent", "deployer", "--environment", "ops-tools",
				"--secret", "A", "--secret", "B", "--strict", "--expires", "30m", "--run-id", "r-1",
			},
			want: &scopev1.StartRunRequest{
				Parent: "teams/beta",
				Context: &scopev1.RunContext{
					Trigger: scopev1.Trigger_TRIGGER_API, Agent: "deployer", Environment: "ops-tools",
					Secrets: &scopev1.SecretNameList{Names: []string{"A", "B"}}, Strict: true,
				},
				Ttl:   durationpb.New(30 * time.Minute),
				RunId: "r-1",
			},
		},
		{
			name: "NoSecretsIsEmpty", teams: []string{"acme"},
			args: []string{"--no-secrets", "--expires", "1h"},
			want: &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Secrets: &scopev1.SecretNameList{}}, Ttl: durationpb.New(time.Hour)},
		},
		{
			// An integration acting for a member.
			name: "IntegrationForMember", teams: []string{"acme"},
			args: []string{"--trigger", "slack", "--user", "bob", "--expires", "1s"},
			want: &scopev1.StartRunRequest{
				Parent:  "teams/acme",
				Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SLACK, User: "users/bob"},
				Ttl:     durationpb.New(time.Second),
			},
		},
		{
			name: "UseTeamFromEnvironmentWins", teams: []string{"acme", "beta"},
			args: []string{"--use-team", "beta", "--trigger", "schedule", "--agent", "nightly"},
			want: &scopev1.StartRunRequest{Parent: "teams/beta", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE, Agent: "nightly"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRuns(t, tt.teams...)
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"run", "start"}, tt.args...)...)
			if r.Code != 0 {
				t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
			}
			got := ozrun.Only[*scopev1.StartRunRequest](t, srv, "StartRun")
			if !proto.Equal(got, tt.want) {
				t.Errorf("got request %v, want %v", got, tt.want)
			}
			if md := srv.CallsTo("StartRun")[0].MD.Get("x-oz-client"); !slices.Equal(md, []string{"cli"}) {
				t.Errorf("got x-oz-client %q, want cli", md)
			}
			if r.Stdout != ticket+"\n" {
				t.Errorf("got stdout %q, want only the ticket", r.Stdout)
			}
			if r.Stderr != "" {
				t.Errorf("got stderr %q, want nothing (not a terminal)", r.Stderr)
			}
		})
	}
}

func TestStartOnTerminal(t *testing.T) {
	srv := startRuns(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "run", "start", "--run-id", "r-9", "--expires", "15m")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
	}
	if r.Stdout != ticket+"\n" {
		t.Errorf("got stdout %q, want only the ticket, on a terminal too", r.Stdout)
	}
	for _, want := range []string{"Run r-9 (team acme) started", "expires 2026-05-20 12:15 (in 15m)", "oz exec --ticket-env VAR -- COMMAND"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("got stderr %q, want %q in it", r.Stderr, want)
		}
	}
	if strings.Contains(r.Stderr, ticket) {
		t.Error("the ticket went to stderr too")
	}
}

func TestStartJSON(t *testing.T) {
	srv := startRuns(t, "acme")
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "start", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	want := map[string]any{"ticket": ticket, "run_id": "run-gen", "expire_time": "2026-05-20T12:10:00Z"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %s %v, want %v", k, got[k], v)
		}
	}
}

func TestStartUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"SecretAndNoSecrets", []string{"--secret", "A", "--no-secrets"}, "--secret and --no-secrets cannot be used together"},
		{"ExpiresZero", []string{"--expires", "0s"}, `--expires: want a duration from 1s to 1h, like 10m or 90s (got "0s")`},
		{"ExpiresTooLong", []string{"--expires", "61m"}, `--expires: want a duration from 1s to 1h, like 10m or 90s (got "61m")`},
		{"ExpiresSubSecond", []string{"--expires", "500ms"}, "--expires: want a duration from 1s to 1h"},
		{"ExpiresNegative", []string{"--expires", "-5m"}, "--expires: want a duration from 1s to 1h"},
		{"ExpiresNoUnit", []string{"--expires", "10"}, "--expires: want a duration from 1s to 1h"},
		{"ExpiresDays", []string{"--expires", "1d"}, "--expires: want a duration from 1s to 1h"},
		{"ExpiresEmpty", []string{"--expires", ""}, "--expires: want a duration from 1s to 1h"},
		{"BadTrigger", []string{"--trigger", "cron"}, `--trigger: must be one of cli, slack, linear, web, api, schedule, integration (got "cron")`},
		{"EmptySecret", []string{"--secret", ""}, "--secret: a secret name must not be empty"},
		{"BadOutput", []string{"-o", "yaml"}, "--output"},
		{"ExtraArg", []string{"now"}, `unexpected argument "now"`},
		{"TeamsDisagree", []string{"--team", "acme", "--use-team", "beta"}, "name different teams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRuns(t, "acme")
			r := ozrun.Run(t, srv, ozrun.Options{}, append([]string{"run", "start"}, tt.args...)...)
			if r.Code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.Code, exitcode.Usage)
			}
			if !strings.HasPrefix(r.Stderr, "oz: ") || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("got stderr %q, want an oz: line with %q", r.Stderr, tt.want)
			}
			if r.Stdout != "" {
				t.Errorf("got stdout %q, want none", r.Stdout)
			}
			if n := len(srv.Calls()); n != 0 {
				t.Errorf("got %d calls, want none", n)
			}
		})
	}
}

func TestStartServerRefusal(t *testing.T) {
	// A refusal prints nothing on stdout: `T=$(oz run start)` stays empty.
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Runs: &ozfake.Runs{StartRunFunc: func(context.Context, *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error) {
			return nil, status.Error(codes.PermissionDenied, `context.agent: agent identity "deployer" admits only the admins of team "acme"`)
		}},
	})
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "start", "--agent", "deployer")
	if r.Code != exitcode.Denied || r.Stdout != "" || !strings.Contains(r.Stderr, "admits only the admins") {
		t.Errorf("got %d, stdout %q, stderr %q; want %d, no stdout, the server's reason", r.Code, r.Stdout, r.Stderr, exitcode.Denied)
	}
}

func TestParseTicketExpires(t *testing.T) {
	for in, want := range map[string]time.Duration{"1s": time.Second, "10m": 10 * time.Minute, "1h": time.Hour, "1m30s": 90 * time.Second, "59m59s": time.Hour - time.Second} {
		got, err := run.ParseTicketExpires(in)
		if err != nil || got != want {
			t.Errorf("ParseTicketExpires(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
