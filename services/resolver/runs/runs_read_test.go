package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

func decisionsOf(ex runs.Explanation) map[string]runrules.Decision {
	out := map[string]runrules.Decision{}
	for _, c := range ex.Candidates {
		out[c.Owner+":"+c.Name] = c.Decision
	}
	return out
}

func candidate(ex runs.Explanation, owner, name string) (runs.CandidateDecision, bool) {
	for _, c := range ex.Candidates {
		if c.Owner == owner && c.Name == name {
			return c, true
		}
	}
	return runs.CandidateDecision{}, false
}

func hasNote(ex runs.Explanation, sub string) bool {
	return slices.ContainsFunc(ex.Notes, func(n string) bool { return strings.Contains(n, sub) })
}

func TestExplainRun(t *testing.T) {
	f := newRunsFixture(t)

	t.Run("OpsToolsEnvironment", func(t *testing.T) {
		ex, err := f.runs.ExplainRun(f.bob, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"})
		check(t, err)
		want := map[string]runrules.Decision{
			acme + ":DEPLOY_TOKEN":      runrules.Injected,
			acme + ":PAGERDUTY_API_KEY": runrules.Injected,
			acme + ":OTHER_KEY":         runrules.ExcludedNotInAllowlist,
			acme + ":GITHUB_TOKEN":      runrules.ExcludedNotInAllowlist,
			acme + ":RESTRICTED_KEY":    runrules.ExcludedRestricted,
		}
		if got := decisionsOf(ex); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("decisions:\n got %v\nwant %v", got, want)
		}
		if c, _ := candidate(ex, acme, "OTHER_KEY"); !strings.Contains(c.Detail, `environment "ops-tools"`) {
			t.Errorf("OTHER_KEY detail: %q", c.Detail)
		}
		if c, _ := candidate(ex, acme, "RESTRICTED_KEY"); !strings.Contains(c.Detail, "restricted to agent identities: deployer") {
			t.Errorf("RESTRICTED_KEY detail: %q", c.Detail)
		}
		if got := unresolvedOf(ex.Unresolved); !slices.Equal(got, []string{"MISSING_KEY:not_found"}) {
			t.Errorf("unresolved: %v", got)
		}
		if !ex.WouldFailStrict || ex.AllowlistSource != runrules.AllowlistEnvironment || ex.Agent != "default" ||
			!slices.Equal(ex.Allowlist, []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "MISSING_KEY"}) {
			t.Errorf("explanation: %+v", ex)
		}
		if !hasNote(ex, "personal secrets are not given to user-less triggers (schedule)") {
			t.Errorf("notes: %q", ex.Notes)
		}
	})

	t.Run("AnotherUsersPersonalSecretsAreNeverNamed", func(t *testing.T) {
		rc := runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}
		for name, ctx := range map[string]context.Context{"Member": f.bob, "SystemAdmin": f.sys} {
			ex, err := f.runs.ExplainRun(ctx, "acme", rc)
			check(t, err)
			dump := fmt.Sprintf("%#v", ex)
			if strings.Contains(dump, "ALICE_ONLY") || strings.Contains(dump, `Owner:"users/alice"`) {
				t.Errorf("%s: the explanation names alice's personal secrets: %s", name, dump)
			}
			// Shown as if alice had no personal secrets: the team's
			// GITHUB_TOKEN is said to be injected, not overridden.
			c, ok := candidate(ex, acme, "GITHUB_TOKEN")
			if !ok || c.Decision != runrules.Injected || c.OverridesTeam || strings.Contains(dump, "overridden") {
				t.Errorf("%s: team GITHUB_TOKEN: %+v", name, c)
			}
			if !hasNote(ex, "personal secrets of the triggering user (users/alice) are candidates but are not shown") {
				t.Errorf("%s: notes: %q", name, ex.Notes)
			}
		}
	})

	t.Run("TheTriggeringUserSeesTheirs", func(t *testing.T) {
		ex, err := f.runs.ExplainRun(f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "users/alice", Secrets: []string{"GITHUB_TOKEN", "NOPE"}})
		check(t, err)
		want := map[string]runrules.Decision{
			alice + ":GITHUB_TOKEN":     runrules.Injected,
			alice + ":ALICE_ONLY":       runrules.ExcludedNotInAllowlist,
			acme + ":GITHUB_TOKEN":      runrules.ExcludedOverridden,
			acme + ":DEPLOY_TOKEN":      runrules.ExcludedNotInAllowlist,
			acme + ":PAGERDUTY_API_KEY": runrules.ExcludedNotInAllowlist,
			acme + ":OTHER_KEY":         runrules.ExcludedNotInAllowlist,
			acme + ":RESTRICTED_KEY":    runrules.ExcludedRestricted,
		}
		if got := decisionsOf(ex); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("decisions:\n got %v\nwant %v", got, want)
		}
		if c, _ := candidate(ex, alice, "GITHUB_TOKEN"); !strings.Contains(c.Detail, "takes the place of the team secret") {
			t.Errorf("personal GITHUB_TOKEN detail: %q", c.Detail)
		}
		if got := unresolvedOf(ex.Unresolved); !slices.Equal(got, []string{"NOPE:not_found"}) {
			t.Errorf("unresolved: %v", got)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		sched := runs.RunContext{Trigger: resolver.TriggerSchedule}
		tests := []struct {
			name string
			ctx  context.Context
			team string
			rc   runs.RunContext
			kind errs.Kind
		}{
			{"Runner", f.runnerA, "acme", sched, errs.KindPermissionDenied},
			{"Agent", f.deployer, "acme", sched, errs.KindPermissionDenied},
			{"OtherTeam", f.carol, "acme", sched, errs.KindPermissionDenied},
			{"OtherTeamMissingTeam", f.carol, "ghost", sched, errs.KindPermissionDenied},
			{"SystemAdminMissingTeam", f.sys, "ghost", sched, errs.KindNotFound},
			{"StartToken", f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice", StartToken: f.aliceToken}, errs.KindInvalid},
			{"UserNotInTeam", f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "carol"}, errs.KindPermissionDenied},
			{"UnknownIdentity", f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Agent: "ghost"}, errs.KindInvalid},
			{"NoUser", f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerWeb}, errs.KindInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.runs.ExplainRun(tt.ctx, tt.team, tt.rc)
				wantKind(t, err, tt.kind)
				if strings.Contains(err.Error(), f.aliceToken) {
					t.Errorf("error echoes the start token")
				}
			})
		}
	})
	if a, _ := f.runCount(t, "acme"); a != 0 {
		t.Errorf("ExplainRun recorded %d runs", a)
	}
}

// TestGetRunRedaction: another user's personal secrets are redacted for
// every reader but that user; permission comes before existence.
func TestGetRunRedaction(t *testing.T) {
	f := newRunsFixture(t)
	_, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}, "run-alice")
	check(t, err)

	for _, tt := range []struct {
		name     string
		ctx      context.Context
		redacted bool
	}{
		{"TriggeringUser", f.alice, false},
		{"Member", f.bob, true},
		{"SystemAdmin", f.sys, true},
		{"Runner", f.runnerA, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run, err := f.runs.GetRun(tt.ctx, "acme", "run-alice")
			check(t, err)
			var personal int
			for _, s := range run.Injected {
				if s.Scope() == runrules.ScopePersonal || s.Redacted || s.OverridesTeamSecret {
					personal++
				}
			}
			dump := fmt.Sprintf("%#v", run)
			// Others are shown the decision on the team's secrets alone:
			// no personal entry, not even redacted, and the team's
			// GITHUB_TOKEN that alice's overrode.
			if tt.redacted && (personal != 0 || strings.Contains(dump, "ALICE_ONLY") || !slices.Contains(injectedOf(run), acme+":GITHUB_TOKEN")) {
				t.Errorf("personal entries %d; record %s", personal, dump)
			}
			if !tt.redacted && (personal != 2 || !strings.Contains(dump, "ALICE_ONLY") || slices.Contains(injectedOf(run), acme+":GITHUB_TOKEN")) {
				t.Errorf("alice's own record: %d personal entries; record %s", personal, dump)
			}
			if run.Others != nil {
				t.Errorf("the record's view for others is returned as such")
			}
			if got := injectedOf(run); !slices.Contains(got, acme+":DEPLOY_TOKEN") {
				t.Errorf("team secrets: %v", got)
			}
		})
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		team string
		id   string
		kind errs.Kind
	}{
		{"OtherTeam", f.carol, "acme", "run-alice", errs.KindPermissionDenied},
		{"OtherTeamMissing", f.carol, "acme", "run-nope", errs.KindPermissionDenied},
		{"RunnerOfOtherTeam", f.runnerB, "acme", "run-alice", errs.KindPermissionDenied},
		{"Agent", f.deployer, "acme", "run-alice", errs.KindPermissionDenied},
		{"Missing", f.bob, "acme", "run-nope", errs.KindNotFound},
		{"BadID", f.bob, "acme", "Run", errs.KindInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.runs.GetRun(tt.ctx, tt.team, tt.id)
			wantKind(t, err, tt.kind)
		})
	}
}

func TestListRuns(t *testing.T) {
	f := newRunsFixture(t)
	start := f.clk.Now()
	type made struct {
		id string
		rc runs.RunContext
	}
	var all []made
	for i, rc := range []runs.RunContext{
		{Trigger: resolver.TriggerSchedule},
		{Trigger: resolver.TriggerCLI, User: "alice"},
		{Trigger: resolver.TriggerSchedule, Agent: "deployer"},
		{Trigger: resolver.TriggerAPI, User: "bob"},
		{Trigger: resolver.TriggerSchedule},
		{Trigger: resolver.TriggerSchedule, Agent: "deployer", Strict: true, Secrets: []string{"NOPE"}},
		{Trigger: resolver.TriggerCLI, User: "alice"},
	} {
		id := fmt.Sprintf("run-%d", i)
		if _, err := f.resolve(f.runnerA, "acme", rc, id); err != nil {
			t.Fatal(err)
		}
		all = append(all, made{id, rc})
		f.clk.Advance(time.Minute)
	}
	// runs i was created at start + i minutes; newest first.
	ids := func(rs []runs.Run) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	newest := func(keep func(i int, m made) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(i, all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name   string
		filter runs.RunFilter
		want   []string
	}{
		{"All", runs.RunFilter{}, newest(func(int, made) bool { return true })},
		{"Agent", runs.RunFilter{Agent: "deployer"}, newest(func(_ int, m made) bool { return m.rc.Agent == "deployer" })},
		{"DefaultAgent", runs.RunFilter{Agent: "default"}, newest(func(_ int, m made) bool { return m.rc.Agent == "" })},
		{"Trigger", runs.RunFilter{Trigger: resolver.TriggerSchedule}, newest(func(_ int, m made) bool { return m.rc.Trigger == resolver.TriggerSchedule })},
		{"TriggerAndAgent", runs.RunFilter{Trigger: resolver.TriggerSchedule, Agent: "default"},
			newest(func(_ int, m made) bool { return m.rc.Trigger == resolver.TriggerSchedule && m.rc.Agent == "" })},
		{"StartInclusive", runs.RunFilter{Start: at(2)}, newest(func(i int, _ made) bool { return i >= 2 })},
		{"EndExclusive", runs.RunFilter{End: at(4)}, newest(func(i int, _ made) bool { return i < 4 })},
		{"Window", runs.RunFilter{Start: at(1), End: at(5), Trigger: resolver.TriggerSchedule},
			newest(func(i int, m made) bool { return i >= 1 && i < 5 && m.rc.Trigger == resolver.TriggerSchedule })},
		{"EmptyWindow", runs.RunFilter{Start: at(3), End: at(3)}, nil},
		{"NoMatch", runs.RunFilter{Agent: "ghost"}, nil},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 2, 3} {
			t.Run(fmt.Sprintf("%s/PageSize%d", tt.name, size), func(t *testing.T) {
				var got []string
				page := resolver.Page{Size: size}
				for range 20 {
					rs, next, err := f.runs.ListRuns(f.bob, "acme", tt.filter, page)
					check(t, err)
					if size > 0 && len(rs) > size {
						t.Fatalf("page of %d runs, size %d", len(rs), size)
					}
					got = append(got, ids(rs)...)
					if next == "" {
						break
					}
					page.Token = next
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	}

	t.Run("Redacted", func(t *testing.T) {
		rs, _, err := f.runs.ListRuns(f.bob, "acme", runs.RunFilter{}, resolver.Page{})
		check(t, err)
		if dump := fmt.Sprintf("%#v", rs); strings.Contains(dump, "ALICE_ONLY") || strings.Contains(dump, "users/alice/") || strings.Contains(dump, "Redacted:true") {
			t.Errorf("bob's list says something of alice's personal secrets")
		}
	})
	t.Run("Refusals", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			ctx    context.Context
			team   string
			filter runs.RunFilter
			page   resolver.Page
			kind   errs.Kind
		}{
			{"OtherTeam", f.carol, "acme", runs.RunFilter{}, resolver.Page{}, errs.KindPermissionDenied},
			{"Agent", f.deployer, "acme", runs.RunFilter{}, resolver.Page{}, errs.KindPermissionDenied},
			{"RunnerOfOtherTeam", f.runnerB, "acme", runs.RunFilter{}, resolver.Page{}, errs.KindPermissionDenied},
			{"MissingTeam", f.sys, "ghost", runs.RunFilter{}, resolver.Page{}, errs.KindNotFound},
			{"BadAgent", f.bob, "acme", runs.RunFilter{Agent: "Bad"}, resolver.Page{}, errs.KindInvalid},
			{"BadTrigger", f.bob, "acme", runs.RunFilter{Trigger: 42}, resolver.Page{}, errs.KindInvalid},
			{"EndBeforeStart", f.bob, "acme", runs.RunFilter{Start: at(2), End: at(1)}, resolver.Page{}, errs.KindInvalid},
			{"BadToken", f.bob, "acme", runs.RunFilter{}, resolver.Page{Token: "bm9wZQ"}, errs.KindInvalid},
			{"NegativeSize", f.bob, "acme", runs.RunFilter{}, resolver.Page{Size: -1}, errs.KindInvalid},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, _, err := f.runs.ListRuns(tt.ctx, tt.team, tt.filter, tt.page)
				wantKind(t, err, tt.kind)
			})
		}
	})
	t.Run("RunnerOfTheTeam", func(t *testing.T) {
		rs, _, err := f.runs.ListRuns(f.runnerA, "acme", runs.RunFilter{}, resolver.Page{})
		check(t, err)
		if len(rs) != len(all) {
			t.Errorf("got %d runs, want %d", len(rs), len(all))
		}
	})
	t.Run("OtherTeamsRunsAreSeparate", func(t *testing.T) {
		rs, next, err := f.runs.ListRuns(f.carol, "beta", runs.RunFilter{}, resolver.Page{})
		check(t, err)
		if len(rs) != 0 || next != "" {
			t.Errorf("beta: got %d runs", len(rs))
		}
	})
}
