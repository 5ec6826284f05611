package run_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// inFlight is a run in flight, started by alice, whose DEPLOY_TOKEN was
// rotated and PAGER_KEY deleted since it received them.
func inFlight(name string, stale bool) *scopev1.Run {
	_, id, _ := strings.Cut(name, "/runs/")
	r := &scopev1.Run{
		Name: name, RunId: id,
		Context:    &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "users/alice"},
		Agent:      "default",
		ResolvedBy: "runners/runner-a",
		CreateTime: created, TicketExpireTime: expires, ResolveTime: resolved,
		Outcome:         scopev1.RunOutcome_RUN_OUTCOME_RESOLVED,
		AllowlistSource: scopev1.AllowlistSource_ALLOWLIST_SOURCE_NONE,
		State:           scopev1.RunState_RUN_STATE_RESOLVED,
		StartedBy:       "users/alice",
		Injected: []*scopev1.InjectedSecret{
			{SecretName: "DEPLOY_TOKEN", Scope: team, Owner: "teams/acme", ValueVersion: 3, ValueState: scopev1.InjectedValueState_INJECTED_VALUE_STATE_CURRENT},
			{SecretName: "PAGER_KEY", Scope: team, Owner: "teams/acme", ValueVersion: 1, ValueState: scopev1.InjectedValueState_INJECTED_VALUE_STATE_CURRENT},
		},
	}
	if stale {
		r.HoldsStaleValues = true
		r.Injected[0].ValueState = scopev1.InjectedValueState_INJECTED_VALUE_STATE_ROTATED
		r.Injected[1].ValueState = scopev1.InjectedValueState_INJECTED_VALUE_STATE_DELETED
	}
	return r
}

func startInFlight(t *testing.T) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Runs: &ozfake.Runs{
			ListRunsFunc: func(_ context.Context, r *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
				return &scopev1.ListRunsResponse{Runs: []*scopev1.Run{
					inFlight(r.GetParent()+"/runs/run-b", true),
					inFlight(r.GetParent()+"/runs/run-a", false),
				}}, nil
			},
			GetRunFunc: func(_ context.Context, r *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
				return &scopev1.GetRunResponse{Run: inFlight(r.GetName(), true)}, nil
			},
		},
	})
}

func TestListInFlight(t *testing.T) {
	srv := startInFlight(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "list", "--in-flight")
	want := strings.Join([]string{
		"ID     TIME                  STATE              TRIGGER  USER   AGENT    ENVIRONMENT  STARTED BY  INJECTED  UNRESOLVED  EXIT  DURATION",
		"run-b  2026-05-20T09:15:00Z  in flight (stale)  cli      alice  default  -            alice       2         0           -     -",
		"run-a  2026-05-20T09:15:00Z  in flight          cli      alice  default  -            alice       2         0           -     -",
	}, "\n") + "\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	req := ozrun.Only[*scopev1.ListRunsRequest](t, srv, "ListRuns")
	if !req.GetInFlight() || req.GetParent() != "teams/acme" {
		t.Errorf("got %v, want in_flight for teams/acme", req)
	}
	if r.Stderr != "" {
		t.Errorf("got stderr %q, want nothing (not a terminal)", r.Stderr)
	}

	// On a terminal the marker is explained, on stderr.
	r = ozrun.Run(t, srv, ozrun.Options{TTY: true}, "run", "list", "--in-flight")
	if !strings.Contains(r.Stderr, "(stale): in flight with a value rotated or deleted since") || !strings.Contains(r.Stdout, "2026-05-20 09:15  in flight") {
		t.Errorf("got stderr %q, stdout %q; want the stale marker explained, local times", r.Stderr, r.Stdout)
	}

	// Without --in-flight the request says nothing of it.
	srv = startInFlight(t)
	ozrun.Run(t, srv, ozrun.Options{}, "run", "list")
	if ozrun.Only[*scopev1.ListRunsRequest](t, srv, "ListRuns").GetInFlight() {
		t.Error("got in_flight without --in-flight")
	}
}

func TestListInFlightJSON(t *testing.T) {
	srv := startInFlight(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "list", "--in-flight", "-o", "json")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &recs); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	b := recs[0]
	if b["state"] != "in_flight" || b["holds_stale_values"] != true || b["started_by"] != "users/alice" || b["end"] != nil || b["ended_at"] != "" {
		t.Errorf("got %v, want in_flight, stale, started by alice, no end", b)
	}
	states := []any{}
	for _, in := range b["injected"].([]any) {
		states = append(states, in.(map[string]any)["value_state"])
	}
	if len(states) != 2 || states[0] != "rotated" || states[1] != "deleted" {
		t.Errorf("got value states %v, want [rotated deleted]", states)
	}
	if recs[1]["holds_stale_values"] != false {
		t.Errorf("got %v, want run-a not stale", recs[1])
	}
}

func TestShowInFlightMarksStaleSecrets(t *testing.T) {
	srv := startInFlight(t)
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "run", "show", "run-b")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s)", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"STATE           in flight (holds values rotated or deleted since: see Injected)\n",
		"STARTED BY      users/alice\n",
		"RESOLVED AT     2026-05-20 09:16\n",
		"ENDED AT        -\n",
		"EXIT CODE       -\n",
		"DURATION        -\n",
		"NAME          SCOPE  VERSION  NOTE\n" +
			"DEPLOY_TOKEN  team   3        rotated since\n" +
			"PAGER_KEY     team   1        deleted since\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("got\n%s\nwant %q in it", r.Stdout, want)
		}
	}
}

func TestReserved(t *testing.T) {
	reserved := &scopev1.UnresolvedReference{SecretName: "LD_PRELOAD", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_RESERVED}
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Runs: &ozfake.Runs{
			ExplainRunFunc: func(_ context.Context, r *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error) {
				return &scopev1.ExplainRunResponse{Explanation: &scopev1.Explanation{
					Context:         r.GetContext(),
					AllowlistSource: scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN,
					Allowlist:       []string{"LD_PRELOAD"},
					Candidates: []*scopev1.CandidateDecision{
						{SecretName: "LD_PRELOAD", Scope: team, Owner: "teams/acme", ValueVersion: 1, Decision: scopev1.Decision_DECISION_EXCLUDED_RESERVED},
					},
					Unresolved:      []*scopev1.UnresolvedReference{reserved},
					WouldFailStrict: true,
				}}, nil
			},
			GetRunFunc: func(_ context.Context, r *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
				run := record(r.GetName())
				run.Unresolved = []*scopev1.UnresolvedReference{reserved}
				return &scopev1.GetRunResponse{Run: run}, nil
			},
		},
	})
	r := ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "cli", "--secret", "LD_PRELOAD")
	for _, want := range []string{
		"LD_PRELOAD  team   excluded  its name is reserved: never injected\n",
		"LD_PRELOAD  reserved name: never injected  -\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("explain: got\n%s\nwant %q in it", r.Stdout, want)
		}
	}
	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "explain", "--trigger", "cli", "--secret", "LD_PRELOAD", "-o", "json")
	var ex struct {
		Candidates []struct{ Decision string }
		Unresolved []struct{ Reason string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ex); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(ex.Candidates) != 1 || ex.Candidates[0].Decision != "excluded_reserved" || len(ex.Unresolved) != 1 || ex.Unresolved[0].Reason != "reserved" {
		t.Errorf("got %+v, want excluded_reserved and reason reserved", ex)
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "run", "show", "run-7")
	if want := "LD_PRELOAD  reserved name: never injected  -\n"; !strings.Contains(r.Stdout, want) {
		t.Errorf("show: got\n%s\nwant %q in it", r.Stdout, want)
	}
}
