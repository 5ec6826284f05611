package admin

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func startRunners(t *testing.T, runners *ozfake.Runners) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{Runners: runners})
}

func TestRunnerCreatePrintsOnlyTheToken(t *testing.T) {
	const bearer = "oz_runner_0123456789abcdef"
	srv := startRunners(t, &ozfake.Runners{
		CreateRunnerFunc: func(_ context.Context, r *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error) {
			return &scopev1.CreateRunnerResponse{
				Runner:      &scopev1.Runner{Name: "runners/" + r.GetRunnerId(), RunnerId: r.GetRunnerId(), Teams: r.GetTeams()},
				BearerToken: bearer,
			}, nil
		},
	})
	for _, tty := range []bool{false, true} {
		deps, out, errOut := testDeps(srv)
		deps.IO.StdoutTTY, deps.IO.StderrTTY = tty, tty
		if err := runRunnerCreate(context.Background(), &RunnerCreateOptions{Deps: deps, Runner: "runners/ci", Teams: []string{"acme", "beta"}}); err != nil {
			t.Fatal(err)
		}
		if got, want := out.String(), bearer+"\n"; got != want {
			t.Errorf("tty=%v: got stdout %q, want %q", tty, got, want)
		}
		if tty && !strings.Contains(errOut.String(), "shown only once") {
			t.Errorf("got stderr %q, want a note for people on a terminal", errOut.String())
		}
		if strings.Contains(errOut.String(), bearer) {
			t.Errorf("the token went to stderr too")
		}
	}
	req := srv.CallsTo("CreateRunner")[0].Req.(*scopev1.CreateRunnerRequest)
	if req.GetRunnerId() != "ci" || !slices.Equal(req.GetTeams(), []string{"acme", "beta"}) {
		t.Errorf("got %v, want runner_id ci, teams [acme beta]", req)
	}
}

func TestRunnerCreateNeedsTeam(t *testing.T) {
	srv := startRunners(t, nil)
	deps, _, _ := testDeps(srv)
	err := runRunnerCreate(context.Background(), &RunnerCreateOptions{Deps: deps, Runner: "ci"})
	if lines, code := exitcode.Describe(err); code != exitcode.Usage || !strings.Contains(lines[0], "--team is required") {
		t.Errorf("got %d %q, want a usage error about --team", code, lines)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("got %d calls, want none", n)
	}
}

func TestRunnerList(t *testing.T) {
	ct := timestamppb.New(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))
	srv := startRunners(t, &ozfake.Runners{
		ListRunnersFunc: func(_ context.Context, r *scopev1.ListRunnersRequest) (*scopev1.ListRunnersResponse, error) {
			if r.GetPageToken() == "" {
				return &scopev1.ListRunnersResponse{Runners: []*scopev1.Runner{{Name: "runners/runner-a", RunnerId: "runner-a", Teams: []string{"acme"}, CreateTime: ct}}, NextPageToken: "n"}, nil
			}
			return &scopev1.ListRunnersResponse{Runners: []*scopev1.Runner{{Name: "runners/runner-b", Teams: []string{"beta", "gamma"}}}}, nil
		},
	})
	now := func() time.Time { return time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC) }
	deps, out, _ := testDeps(srv)
	deps.IO.StdoutTTY = true // on a terminal: times as people read them
	if err := runRunnerList(context.Background(), &RunnerListOptions{Deps: deps, Now: now, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	want := "NAME      TEAMS        CREATED\n" +
		"runner-a  acme         2026-01-02 03:04\n" +
		"runner-b  beta, gamma  -\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	deps, out, _ = testDeps(srv)
	if err := runRunnerList(context.Background(), &RunnerListOptions{Deps: deps, Now: now, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var items []runnerItem
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatal(err)
	}
	wantItems := []runnerItem{
		{Name: "runner-a", ResourceName: "runners/runner-a", Teams: []string{"acme"}, CreatedAt: "2026-01-02T03:04:00Z"},
		{Name: "runner-b", ResourceName: "runners/runner-b", Teams: []string{"beta", "gamma"}},
	}
	if len(items) != 2 || items[0].Name != wantItems[0].Name || items[0].CreatedAt != wantItems[0].CreatedAt || items[1].Name != wantItems[1].Name || !slices.Equal(items[1].Teams, wantItems[1].Teams) {
		t.Errorf("got %+v, want %+v", items, wantItems)
	}
}

func TestRunnerDelete(t *testing.T) {
	deleteOK := func(context.Context, *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error) {
		return &scopev1.DeleteRunnerResponse{}, nil
	}
	tests := []struct {
		name        string
		tty, force  bool
		answer      string
		wantCode    int
		wantDeleted bool
	}{
		{name: "Force", force: true, wantDeleted: true},
		{name: "NoTerminal", wantCode: exitcode.Usage},
		{name: "Yes", tty: true, answer: "yes", wantDeleted: true},
		{name: "No", tty: true, answer: "n", wantCode: exitcode.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRunners(t, &ozfake.Runners{DeleteRunnerFunc: deleteOK})
			deps, _, _ := testDeps(srv)
			deps.IO.StdinTTY = tt.tty
			p := &iostreams.ScriptedPrompter{Answers: []string{tt.answer}}
			deps.Prompter = p
			err := runRunnerDelete(context.Background(), &RunnerDeleteOptions{Deps: deps, Runner: "ci", Force: tt.force})
			if _, code := exitcode.Describe(err); code != tt.wantCode {
				t.Errorf("got exit code %d (%v), want %d", code, err, tt.wantCode)
			}
			calls := srv.CallsTo("DeleteRunner")
			if got := len(calls) == 1; got != tt.wantDeleted {
				t.Fatalf("got %d DeleteRunner calls, want deleted %v", len(calls), tt.wantDeleted)
			}
			if tt.wantDeleted && calls[0].Req.(*scopev1.DeleteRunnerRequest).GetName() != "runners/ci" {
				t.Errorf("got %v, want runners/ci", calls[0].Req)
			}
			if tt.tty && (len(p.Prompts) != 1 || p.Prompts[0] != "Delete runner ci and revoke its tokens? [y/N] ") {
				t.Errorf("got prompts %q", p.Prompts)
			}
		})
	}
}

func TestTokenCreateForAgent(t *testing.T) {
	tests := []struct {
		name       string
		team       string
		teams      []string // the caller's
		wantCode   int
		wantPrinc  string
		wantCaller bool
	}{
		{name: "ExplicitTeam", team: "acme", teams: []string{"acme", "beta"}, wantPrinc: "teams/acme/agents/deployer"},
		{name: "OnlyTeam", teams: []string{"beta"}, wantPrinc: "teams/beta/agents/deployer", wantCaller: true},
		{name: "SeveralTeams", teams: []string{"acme", "beta"}, wantCode: exitcode.Usage, wantCaller: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", tt.teams...)}, &ozfake.Tokens{
				CreateTokenFunc: func(_ context.Context, r *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
					return &scopev1.CreateTokenResponse{Token: &scopev1.Token{TokenId: "t1", Principal: r.GetPrincipal()}, BearerToken: "oz_agent_tok"}, nil
				},
			})
			deps, out, _ := testDeps(srv)
			err := runTokenCreate(context.Background(), &TokenCreateOptions{Deps: deps, User: "me", Agent: "deployer", Team: tt.team, Expires: time.Hour})
			if _, code := exitcode.Describe(err); code != tt.wantCode {
				t.Fatalf("got exit code %d (%v), want %d", code, err, tt.wantCode)
			}
			if got := len(srv.CallsTo("GetCaller")) > 0; got != tt.wantCaller {
				t.Errorf("got GetCaller called %v, want %v", got, tt.wantCaller)
			}
			if tt.wantCode != 0 {
				if n := len(srv.CallsTo("CreateToken")); n != 0 {
					t.Errorf("got %d CreateToken calls, want none", n)
				}
				return
			}
			req := only[*scopev1.CreateTokenRequest](t, srv, "CreateToken")
			if req.GetPrincipal() != tt.wantPrinc || req.GetTtl().AsDuration() != time.Hour {
				t.Errorf("got %v, want principal %s, ttl 1h", req, tt.wantPrinc)
			}
			if got := out.String(); got != "oz_agent_tok\n" {
				t.Errorf("got stdout %q, want only the token", got)
			}
		})
	}
}
