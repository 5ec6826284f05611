package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/secretstore"
)

// TestRunServiceHostBound: over gRPC, with the secretstore's
// RunSecretsService on its own listener, a host-bound secret's binding
// reaches the run's record (ResolveRun, GetRun); the runner reports the
// requests its egress proxy refused (ReportEgressDenials, audited as
// run.egress_denied) while the run is in flight, and its per-host counts
// with its end (EndRun.egress, returned by GetRun).
func TestRunServiceHostBound(t *testing.T) {
	e := newRunsEnv(t)
	want := &secretsv1.HostBinding{Hosts: []string{"api.openai.com", "*.example.com"}, AllowBody: true}
	if _, err := e.svc.Update(context.Background(), e.principals["alice"], secretstore.UpdateRequest{
		Name: "teams/acme/secrets/DEPLOY_TOKEN", Binding: hostbind.FromProto(want), UpdateMask: []string{"binding"}}); err != nil {
		t.Fatal(err)
	}
	c := e.runsClient(t, e.addr)
	priv := runnerKey(t)
	ticket := e.start(t, c, e.tokens["cron"], &scopev1.RunContext{Environment: "ops-tools"}, "run-bound-1")
	resp, err := c.ResolveRun(withToken(t, runnerAToken), &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: recipientOf(priv)})
	if err != nil {
		t.Fatal(err)
	}
	bound := func(r *scopev1.Run) map[string]*secretsv1.HostBinding {
		out := map[string]*secretsv1.HostBinding{}
		for _, s := range r.GetInjected() {
			out[s.GetSecretName()] = s.GetBinding()
		}
		return out
	}
	get := func() *scopev1.Run {
		t.Helper()
		got, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/run-bound-1"})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetRun()
	}
	for what, r := range map[string]*scopev1.Run{"ResolveRun": resp.GetRun(), "GetRun": get()} {
		b := bound(r)
		if !proto.Equal(b["DEPLOY_TOKEN"], want) || b["PAGERDUTY_API_KEY"] != nil {
			t.Errorf("%s: bindings %v, want DEPLOY_TOKEN's %v and none for PAGERDUTY_API_KEY", what, b, want)
		}
	}

	// ExplainRun says the same of the candidates, before any run.
	ex, err := c.ExplainRun(withToken(t, e.tokens["bob"]), &scopev1.ExplainRunRequest{Parent: "teams/acme",
		Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE, Environment: "ops-tools"}})
	if err != nil {
		t.Fatal(err)
	}
	explained := map[string]*secretsv1.HostBinding{}
	for _, cd := range ex.GetExplanation().GetCandidates() {
		explained[cd.GetSecretName()] = cd.GetBinding()
	}
	if !proto.Equal(explained["DEPLOY_TOKEN"], want) || explained["PAGERDUTY_API_KEY"] != nil {
		t.Errorf("ExplainRun: bindings %v, want DEPLOY_TOKEN's %v and none for PAGERDUTY_API_KEY", explained, want)
	}

	name := "teams/acme/runs/run-bound-1"
	denial := &scopev1.EgressDenial{Host: "evil.example.net", SecretName: "DEPLOY_TOKEN", Reason: "not bound to this host"}
	many := make([]*scopev1.EgressDenial, 101)
	for i := range many {
		many[i] = denial
	}
	for _, tc := range []struct {
		name  string
		token string
		req   *scopev1.ReportEgressDenialsRequest
		code  codes.Code
		field string
	}{
		{"OtherTeamsRunner", runnerBToken, &scopev1.ReportEgressDenialsRequest{Name: name, Denials: []*scopev1.EgressDenial{denial}}, codes.PermissionDenied, ""},
		{"Person", e.tokens["alice"], &scopev1.ReportEgressDenialsRequest{Name: name, Denials: []*scopev1.EgressDenial{denial}}, codes.PermissionDenied, ""},
		{"NoDenials", runnerAToken, &scopev1.ReportEgressDenialsRequest{Name: name}, codes.InvalidArgument, "denials"},
		{"TooMany", runnerAToken, &scopev1.ReportEgressDenialsRequest{Name: name, Denials: many}, codes.InvalidArgument, "denials"},
		{"BadHost", runnerAToken, &scopev1.ReportEgressDenialsRequest{Name: name, Denials: []*scopev1.EgressDenial{{Host: "Evil.example.net:443", Reason: "x"}}}, codes.InvalidArgument, "denials[0].host"},
		{"BadName", runnerAToken, &scopev1.ReportEgressDenialsRequest{Name: "teams/acme/run-bound-1", Denials: []*scopev1.EgressDenial{denial}}, codes.InvalidArgument, "name"},
		{"UnknownRun", runnerAToken, &scopev1.ReportEgressDenialsRequest{Name: "teams/acme/runs/nope", Denials: []*scopev1.EgressDenial{denial}}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ReportEgressDenials(withToken(t, tc.token), tc.req)
			if status.Code(err) != tc.code || fieldOf(err) != tc.field {
				t.Errorf("got %v (field %q), want %v (field %q)", err, fieldOf(err), tc.code, tc.field)
			}
		})
	}
	// Sent twice under one idempotency key (a client's retry after a lost
	// answer): answered twice, recorded once.
	for range 2 {
		if _, err := c.ReportEgressDenials(withKey(t, runnerAToken, "denials-1"), &scopev1.ReportEgressDenialsRequest{Name: name, Denials: []*scopev1.EgressDenial{denial}}); err != nil {
			t.Fatalf("ReportEgressDenials: %v", err)
		}
	}
	denied := egressEvents(t, e)
	if len(denied) != 1 {
		t.Fatalf("got %d run.egress_denied events, want 1 (refused reports write none, a retried one is not recorded again)", len(denied))
	}
	if ev := denied[0]; ev.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED || ev.GetResource() != name || ev.GetRunId() != "run-bound-1" ||
		ev.GetDetails()["host"] != "evil.example.net" || ev.GetDetails()["secret_name"] != "DEPLOY_TOKEN" || ev.GetActor().GetName() != "runners/runner-a" {
		t.Errorf("run.egress_denied event: %v", ev)
	}

	// The end, with its egress counts.
	egress := []*scopev1.EgressCount{{Host: "api.openai.com", Substitutions: 4}, {Host: "evil.example.net", Denials: 3}}
	end := &scopev1.EndRunRequest{Name: name, Duration: durationpb.New(time.Second), Egress: []*scopev1.EgressCount{egress[0], {Host: "API.openai.com"}}}
	if _, err := c.EndRun(withToken(t, runnerAToken), end); status.Code(err) != codes.InvalidArgument || fieldOf(err) != "egress[1].host" {
		t.Errorf("EndRun with an upper-case host: %v (field %q), want InvalidArgument for egress[1].host", err, fieldOf(err))
	}
	end.Egress = egress
	ended, err := c.EndRun(withToken(t, runnerAToken), end)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]*scopev1.Run{"EndRun": ended.GetRun(), "GetRun": get()} {
		if got := r.GetEnd().GetEgress(); len(got) != len(egress) || !proto.Equal(got[0], egress[0]) || !proto.Equal(got[1], egress[1]) {
			t.Errorf("%s: egress %v, want %v", what, got, egress)
		}
	}
	if _, err := c.ReportEgressDenials(withToken(t, runnerAToken), &scopev1.ReportEgressDenialsRequest{Name: name, Denials: []*scopev1.EgressDenial{denial}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ReportEgressDenials after the end: %v, want FailedPrecondition", err)
	}
	if n := len(egressEvents(t, e)); n != 1 {
		t.Errorf("got %d run.egress_denied events after the end, want still 1", n)
	}
	if out := e.logs.String() + fmt.Sprint(resp, ended); strings.Contains(out, runsCanary) {
		t.Fatalf("a planted value appeared: %s", out)
	}
}

// egressEvents are the run.egress_denied events in the resolver's outbox.
func egressEvents(t *testing.T, e *runsEnv) []*auditv1.Event {
	t.Helper()
	evs, err := e.dir.Store().Outbox().Pending(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*auditv1.Event
	for _, ev := range evs {
		if ev.GetAction() == "run.egress_denied" {
			out = append(out, ev)
		}
	}
	return out
}
