package runs_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/runs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// startFixture is the runs fixture with the principals that start runs:
// an agent token of deployer (whose start policy is admins), and
// integrations of acme — a Slack app, a scheduler allowed to run as
// deployer, and one that is not.
type startFixture struct {
	*runsFixture
	deployerTok, betaBotTok  context.Context
	slack, cron, cronNoAgent context.Context
	slackToken               string
}

func newStartFixture(t *testing.T) *startFixture {
	t.Helper()
	f := &startFixture{runsFixture: newRunsFixture(t)}
	_, agentTok, err := f.dir.CreateToken(f.sys, resolver.AgentPrincipal("acme", "deployer"), 0, "")
	check(t, err)
	f.deployerTok = f.login(t, agentTok)
	_, betaTok, err := f.dir.CreateToken(f.sys, resolver.AgentPrincipal("beta", "beta-bot"), 0, "")
	check(t, err)
	f.betaBotTok = f.login(t, betaTok)
	integration := func(id string, trigger resolver.Trigger, agents ...string) (context.Context, string) {
		_, tok, err := f.dir.CreateIntegration(f.alice, directory.Integration{Team: "acme", ID: id, Trigger: trigger, Agents: agents})
		check(t, err)
		return f.login(t, tok), tok
	}
	f.slack, f.slackToken = integration("slack", resolver.TriggerSlack)
	f.cron, _ = integration("cron", resolver.TriggerSchedule, "deployer")
	f.cronNoAgent, _ = integration("cron-plain", resolver.TriggerSchedule)
	return f
}

func (f *startFixture) start(ctx context.Context, rc runs.RunContext) (runs.Started, error) {
	return f.runs.StartRun(ctx, runs.StartRequest{Team: "acme", Context: rc})
}

// TestStartRunWho is DESIGN §3's rule for StartRun, caller by caller: a
// member for themselves (cli, web, api); an agent token as its identity
// (user-less); an integration with its trigger, for members who allowed
// it; an identity with start policy admins admits admins, its own tokens
// and integrations naming it. Everything else is PermissionDenied, and
// records nothing.
func TestStartRunWho(t *testing.T) {
	f := newStartFixture(t)
	cli := runs.RunContext{Trigger: resolver.TriggerCLI}
	with := func(rc runs.RunContext, mod func(*runs.RunContext)) runs.RunContext {
		mod(&rc)
		return rc
	}
	sched := runs.RunContext{Trigger: resolver.TriggerSchedule}
	tests := []struct {
		name      string
		ctx       context.Context
		rc        runs.RunContext
		wantErr   errs.Kind // 0: allowed
		wantUser  string
		wantAgent string
		wantBy    string
	}{
		// People.
		{"MemberForThemselves", f.bob, cli, 0, "users/bob", "default", "users/bob"},
		{"MemberNamesThemselves", f.bob, with(cli, func(rc *runs.RunContext) { rc.User = "bob" }), 0, "users/bob", "default", "users/bob"},
		{"MemberMe", f.bob, with(cli, func(rc *runs.RunContext) { rc.User = "users/me" }), 0, "users/bob", "default", "users/bob"},
		{"MemberWeb", f.bob, runs.RunContext{Trigger: resolver.TriggerWeb}, 0, "users/bob", "default", "users/bob"},
		{"MemberAPI", f.bob, runs.RunContext{Trigger: resolver.TriggerAPI}, 0, "users/bob", "default", "users/bob"},
		{"MemberForAnother", f.bob, with(cli, func(rc *runs.RunContext) { rc.User = "alice" }), errs.KindPermissionDenied, "", "", ""},
		{"MemberSlack", f.bob, runs.RunContext{Trigger: resolver.TriggerSlack}, errs.KindPermissionDenied, "", "", ""},
		{"MemberSchedule", f.bob, sched, errs.KindPermissionDenied, "", "", ""},
		{"MemberAsAdminsIdentity", f.bob, with(cli, func(rc *runs.RunContext) { rc.Agent = "deployer" }), errs.KindPermissionDenied, "", "", ""},
		{"AdminAsAdminsIdentity", f.alice, with(cli, func(rc *runs.RunContext) { rc.Agent = "deployer" }), 0, "users/alice", "deployer", "users/alice"},
		{"OtherTeamsAdmin", f.carol, cli, errs.KindPermissionDenied, "", "", ""},
		{"SystemAdminNotMember", f.sys, cli, errs.KindPermissionDenied, "", "", ""},
		// Agent identities' tokens.
		{"AgentTokenSchedule", f.deployerTok, sched, 0, "", "deployer", "teams/acme/agents/deployer"},
		{"AgentTokenIntegration", f.deployerTok, runs.RunContext{Trigger: resolver.TriggerIntegration}, 0, "", "deployer", "teams/acme/agents/deployer"},
		{"AgentTokenOtherIdentity", f.deployerTok, with(sched, func(rc *runs.RunContext) { rc.Agent = "default" }), errs.KindPermissionDenied, "", "", ""},
		{"AgentTokenUserTrigger", f.deployerTok, with(cli, func(rc *runs.RunContext) { rc.User = "alice" }), errs.KindPermissionDenied, "", "", ""},
		{"AgentTokenOtherTeam", f.betaBotTok, sched, errs.KindPermissionDenied, "", "", ""},
		// Integrations.
		{"SchedulerDefaultTrigger", f.cron, runs.RunContext{}, 0, "", "default", "teams/acme/integrations/cron"},
		{"SchedulerAsNamedIdentity", f.cron, runs.RunContext{Agent: "deployer"}, 0, "", "deployer", "teams/acme/integrations/cron"},
		{"SchedulerNotNamingIdentity", f.cronNoAgent, runs.RunContext{Agent: "deployer"}, errs.KindPermissionDenied, "", "", ""},
		{"SchedulerOtherTrigger", f.cron, runs.RunContext{Trigger: resolver.TriggerIntegration}, errs.KindPermissionDenied, "", "", ""},
		{"SchedulerWithUser", f.cron, runs.RunContext{User: "bob"}, errs.KindInvalid, "", "", ""},
		{"SlackNotAllowed", f.slack, runs.RunContext{User: "bob"}, errs.KindPermissionDenied, "", "", ""},
		// Runners redeem, never start.
		{"Runner", f.runnerA, sched, errs.KindPermissionDenied, "", "", ""},
		{"NoCaller", context.Background(), sched, errs.KindUnauthenticated, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := f.start(tt.ctx, tt.rc)
			if errs.KindOf(err) != tt.wantErr && !(tt.wantErr == 0 && err == nil) {
				t.Fatalf("got %v (kind %v), want kind %v", err, errs.KindOf(err), tt.wantErr)
			}
			if tt.wantErr != 0 {
				return
			}
			r := st.Run
			if r.Context.User != tt.wantUser || r.Agent != tt.wantAgent || r.StartedBy != tt.wantBy || r.State != runs.RunStarted {
				t.Errorf("started: user %q agent %q by %q state %v; want %q %q %q started", r.Context.User, r.Agent, r.StartedBy, r.State, tt.wantUser, tt.wantAgent, tt.wantBy)
			}
			if !strings.HasPrefix(st.Ticket, runs.TicketPrefix) || !r.TicketExpire.Equal(r.CreateTime.Add(runs.DefaultTicketTTL)) {
				t.Errorf("ticket of %d characters expiring %v (started %v)", len(st.Ticket), r.TicketExpire, r.CreateTime)
			}
		})
	}
}

// TestIntegrationAllowance: an integration starts a member's run only
// after the member allowed it, until they disallow it; the identity rule
// applies to the member it acts for; an integration made again under a
// deleted one's name starts with no allowances.
func TestIntegrationAllowance(t *testing.T) {
	f := newStartFixture(t)
	forBob := runs.RunContext{User: "bob"}
	if _, err := f.start(f.slack, forBob); errs.KindOf(err) != errs.KindPermissionDenied || !strings.Contains(err.Error(), "oz integration allow slack") {
		t.Fatalf("before bob allows slack: %v, want PermissionDenied saying how to allow it", err)
	}
	in, err := f.dir.AllowIntegration(f.bob, "acme", "slack", true)
	check(t, err)
	if !in.Allowed {
		t.Errorf("AllowIntegration: allowed = false")
	}
	st, err := f.start(f.slack, forBob)
	check(t, err)
	if st.Run.Context.Trigger != resolver.TriggerSlack || st.Run.Context.User != "users/bob" || st.Run.StartedBy != "teams/acme/integrations/slack" {
		t.Errorf("slack's run for bob: %+v", st.Run)
	}
	// bob's allowance is his: alice's runs stay refused, and deployer
	// (admins only) is refused for bob, a member.
	if _, err := f.start(f.slack, runs.RunContext{User: "alice"}); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("slack for alice, who did not allow it: %v", err)
	}
	if _, err := f.start(f.slack, runs.RunContext{User: "bob", Agent: "deployer"}); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("slack for bob as deployer: %v", err)
	}
	// bob sees it allowed; alice does not.
	list, _, err := f.dir.ListIntegrations(f.bob, "acme", resolver.Page{})
	check(t, err)
	for _, in := range list {
		if in.Allowed != (in.ID == "slack") {
			t.Errorf("bob's list: %s allowed = %v", in.ID, in.Allowed)
		}
	}
	if in, err := f.dir.GetIntegration(f.alice, "acme", "slack"); err != nil || in.Allowed {
		t.Errorf("alice's view of slack: %+v, %v", in, err)
	}
	// A non-member cannot allow it; a member cannot delete it.
	if _, err := f.dir.AllowIntegration(f.carol, "acme", "slack", true); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("carol allowing acme's slack: %v", err)
	}
	if err := f.dir.DeleteIntegration(f.bob, "acme", "slack"); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("bob deleting slack: %v", err)
	}
	// Disallowed: refused again.
	_, err = f.dir.AllowIntegration(f.bob, "acme", "slack", false)
	check(t, err)
	if _, err := f.start(f.slack, forBob); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("after bob disallowed slack: %v", err)
	}
	// Allowed, then the integration deleted and made again: its token is
	// revoked, and the new one has no allowance.
	_, err = f.dir.AllowIntegration(f.bob, "acme", "slack", true)
	check(t, err)
	check(t, f.dir.DeleteIntegration(f.alice, "acme", "slack"))
	if _, err := f.dir.Authenticate(context.Background(), f.slackToken); errs.KindOf(err) != errs.KindUnauthenticated {
		t.Errorf("the deleted integration's token: %v", err)
	}
	_, tok, err := f.dir.CreateIntegration(f.alice, directory.Integration{Team: "acme", ID: "slack", Trigger: resolver.TriggerSlack})
	check(t, err)
	if _, err := f.start(f.login(t, tok), forBob); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("a new slack integration under the old name, for bob: %v", err)
	}
}

// TestCreateIntegrationRefusals: bad fields name the field; only team
// admins create; identities named must exist.
func TestCreateIntegrationRefusals(t *testing.T) {
	f := newStartFixture(t)
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		in    directory.Integration
		kind  errs.Kind
		field string
	}{
		{"BadID", f.alice, directory.Integration{Team: "acme", ID: "Bad_ID", Trigger: resolver.TriggerSlack}, errs.KindInvalid, "integration_id"},
		{"PersonTrigger", f.alice, directory.Integration{Team: "acme", ID: "x", Trigger: resolver.TriggerCLI}, errs.KindInvalid, "trigger"},
		{"NoTrigger", f.alice, directory.Integration{Team: "acme", ID: "x"}, errs.KindInvalid, "trigger"},
		{"AgentsOnUserTrigger", f.alice, directory.Integration{Team: "acme", ID: "x", Trigger: resolver.TriggerSlack, Agents: []string{"deployer"}}, errs.KindInvalid, "agents"},
		{"MissingAgent", f.alice, directory.Integration{Team: "acme", ID: "x", Trigger: resolver.TriggerSchedule, Agents: []string{"ghost"}}, errs.KindNotFound, ""},
		{"Member", f.bob, directory.Integration{Team: "acme", ID: "x", Trigger: resolver.TriggerSchedule}, errs.KindPermissionDenied, ""},
		{"Exists", f.alice, directory.Integration{Team: "acme", ID: "cron", Trigger: resolver.TriggerSchedule}, errs.KindAlreadyExists, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.dir.CreateIntegration(tt.ctx, tt.in)
			wantKind(t, err, tt.kind)
			if tt.field != "" {
				wantField(t, err, tt.field)
			}
		})
	}
}

// TestStartPolicy: a new identity admits admins; members once its policy
// says so; the default identity's policy cannot change.
func TestStartPolicy(t *testing.T) {
	f := newStartFixture(t)
	a, err := f.runs.CreateAgent(f.alice, runs.Agent{Team: "acme", ID: "helper"})
	check(t, err)
	if a.StartPolicy != runs.StartPolicyAdmins {
		t.Errorf("a new identity's policy: %v, want admins", a.StartPolicy)
	}
	asHelper := runs.RunContext{Trigger: resolver.TriggerCLI, Agent: "helper"}
	if _, err := f.start(f.bob, asHelper); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("bob as helper (admins): %v", err)
	}
	members := runs.StartPolicyMembers
	a, err = f.runs.UpdateAgent(f.alice, "acme", "helper", runs.AgentUpdate{StartPolicy: &members})
	check(t, err)
	if a.StartPolicy != runs.StartPolicyMembers {
		t.Errorf("after the update: %v", a.StartPolicy)
	}
	if _, err := f.start(f.bob, asHelper); err != nil {
		t.Errorf("bob as helper (members): %v", err)
	}
	admins := runs.StartPolicyAdmins
	_, err = f.runs.UpdateAgent(f.alice, "acme", resolver.DefaultAgentID, runs.AgentUpdate{StartPolicy: &admins})
	wantField(t, err, "start_policy")
	if def, err := f.runs.GetAgent(f.bob, "acme", resolver.DefaultAgentID); err != nil || def.StartPolicy != runs.StartPolicyMembers {
		t.Errorf("the default identity: %v, %v", def.StartPolicy, err)
	}
}

// TestTicketLifetime: the TTL bounds, expiry, and a ticket that is never
// stored, nor echoed.
func TestTicketLifetime(t *testing.T) {
	f := newStartFixture(t)
	cli := runs.RunContext{Trigger: resolver.TriggerCLI}
	for _, ttl := range []time.Duration{-time.Second, runs.MaxTicketTTL + time.Second} {
		_, err := f.runs.StartRun(f.bob, runs.StartRequest{Team: "acme", Context: cli, TTL: ttl})
		wantField(t, err, "ttl")
	}
	st, err := f.runs.StartRun(f.bob, runs.StartRequest{Team: "acme", Context: cli, TTL: time.Minute, RunID: "run-short"})
	check(t, err)
	if !st.Run.TicketExpire.Equal(st.Run.CreateTime.Add(time.Minute)) {
		t.Errorf("expiry %v, want a minute after %v", st.Run.TicketExpire, st.Run.CreateTime)
	}
	f.clk.Advance(time.Minute - time.Nanosecond)
	_, err = f.runs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: st.Ticket, Recipient: new(f.recipient())})
	check(t, err)

	raw, err := os.ReadFile(f.dbPath)
	check(t, err)
	if bytes.Contains(raw, []byte(st.Ticket)) || bytes.Contains(raw, []byte(st.Ticket[len(st.Ticket)-43:])) {
		t.Errorf("the resolver's database holds a ticket")
	}
}

// TestRunLifecycle: started, resolved (in flight, and in the in-flight
// list), values flagged once rotated or deleted, ended by its runner
// only, once.
func TestRunLifecycle(t *testing.T) {
	f := newStartFixture(t)
	st, err := f.start(f.alice, runs.RunContext{Trigger: resolver.TriggerCLI, Secrets: []string{"DEPLOY_TOKEN", "OTHER_KEY", "GITHUB_TOKEN"}})
	check(t, err)
	id := st.Run.ID
	inFlight := func() []string {
		t.Helper()
		runs, _, err := f.runs.ListRuns(f.bob, "acme", runs.RunFilter{InFlight: true}, resolver.Page{})
		check(t, err)
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := inFlight(); len(got) != 0 {
		t.Errorf("in flight before resolution: %v", got)
	}
	res, err := f.runs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: st.Ticket, Recipient: new(f.recipient())})
	check(t, err)
	if res.Run.State != runs.RunResolved || res.Run.ResolveTime.IsZero() || res.Run.StartedBy != "users/alice" {
		t.Errorf("resolved run: %+v", res.Run)
	}
	if got := inFlight(); len(got) != 1 || got[0] != id {
		t.Errorf("in flight: %v, want [%s]", got, id)
	}
	states := func(viewer context.Context) map[string]runs.ValueState {
		t.Helper()
		run, err := f.runs.GetRun(viewer, "acme", id)
		check(t, err)
		out := map[string]runs.ValueState{}
		for _, s := range run.Injected {
			if s.Redacted {
				out["(redacted)"] = s.ValueState
				continue
			}
			out[s.Name] = s.ValueState
		}
		return out
	}
	if got := states(f.alice); got["DEPLOY_TOKEN"] != runs.ValueCurrent || got["GITHUB_TOKEN"] != runs.ValueCurrent {
		t.Errorf("value states at first: %v", got)
	}
	// Rotate DEPLOY_TOKEN, delete OTHER_KEY, delete and remake alice's
	// GITHUB_TOKEN (version 1 again).
	_, err = f.svc.Update(context.Background(), f.aliceP, secretstore.UpdateRequest{Name: "teams/acme/secrets/DEPLOY_TOKEN", Value: []byte(runCanary + "-rotated"), UpdateMask: []string{"value"}})
	check(t, err)
	check(t, f.svc.Delete(context.Background(), f.aliceP, secretstore.DeleteRequest{Name: "teams/acme/secrets/OTHER_KEY"}))
	check(t, f.svc.Delete(context.Background(), f.aliceP, secretstore.DeleteRequest{Name: "users/alice/secrets/GITHUB_TOKEN"}))
	f.plant(t, f.aliceP, "users/alice", "GITHUB_TOKEN", runValue("users/alice", "GITHUB_TOKEN")+"-2")
	got := states(f.alice)
	if got["DEPLOY_TOKEN"] != runs.ValueRotated || got["OTHER_KEY"] != runs.ValueDeleted || got["GITHUB_TOKEN"] != runs.ValueDeleted {
		t.Errorf("value states after the changes: %v", got)
	}
	// bob learns nothing of alice's personal secret, not even that it
	// changed.
	if got := states(f.bob); got["(redacted)"] != 0 {
		t.Errorf("bob sees the state of alice's redacted secret: %v", got)
	}
	run, err := f.runs.GetRun(f.bob, "acme", id)
	check(t, err)
	if !run.HoldsStaleValues {
		t.Errorf("the run does not say it holds stale values")
	}

	// Ended by its runner, once; not by another, nor a person.
	end := runs.RunEnd{ExitCode: 2, Duration: 3 * time.Second}
	if _, err := f.runs.EndRun(f.runnerB, "acme", id, end); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("EndRun by runner-b: %v", err)
	}
	if _, err := f.runs.EndRun(f.alice, "acme", id, end); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("EndRun by alice: %v", err)
	}
	other := auth.WithPrincipal(context.Background(), &auth.Principal{Kind: auth.KindRunner, Name: "runners/runner-c", ID: "runner-c", Teams: map[string]auth.Role{"acme": auth.RoleMember}})
	if _, err := f.runs.EndRun(other, "acme", id, end); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Errorf("EndRun by another runner of acme: %v", err)
	}
	for _, bad := range []runs.RunEnd{{ExitCode: 256}, {ExitCode: -1}, {Signal: 65}, {Duration: -time.Second}} {
		if _, err := f.runs.EndRun(f.runnerA, "acme", id, bad); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("EndRun %+v: %v, want invalid", bad, err)
		}
	}
	ended, err := f.runs.EndRun(f.runnerA, "acme", id, end)
	check(t, err)
	if ended.State != runs.RunEnded || ended.End == nil || ended.End.ExitCode != 2 || ended.End.Duration != 3*time.Second || ended.EndTime.IsZero() {
		t.Errorf("ended: %+v", ended)
	}
	if _, err := f.runs.EndRun(f.runnerA, "acme", id, end); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Errorf("EndRun twice: %v", err)
	}
	if got := inFlight(); len(got) != 0 {
		t.Errorf("in flight after the end: %v", got)
	}
	if run, err := f.runs.GetRun(f.bob, "acme", id); err != nil || run.State != runs.RunEnded || run.HoldsStaleValues {
		t.Errorf("the ended run: state %v stale %v (%v)", run.State, run.HoldsStaleValues, err)
	}
}

// TestStartRunEvent: a start is a run.start event in the team's chain,
// naming who started it and for whom, counting (not naming) the run's
// own list, never holding the ticket.
func TestStartRunEvent(t *testing.T) {
	f := newStartFixture(t)
	drain(t, f.dir)
	st, err := f.start(f.cron, runs.RunContext{Agent: "deployer", Secrets: []string{"RESTRICTED_KEY"}, Strict: true})
	check(t, err)
	evs := drain(t, f.dir)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	checkEvent(t, evs[0], wantEvent{action: "run.start", resource: st.Run.Name(), team: "acme", actor: "teams/acme/integrations/cron",
		kind: evs[0].GetActor().GetKind(), details: map[string]string{"agent": "deployer", "trigger": "schedule", "started_by": "teams/acme/integrations/cron",
			"run_list_count": "1", "strict": "true"}, absent: []string{"user", "RESTRICTED_KEY"}})
	if evs[0].GetRunId() != st.Run.ID || evs[0].GetActor().GetKind().String() != "ACTOR_KIND_INTEGRATION" {
		t.Errorf("run id %q, actor kind %v", evs[0].GetRunId(), evs[0].GetActor().GetKind())
	}
	canaries{st.Ticket}.check(t, evs)
}
