package runs_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// TestRunsWithDirectoryPrincipals resolves runs with the Directory's own
// runners, identities, environments and tokens: a runner token resolves
// its teams only; an identity's token makes the run execute as it, until
// the identity is deleted, which also lifts its restrictions.
func TestRunsWithDirectoryPrincipals(t *testing.T) {
	f := newRunsFixture(t)
	_, runnerTok, err := f.dir.CreateRunner(f.sys, "r1", []string{"acme"})
	check(t, err)
	runner := f.login(t, runnerTok)
	if p := auth.PrincipalFrom(runner); p.Kind != auth.KindRunner || p.Name != "runners/r1" {
		t.Fatalf("runner principal: %+v", p)
	}
	_, betaTok, err := f.dir.CreateRunner(f.sys, "r2", []string{"beta"})
	check(t, err)

	_, err = f.runs.CreateAgent(f.alice, runs.Agent{Team: "acme", ID: "reviewer", SecretNames: []string{"OTHER_KEY"}})
	check(t, err)
	_, err = f.runs.CreateEnvironment(f.alice, runs.Environment{Team: "acme", ID: "review", SecretNames: []string{"OTHER_KEY", "DEPLOY_TOKEN"}})
	check(t, err)
	_, agentTok, err := f.dir.CreateToken(f.alice, resolver.AgentPrincipal("acme", "reviewer"), 0, "")
	check(t, err)

	review := runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "review"}
	res, err := f.resolve(runner, "acme", review, "")
	check(t, err)
	if got := injectedOf(res.Run); !slices.Equal(got, []string{acme + ":DEPLOY_TOKEN"}) || res.Run.ResolvedBy != "runners/r1" {
		t.Errorf("as default: injected %v by %s", got, res.Run.ResolvedBy)
	}
	if got := unresolvedOf(res.Run.Unresolved); !slices.Equal(got, []string{"OTHER_KEY:restricted"}) {
		t.Errorf("as default: unresolved %v", got)
	}

	// The identity's own token starts runs executing as it.
	reviewer := f.login(t, agentTok)
	st, err := f.runs.StartRun(reviewer, runs.StartRequest{Team: "acme", Context: review})
	check(t, err)
	res, err = f.runs.ResolveRun(runner, runs.ResolveRequest{Team: "acme", Ticket: st.Ticket, Recipient: new(f.recipient())})
	check(t, err)
	if got := injectedOf(res.Run); res.Run.Agent != "reviewer" || res.Run.StartedBy != "teams/acme/agents/reviewer" || !slices.Equal(got, []string{acme + ":DEPLOY_TOKEN", acme + ":OTHER_KEY"}) {
		t.Errorf("started by reviewer's token: agent %q, by %q, injected %v", res.Run.Agent, res.Run.StartedBy, got)
	}

	_, err = f.resolve(f.login(t, betaTok), "acme", review, "")
	wantKind(t, err, errs.KindPermissionDenied)

	// A ticket issued before the identity was deleted resolves no more.
	st, err = f.runs.StartRun(reviewer, runs.StartRequest{Team: "acme", Context: review})
	check(t, err)
	check(t, f.runs.DeleteAgent(f.alice, "acme", "reviewer", ""))
	_, err = f.runs.ResolveRun(runner, runs.ResolveRequest{Team: "acme", Ticket: st.Ticket, Recipient: new(f.recipient())})
	wantField(t, err, "context.agent")
	// Nor does its token start runs.
	if _, err := f.dir.Authenticate(context.Background(), agentTok); errs.KindOf(err) != errs.KindUnauthenticated {
		t.Errorf("the deleted identity's token: %v, want unauthenticated", err)
	}
	res, err = f.resolve(runner, "acme", review, "")
	check(t, err)
	if got := injectedOf(res.Run); !slices.Equal(got, []string{acme + ":DEPLOY_TOKEN", acme + ":OTHER_KEY"}) {
		t.Errorf("after the identity is deleted: injected %v", got)
	}
}
