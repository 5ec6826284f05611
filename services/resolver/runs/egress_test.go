package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	rsgrpc "github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/runs"
	"github.com/ozsecrets/oz/services/secretstore"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
)

// bind binds secret name (a resource name) to b in the secretstore, as p.
func (f *runsFixture) bind(t testing.TB, p *auth.Principal, name string, b *hostbind.Binding) {
	t.Helper()
	if _, err := f.svc.Update(context.Background(), p, secretstore.UpdateRequest{Name: name, Binding: b, UpdateMask: []string{"binding"}}); err != nil {
		t.Fatalf("bind %s: %v", name, err)
	}
}

// bindings are the bindings of run's injected secrets by name ("" for
// a redacted one); an unbound secret maps to nil.
func bindings(run runs.Run) map[string]*hostbind.Binding {
	out := map[string]*hostbind.Binding{}
	for _, s := range run.Injected {
		out[s.Name] = s.Binding
	}
	return out
}

var (
	openaiBinding = &hostbind.Binding{Hosts: []string{"api.openai.com", "*.example.com"}, AllowQuery: true}
	aliceBinding  = &hostbind.Binding{Hosts: []string{"alice-private.example.org"}}
)

// TestBoundSecretInRunRecord: a host-bound secret's binding, as the
// secretstore lists it, is recorded with the run and returned by
// ResolveRun, GetRun and ListRuns; another user's personal secret shows
// nothing of its binding; the run.resolve event counts the bound team
// secrets and names no host.
func TestBoundSecretInRunRecord(t *testing.T) {
	f := newRunsFixture(t)
	f.bind(t, f.aliceP, "teams/acme/secrets/DEPLOY_TOKEN", openaiBinding)
	f.bind(t, f.aliceP, "users/alice/secrets/ALICE_ONLY", aliceBinding)
	drain(t, f.dir)

	res, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}, "bound-1")
	check(t, err)
	want := func(t *testing.T, what string, got map[string]*hostbind.Binding, personal bool) {
		t.Helper()
		if !got["DEPLOY_TOKEN"].Equal(openaiBinding) {
			t.Errorf("%s: DEPLOY_TOKEN bound %+v, want %+v", what, got["DEPLOY_TOKEN"], openaiBinding)
		}
		if _, ok := got["PAGERDUTY_API_KEY"]; !ok || got["PAGERDUTY_API_KEY"] != nil {
			t.Errorf("%s: PAGERDUTY_API_KEY bound %+v (injected %v), want injected unbound", what, got["PAGERDUTY_API_KEY"], ok)
		}
		if b, ok := got["ALICE_ONLY"]; ok != personal || (personal && !b.Equal(aliceBinding)) {
			t.Errorf("%s: ALICE_ONLY injected %v bound %+v; want injected %v", what, ok, b, personal)
		}
	}
	want(t, "ResolveRun", bindings(res.Run), true)
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		personal bool
	}{{"Alice", f.alice, true}, {"Bob", f.bob, false}, {"Runner", f.runnerA, false}} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := f.runs.GetRun(tc.ctx, "acme", "bound-1")
			check(t, err)
			want(t, "GetRun", bindings(run), tc.personal)
			list, _, err := f.runs.ListRuns(tc.ctx, "acme", runs.RunFilter{}, resolver.Page{})
			check(t, err)
			if len(list) != 1 {
				t.Fatalf("ListRuns: %d runs, want 1", len(list))
			}
			want(t, "ListRuns", bindings(list[0]), tc.personal)
			if !tc.personal && strings.Contains(fmt.Sprintf("%+v %+v", run, list), aliceBinding.Hosts[0]) {
				t.Errorf("the run as %s names a host of alice's personal secret", tc.name)
			}
		})
	}

	// Stored with the record; the event counts, names no host.
	raw, err := f.store.Get(context.Background(), resolver.RunKey("acme", "bound-1"))
	check(t, err)
	if !strings.Contains(string(raw), `"binding":{"hosts":["api.openai.com","*.example.com"],"allow_query":true}`) {
		t.Errorf("stored record: %s; want DEPLOY_TOKEN's binding", raw)
	}
	noCanary(t, "the run record", raw)
	var resolve *auditv1.Event
	for _, ev := range drain(t, f.dir) {
		if ev.GetAction() == "run.resolve" {
			resolve = ev
		}
	}
	if resolve == nil {
		t.Fatal("no run.resolve event")
	}
	if got := resolve.GetDetails()["bound_count"]; got != "1" {
		t.Errorf("run.resolve bound_count = %q, want 1 (DEPLOY_TOKEN; alice's personal secret is only counted as personal)", got)
	}
	for _, h := range slices.Concat(openaiBinding.Hosts, aliceBinding.Hosts) {
		if strings.Contains(fmt.Sprint(resolve.GetDetails()), h) {
			t.Errorf("run.resolve names host %s: %v", h, resolve.GetDetails())
		}
	}
}

// TestUnboundRecordsReadUnbound: a run of unbound secrets, and one ended
// without egress, is stored without either field, as records made before
// bindings were: such a record reads as unbound, with no egress.
func TestUnboundRecordsReadUnbound(t *testing.T) {
	f := newRunsFixture(t)
	res, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "plain-1")
	check(t, err)
	_, err = f.runs.EndRun(f.runnerA, "acme", res.Run.ID, runs.RunEnd{ExitCode: 0, Duration: time.Second})
	check(t, err)
	raw, err := f.store.Get(context.Background(), resolver.RunKey("acme", "plain-1"))
	check(t, err)
	if strings.Contains(string(raw), `"binding"`) || strings.Contains(string(raw), `"egress"`) {
		t.Errorf("stored record of an unbound run: %s; want neither binding nor egress", raw)
	}
	run, err := f.runs.GetRun(f.bob, "acme", "plain-1")
	check(t, err)
	for name, b := range bindings(run) {
		if b != nil {
			t.Errorf("%s bound %+v, want unbound", name, b)
		}
	}
	if run.End == nil || run.End.Egress != nil {
		t.Errorf("end %+v, want one without egress", run.End)
	}
}

// TestResolveRunBindingChangedBeforeSealing: a secret bound between the
// listing of the candidates and their sealing is refused by the
// secretstore as a rotated one is: the resolution lists and decides
// again, and records the binding the secret has when sealed.
func TestResolveRunBindingChangedBeforeSealing(t *testing.T) {
	f := newRunsFixture(t)
	hs := &hookStore{inner: &rotateOnce{SecretStore: rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)), rotate: func() {
		f.bind(t, f.aliceP, "teams/acme/secrets/DEPLOY_TOKEN", openaiBinding)
	}}}
	res, err := runs.RunsTestResolve(f.runnerA, runs.New(f.dir, hs), "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "", f.recipient())
	check(t, err)
	if hs.lists != 2 || hs.seals != 2 {
		t.Errorf("listed %d times, sealed %d times; want 2 and 2 (the first sealing refused)", hs.lists, hs.seals)
	}
	if got := bindings(res.Run)["DEPLOY_TOKEN"]; !got.Equal(openaiBinding) {
		t.Errorf("recorded DEPLOY_TOKEN bound %+v, want %+v", got, openaiBinding)
	}
}

// resolveInFlight resolves a run of acme with runner-a and returns its id.
func (f *runsFixture) resolveInFlight(t *testing.T, rs *runs.Service, id string) string {
	t.Helper()
	res, err := runs.RunsTestResolve(f.runnerA, rs, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, id, f.recipient())
	check(t, err)
	return res.Run.ID
}

// TestEndRunEgress: the per-host counts of a run's end are validated
// (each refusal names the field and changes nothing), stored with the
// record, returned by GetRun and ListRuns, and summed in the run.end
// event, which names no host.
func TestEndRunEgress(t *testing.T) {
	f := newRunsFixture(t)
	id := f.resolveInFlight(t, f.runs, "egress-1")
	many := make([]runs.EgressCount, runs.MaxEgressHosts+1)
	for i := range many {
		many[i].Host = fmt.Sprintf("h%d.example.com", i)
	}
	ok := runs.EgressCount{Host: "api.openai.com", Substitutions: 1}
	for _, tc := range []struct {
		name   string
		egress []runs.EgressCount
		field  string
	}{
		{"TooManyHosts", many, "egress"},
		{"EmptyHost", []runs.EgressCount{{Host: ""}}, "egress[0].host"},
		{"UpperCase", []runs.EgressCount{ok, {Host: "API.example.com"}}, "egress[1].host"},
		{"Port", []runs.EgressCount{{Host: "api.example.com:443"}}, "egress[0].host"},
		{"URL", []runs.EgressCount{{Host: "https://api.example.com/"}}, "egress[0].host"},
		{"TooLong", []runs.EgressCount{{Host: strings.Repeat("a", 250) + ".com"}}, "egress[0].host"},
		{"IPv6Zone", []runs.EgressCount{{Host: "fe80::1%eth0"}}, "egress[0].host"},
		{"IPv6UpperCase", []runs.EgressCount{{Host: "FE80::1"}}, "egress[0].host"},
		{"Duplicate", []runs.EgressCount{ok, {Host: "api.openai.com", Denials: 1}}, "egress[1].host"},
		{"NegativeSubstitutions", []runs.EgressCount{{Host: "a.example.com", Substitutions: -1}}, "egress[0].substitutions"},
		{"NegativeDenials", []runs.EgressCount{ok, {Host: "b.example.com", Denials: -3}}, "egress[1].denials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.runs.EndRun(f.runnerA, "acme", id, runs.RunEnd{Duration: time.Second, Egress: tc.egress})
			wantField(t, err, tc.field)
			run, err := f.runs.GetRun(f.bob, "acme", id)
			check(t, err)
			if run.State != runs.RunResolved || run.End != nil {
				t.Errorf("after the refusal: state %v end %+v, want still in flight", run.State, run.End)
			}
		})
	}

	drain(t, f.dir)
	egress := []runs.EgressCount{
		{Host: "api.openai.com", Substitutions: 12},
		{Host: "evil.example.net", Denials: 2},
		{Host: "10.0.0.7", Denials: 1},
		{Host: "::1", Substitutions: 0, Denials: 1},
		{Host: "x.metabase.example.com", Substitutions: 3, Denials: 0},
	}
	ended, err := f.runs.EndRun(f.runnerA, "acme", id, runs.RunEnd{ExitCode: 1, Duration: time.Second, Egress: egress})
	check(t, err)
	if !slices.Equal(ended.End.Egress, egress) {
		t.Errorf("EndRun: egress %+v, want %+v", ended.End.Egress, egress)
	}
	run, err := f.runs.GetRun(f.bob, "acme", id)
	check(t, err)
	if run.End == nil || !slices.Equal(run.End.Egress, egress) {
		t.Errorf("GetRun: end %+v, want egress %+v", run.End, egress)
	}
	list, _, err := f.runs.ListRuns(f.alice, "acme", runs.RunFilter{}, resolver.Page{})
	check(t, err)
	if len(list) != 1 || list[0].End == nil || !slices.Equal(list[0].End.Egress, egress) {
		t.Errorf("ListRuns: %+v, want the run with egress %+v", list, egress)
	}
	evs := drain(t, f.dir)
	if len(evs) != 1 {
		t.Fatalf("EndRun wrote %d events, want 1", len(evs))
	}
	checkEvent(t, evs[0], wantEvent{action: "run.end", resource: "teams/acme/runs/" + id, team: "acme", actor: "runners/runner-a",
		kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, details: map[string]string{"exit_code": "1", "egress_hosts": "5", "egress_substitutions": "15", "egress_denials": "4"}})
	if d := fmt.Sprint(evs[0].GetDetails()); strings.Contains(d, "evil.example.net") || strings.Contains(d, "api.openai.com") {
		t.Errorf("run.end names hosts: %s", d)
	}
}

// TestReportEgressDenials: each denial a runner reports is one
// run.egress_denied event (OUTCOME_DENIED, the runner as actor, the run's
// name and id), written with no change to any record; only the runner that
// resolved the run reports, only while it is in flight, 1 to 100 denials,
// each checked.
func TestReportEgressDenials(t *testing.T) {
	f := newRunsFixture(t)
	spy := newSpyStore(t, f.store)
	dir := directory.New(resolver.NewStore(spy, f.clk.Now))
	rs := runs.New(dir, rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)))
	id := f.resolveInFlight(t, rs, "denied-1")
	drain(t, dir)

	denials := []runs.EgressDenial{
		{Host: "evil.example.net", SecretName: "DEPLOY_TOKEN", Reason: "not bound to this host"},
		{Host: "10.1.2.3", Reason: "outside the run's egress allowlist"},
	}
	check(t, rs.ReportEgressDenials(f.runnerA, "acme", id, denials))
	evs := drain(t, dir)
	if len(evs) != len(denials) {
		t.Fatalf("got %d events, want %d", len(evs), len(denials))
	}
	for i, ev := range evs {
		w := wantEvent{action: "run.egress_denied", resource: "teams/acme/runs/" + id, team: "acme", actor: "runners/runner-a",
			kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, outcome: auditv1.Outcome_OUTCOME_DENIED,
			details: map[string]string{"host": denials[i].Host, "reason": denials[i].Reason}}
		if denials[i].SecretName != "" {
			w.details["secret_name"] = denials[i].SecretName
		} else {
			w.absent = []string{"secret_name"}
		}
		checkEvent(t, ev, w)
		if ev.GetRunId() != id {
			t.Errorf("event %d: run id %q, want %q", i, ev.GetRunId(), id)
		}
	}
	canaries{runCanary}.check(t, evs)
	// One Apply: the events and the run's count of reported denials.
	last := spy.applyWriting(resolver.RunDenialsKey("acme", id))
	if len(last) != len(denials)+1 {
		t.Errorf("the report's Apply wrote %d keys (%v), want its %d events and the count", len(last), last, len(denials))
	}
	for _, w := range last {
		if !strings.HasPrefix(w.Key, "outbox/") && w.Key != resolver.RunDenialsKey("acme", id) {
			t.Errorf("the report wrote %s, want events and the run's count only", w.Key)
		}
	}

	hundred := make([]runs.EgressDenial, runs.MaxEgressDenials)
	for i := range hundred {
		hundred[i] = runs.EgressDenial{Host: fmt.Sprintf("h%d.example.com", i), Reason: "outside the run's egress allowlist"}
	}
	check(t, rs.ReportEgressDenials(f.runnerA, "acme", id, hundred))
	if n := len(drain(t, dir)); n != runs.MaxEgressDenials {
		t.Errorf("100 denials: %d events, want 100", n)
	}

	// A run records at most MaxDenialsPerRun: 102 so far, then reports of
	// 100 up to the bound; the one past it is refused and records nothing.
	for reported := len(denials) + len(hundred); reported+len(hundred) <= runs.MaxDenialsPerRun; reported += len(hundred) {
		check(t, rs.ReportEgressDenials(f.runnerA, "acme", id, hundred))
	}
	drain(t, dir)
	err := rs.ReportEgressDenials(f.runnerA, "acme", id, hundred)
	if errs.KindOf(err) != errs.KindResourceExhausted {
		t.Errorf("a report past %d denials: %v, want ResourceExhausted", runs.MaxDenialsPerRun, err)
	}
	if n := len(drain(t, dir)); n != 0 {
		t.Errorf("the refused report wrote %d events", n)
	}

	good := denials[0]
	bad := func(mod func(d *runs.EgressDenial)) []runs.EgressDenial {
		d := good
		mod(&d)
		return []runs.EgressDenial{good, d}
	}
	for _, tc := range []struct {
		name    string
		denials []runs.EgressDenial
		field   string
	}{
		{"None", nil, "denials"},
		{"TooMany", append(slices.Clone(hundred), good), "denials"},
		{"EmptyHost", bad(func(d *runs.EgressDenial) { d.Host = "" }), "denials[1].host"},
		{"HostWithPort", bad(func(d *runs.EgressDenial) { d.Host = "evil.example.net:8443" }), "denials[1].host"},
		{"HostUpperCase", bad(func(d *runs.EgressDenial) { d.Host = "Evil.example.net" }), "denials[1].host"},
		{"SecretName", bad(func(d *runs.EgressDenial) { d.SecretName = "1NOT-A-NAME" }), "denials[1].secret_name"},
		{"NoReason", bad(func(d *runs.EgressDenial) { d.Reason = "" }), "denials[1].reason"},
		{"LongReason", bad(func(d *runs.EgressDenial) { d.Reason = strings.Repeat("é", runs.MaxDenialReason+1) }), "denials[1].reason"},
		{"ReasonNewline", bad(func(d *runs.EgressDenial) { d.Reason = "refused\nfake log line" }), "denials[1].reason"},
		{"ReasonEscape", bad(func(d *runs.EgressDenial) { d.Reason = "refused \x1b[2J" }), "denials[1].reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, rs.ReportEgressDenials(f.runnerA, "acme", id, tc.denials), tc.field)
			if n := backlog(t, dir); n != 0 {
				t.Errorf("a refused report wrote %d events", n)
			}
		})
	}
	if err := rs.ReportEgressDenials(f.runnerA, "acme", id, []runs.EgressDenial{{Host: "a.example.com", Reason: strings.Repeat("é", runs.MaxDenialReason)}}); err != nil {
		t.Errorf("a reason of %d characters: %v", runs.MaxDenialReason, err)
	}
	drain(t, dir)

	other := auth.WithPrincipal(context.Background(), &auth.Principal{Kind: auth.KindRunner, Name: "runners/runner-c", ID: "runner-c", Teams: map[string]auth.Role{"acme": auth.RoleMember}})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		team string
		id   string
		kind errs.Kind
	}{
		{"OtherTeamsRunner", f.runnerB, "acme", id, errs.KindPermissionDenied},
		{"OtherRunnerOfTeam", other, "acme", id, errs.KindPermissionDenied},
		{"Person", f.alice, "acme", id, errs.KindPermissionDenied},
		{"Agent", f.deployer, "acme", id, errs.KindPermissionDenied},
		{"UnknownRun", f.runnerA, "acme", "nope-1", errs.KindNotFound},
		{"BadRunID", f.runnerA, "acme", "Not A Run", errs.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := rs.ReportEgressDenials(tc.ctx, tc.team, tc.id, denials); errs.KindOf(err) != tc.kind {
				t.Errorf("got %v, want %v", err, tc.kind)
			}
			if n := backlog(t, dir); n != 0 {
				t.Errorf("a refused report wrote %d events", n)
			}
		})
	}

	// Not in flight: ended, or started and not resolved yet.
	_, err = rs.EndRun(f.runnerA, "acme", id, runs.RunEnd{Duration: time.Second})
	check(t, err)
	drain(t, dir)
	if err := rs.ReportEgressDenials(f.runnerA, "acme", id, denials); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Errorf("after the run ended: got %v, want FailedPrecondition", err)
	}
	if _, err := runs.RunsTestStart(f.runnerA, rs, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule}, "started-1"); err != nil {
		t.Fatal(err)
	}
	drain(t, dir)
	if err := rs.ReportEgressDenials(f.runnerA, "acme", "started-1", denials); errs.KindOf(err) != errs.KindPermissionDenied {
		// Nobody resolved it: no runner is its runner.
		t.Errorf("a run not resolved yet: got %v, want PermissionDenied", err)
	}
	if n := backlog(t, dir); n != 0 {
		t.Errorf("refused reports wrote %d events", n)
	}
}
