package runs_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// TestExplainAgreesWithResolve: for random identities, environments and
// run contexts, ExplainRun (as the triggering user) and ResolveRun decide
// the same for every name, the sealed values are exactly the injected
// ones, and an explanation for another member never names the triggering
// user's personal secrets.
func TestExplainAgreesWithResolve(t *testing.T) {
	f := newRunsFixture(t)
	ctx := context.Background()
	names := []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "OTHER_KEY", "RESTRICTED_KEY", "GITHUB_TOKEN", "ALICE_ONLY", "BOB_ONLY", "MISSING_KEY"}
	personalOnly := map[string]string{"alice": "ALICE_ONLY", "bob": "BOB_ONLY"}
	users := map[string]context.Context{"alice": f.alice, "bob": f.bob}
	other := map[string]context.Context{"alice": f.bob, "bob": f.alice}

	rapid.Check(t, func(rt *rapid.T) {
		for _, id := range []string{resolver.DefaultAgentID, "deployer", "reviewer"} {
			refs := rapid.SliceOfN(rapid.SampledFrom(names), 0, 2).Draw(rt, "refs-"+id)
			if err := runs.RunsTestPutAgent(ctx, f.store, "acme", id, refs); err != nil {
				rt.Fatal(err)
			}
		}
		envList := rapid.SliceOfN(rapid.SampledFrom(names), 0, 3).Draw(rt, "envList")
		if err := runs.RunsTestPutEnvironment(ctx, f.store, "acme", "prop-env", envList); err != nil {
			rt.Fatal(err)
		}
		rc := runs.RunContext{
			Trigger:     rapid.SampledFrom(resolver.Triggers).Draw(rt, "trigger"),
			Agent:       rapid.SampledFrom([]string{"", "default", "deployer", "reviewer"}).Draw(rt, "agent"),
			Environment: rapid.SampledFrom([]string{"", "prop-env", "ops-tools"}).Draw(rt, "environment"),
			Strict:      rapid.Bool().Draw(rt, "strict"),
		}
		user := ""
		if rc.Trigger.UserInitiated() {
			user = rapid.SampledFrom([]string{"alice", "bob"}).Draw(rt, "user")
			rc.User = rapid.SampledFrom([]string{user, "users/" + user}).Draw(rt, "userForm")
		}
		if rapid.Bool().Draw(rt, "hasRunList") {
			rc.Secrets = rapid.SliceOfN(rapid.SampledFrom(names), 0, 4).Draw(rt, "runList")
			if rc.Secrets == nil {
				rc.Secrets = []string{}
			}
		}

		explainer := f.bob
		if user != "" {
			explainer = users[user]
		}
		ex, err := f.runs.ExplainRun(explainer, "acme", rc)
		if err != nil {
			rt.Fatalf("ExplainRun: %v", err)
		}
		res, err := f.resolve(f.runnerA, "acme", rc, "")
		if err != nil {
			rt.Fatalf("ResolveRun: %v", err)
		}
		run := res.Run

		var explained []string
		for _, c := range ex.Candidates {
			if c.Decision == runrules.Injected {
				explained = append(explained, c.Owner+":"+c.Name)
			}
		}
		slices.Sort(explained)
		if got, want := unresolvedOf(run.Unresolved), unresolvedOf(ex.Unresolved); !slices.Equal(got, want) {
			rt.Fatalf("unresolved: ResolveRun %v, ExplainRun %v", got, want)
		}
		if run.AllowlistSource != ex.AllowlistSource || run.Agent != ex.Agent {
			rt.Fatalf("source/agent: ResolveRun %v/%s, ExplainRun %v/%s", run.AllowlistSource, run.Agent, ex.AllowlistSource, ex.Agent)
		}
		if ex.WouldFailStrict != (len(ex.Unresolved) > 0) {
			rt.Fatalf("would_fail_strict %v with %d unresolved", ex.WouldFailStrict, len(ex.Unresolved))
		}
		if rc.Strict && ex.WouldFailStrict {
			if run.Outcome != runs.OutcomeFailedStrict || res.Sealed != nil || len(run.Injected) != 0 {
				rt.Fatalf("strict run with unresolved references: outcome %v, sealed %v, injected %v", run.Outcome, res.Sealed != nil, injectedOf(run))
			}
		} else {
			if run.Outcome != runs.OutcomeResolved {
				rt.Fatalf("outcome %v", run.Outcome)
			}
			if got := injectedOf(run); !slices.Equal(got, explained) {
				rt.Fatalf("injected: ResolveRun %v, ExplainRun %v", got, explained)
			}
			want := map[string]string{}
			for _, s := range run.Injected {
				want[s.Name] = runValue(s.Owner, s.Name)
			}
			if got := f.open(rt, res); !maps.Equal(got, want) {
				rt.Fatalf("opened %v, want %v", keys(got), keys(want))
			}
		}
		// No personal secret reaches a user-less run.
		if user == "" {
			for _, s := range run.Injected {
				if s.Scope() == runrules.ScopePersonal {
					rt.Fatalf("user-less run received %s/%s", s.Owner, s.Name)
				}
			}
		}

		// Another member's view names none of the user's personal secrets.
		if user != "" {
			ex2, err := f.runs.ExplainRun(other[user], "acme", rc)
			if err != nil {
				rt.Fatalf("ExplainRun as another member: %v", err)
			}
			shown := fmt.Sprintf("%#v %q", ex2.Candidates, ex2.Notes)
			if strings.Contains(shown, personalOnly[user]) {
				rt.Fatalf("another member's explanation names %s's personal secrets: %s", user, shown)
			}
			for _, c := range ex2.Candidates {
				if c.Scope() == runrules.ScopePersonal {
					rt.Fatalf("another member sees personal candidate %s/%s", c.Owner, c.Name)
				}
			}
			// Others are shown the decision on the team's secrets alone:
			// what the user's personal secrets resolved is unresolved to
			// them, and nothing else differs.
			fromPersonal := map[string]bool{}
			for _, c := range ex.Candidates {
				if c.Scope() == runrules.ScopePersonal && c.Decision == runrules.Injected {
					fromPersonal[c.Name] = true
				}
			}
			var own []runs.UnresolvedReference
			for _, u := range ex2.Unresolved {
				if !fromPersonal[u.Name] {
					own = append(own, u)
				}
			}
			if got, want := unresolvedOf(own), unresolvedOf(ex.Unresolved); !slices.Equal(got, want) {
				rt.Fatalf("unresolved differ by viewer beyond the user's personal secrets: %v vs %v", got, want)
			}
			got, _, err := f.runs.ListRuns(other[user], "acme", runs.RunFilter{}, resolver.Page{Size: 1})
			if err != nil || len(got) != 1 || got[0].ID != run.ID {
				rt.Fatalf("ListRuns as another member: %v, %v", err, got)
			}
			if dump := fmt.Sprintf("%#v", got[0].Injected); strings.Contains(dump, personalOnly[user]) {
				rt.Fatalf("another member's run list names %s's personal secret: %s", user, dump)
			}
		}
		f.clk.Advance(1)
	})
}
