package runs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// TestOthersLearnNothingOfPersonalSecrets: for every reader but the
// triggering user, explanations and run records are the same whether or
// not the user has a personal secret of a name (DESIGN §5, step 4). Alice
// has personal GITHUB_TOKEN (the team has one too) and ALICE_ONLY (the
// team has none); the same runs are explained and resolved with them
// (world "has") and after she deleted them (world "has not"), and
// compared as bob (a member), a system admin and the runner read them.
func TestOthersLearnNothingOfPersonalSecrets(t *testing.T) {
	f := newRunsFixture(t)
	contexts := map[string]runs.RunContext{
		"NoAllowlist": {Trigger: resolver.TriggerCLI, User: "alice"},
		"Allowlist":   {Trigger: resolver.TriggerCLI, User: "alice", Secrets: []string{"GITHUB_TOKEN", "ALICE_ONLY", "DEPLOY_TOKEN"}},
		"Environment": {Trigger: resolver.TriggerCLI, User: "alice", Environment: "ops-tools"},
	}
	readers := map[string]context.Context{"Member": f.bob, "SystemAdmin": f.sys, "Runner": f.runnerA}
	// views are what each reader is shown, by context and reader; the
	// triggering user's own, by context.
	type world struct{ views, own map[string]string }
	look := func(name string) world {
		w := world{views: map[string]string{}, own: map[string]string{}}
		for cname, rc := range contexts {
			id := strings.ToLower("run-" + name + "-" + cname)
			_, err := f.resolve(f.runnerA, "acme", rc, id)
			check(t, err)
			for rname, ctx := range readers {
				run, err := f.runs.GetRun(ctx, "acme", id)
				check(t, err)
				w.views[cname+"/"+rname+"/record"] = recordView(run)
				if rname == "Runner" {
					continue // runners do not explain runs
				}
				ex, err := f.runs.ExplainRun(ctx, "acme", rc)
				check(t, err)
				w.views[cname+"/"+rname+"/explain"] = fmt.Sprintf("%#v", ex)
			}
			run, err := f.runs.GetRun(f.alice, "acme", id)
			check(t, err)
			ex, err := f.runs.ExplainRun(f.alice, "acme", rc)
			check(t, err)
			w.own[cname] = recordView(run) + fmt.Sprintf("%#v", ex)
		}
		return w
	}
	has := look("has")
	for _, n := range []string{"GITHUB_TOKEN", "ALICE_ONLY"} {
		if err := f.svc.Delete(context.Background(), f.aliceP, secretstore.DeleteRequest{Name: "users/alice/secrets/" + n}); err != nil {
			t.Fatal(err)
		}
	}
	hasNot := look("hasnot")
	for k, v := range has.views {
		if hasNot.views[k] != v {
			t.Errorf("%s differs with and without alice's personal secrets:\n has: %s\n has not: %s", k, v, hasNot.views[k])
		}
		if strings.Contains(v, "ALICE_ONLY\", Version") || strings.Contains(v, "users/alice/") || strings.Contains(v, "overrid") {
			t.Errorf("%s says something of alice's personal secrets: %s", k, v)
		}
	}
	// Alice herself is still told.
	for cname, v := range has.own {
		if v == hasNot.own[cname] || !strings.Contains(v, `Owner:"users/alice"`) {
			t.Errorf("%s: alice's own view does not show her personal secrets: %s", cname, v)
		}
	}
}

// recordView is run as a reader sees it, without what differs from one
// run to the next (its id and times).
func recordView(run runs.Run) string {
	run.ID = ""
	run.CreateTime, run.ResolveTime, run.TicketExpire, run.EndTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return fmt.Sprintf("%#v", run)
}
