package runrules_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/lib/envname"

	"github.com/ozsecrets/oz/services/internal/runrules"
)

var (
	// LD_PRELOAD and node_options are reserved (envname): secrets made
	// before their names were reserved, and legacy lists naming them.
	names  = []string{"A", "B", "C", "DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "LD_PRELOAD", "node_options"}
	owners = []string{"teams/t", "users/u1", "users/u2", "teams/other"}
	agents = []string{"default", "deployer", "reviewer"}
)

// genInput draws a random, validated run context.
func genInput(t *rapid.T) runrules.Input {
	in := runrules.Input{
		Team:  "teams/t",
		User:  rapid.SampledFrom([]string{"", "users/u1", "users/u2"}).Draw(t, "user"),
		Agent: rapid.SampledFrom(agents).Draw(t, "agent"),
	}
	for _, id := range agents {
		in.Identities = append(in.Identities, runrules.Identity{
			ID:          id,
			SecretNames: rapid.SliceOfN(rapid.SampledFrom(names), 0, 3).Draw(t, "refs-"+id),
		})
	}
	if rapid.Bool().Draw(t, "hasRunList") {
		in.RunList = rapid.SliceOfN(rapid.SampledFrom(append(names, "MISSING")), 0, 4).Draw(t, "runList")
		if in.RunList == nil {
			in.RunList = []string{}
		}
	}
	in.EnvList = rapid.SliceOfN(rapid.SampledFrom(append(names, "MISSING")), 0, 4).Draw(t, "envList")
	seen := map[[2]string]bool{}
	for _, s := range rapid.SliceOfN(rapid.Custom(func(t *rapid.T) runrules.Secret {
		return runrules.Secret{
			Owner:   rapid.SampledFrom(owners).Draw(t, "owner"),
			Name:    rapid.SampledFrom(names).Draw(t, "name"),
			Version: rapid.Int64Range(1, 5).Draw(t, "version"),
		}
	}), 0, 12).Draw(t, "secrets") {
		if k := [2]string{s.Owner, s.Name}; !seen[k] { // unique per owner
			seen[k] = true
			in.Candidates = append(in.Candidates, s)
		}
	}
	return in
}

func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		res := runrules.Decide(in)
		inj := res.Injected()

		refs := map[string][]string{}
		for _, id := range in.Identities {
			for _, n := range id.SecretNames {
				refs[n] = append(refs[n], id.ID)
			}
		}
		injectedNames := map[string]bool{}
		for _, c := range inj {
			// Names are unique in the injected set (they become env vars).
			if injectedNames[c.Name] {
				t.Fatalf("%s injected twice", c.Name)
			}
			injectedNames[c.Name] = true
			// A reserved name is never injected.
			if envname.IsReserved(c.Name) {
				t.Fatalf("reserved %s injected", c.Name)
			}
			// A user-less trigger never receives a personal secret.
			if in.User == "" && c.Scope() == runrules.ScopePersonal {
				t.Fatalf("user-less run received personal secret %v", c.Secret)
			}
			// No run receives another user's personal secret, or another team's.
			if c.Owner != in.Team && c.Owner != in.User {
				t.Fatalf("run of %s/%s received %v", in.Team, in.User, c.Secret)
			}
			// A restricted team secret reaches only runs of an identity that references it.
			if r, ok := refs[c.Name]; ok && c.Scope() == runrules.ScopeTeam && !slices.Contains(r, in.Agent) {
				t.Fatalf("restricted %s (refs %v) reached agent %s", c.Name, r, in.Agent)
			}
		}
		// injected ⊆ allowlist when there is one; an empty run list injects nothing.
		if res.Source != runrules.AllowlistNone {
			for n := range injectedNames {
				if !slices.Contains(res.Allowlist, n) {
					t.Fatalf("%s injected but not in allowlist %v", n, res.Allowlist)
				}
			}
		}
		if in.RunList != nil && len(in.RunList) == 0 && len(inj) != 0 {
			t.Fatalf("empty run list injected %v", inj)
		}
		// Every allowlisted name is injected or unresolved, never both.
		unresolved := map[string]bool{}
		for _, u := range res.Unresolved {
			unresolved[u.Name] = true
			if injectedNames[u.Name] {
				t.Fatalf("%s both injected and unresolved", u.Name)
			}
		}
		for _, n := range res.Allowlist {
			if !injectedNames[n] && !unresolved[n] {
				t.Fatalf("allowlisted %s neither injected nor unresolved", n)
			}
		}
		// A personal secret overrides a team secret of the same name.
		for _, c := range res.Candidates {
			if c.Scope() != runrules.ScopeTeam || c.Decision != runrules.ExcludedOverridden {
				continue
			}
			ok := false
			for _, p := range inj {
				if p.Name == c.Name && p.Scope() == runrules.ScopePersonal && p.OverridesTeam {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("team %s overridden but no personal secret injected in its place", c.Name)
			}
		}
		for _, p := range inj {
			if p.Scope() != runrules.ScopePersonal {
				continue
			}
			for _, c := range res.Candidates {
				if c.Name == p.Name && c.Scope() == runrules.ScopeTeam && c.Decision == runrules.Injected {
					t.Fatalf("both personal and team %s injected", p.Name)
				}
			}
		}
		// InjectedSecrets are the injected candidates, sorted by name.
		secs := res.InjectedSecrets()
		if len(secs) != len(inj) || !slices.IsSortedFunc(secs, func(a, b runrules.Secret) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("InjectedSecrets %v: want the %d injected, sorted by name", secs, len(inj))
		}
		for i, c := range inj {
			if !secs[i].Same(c.Secret) {
				t.Fatalf("InjectedSecrets[%d] = %v, want %v", i, secs[i], c.Secret)
			}
		}
		// Candidates come from the owners of Owners only.
		for _, c := range res.Candidates {
			if !slices.Contains(in.Owners(), c.Owner) {
				t.Fatalf("candidate %v not of owners %v", c.Secret, in.Owners())
			}
		}
	})
}

func TestDecideExamples(t *testing.T) {
	team := "teams/acme"
	s := func(owner, name string) runrules.Secret { return runrules.Secret{Owner: owner, Name: name, Version: 1} }
	tests := []struct {
		name           string
		in             runrules.Input
		wantInjected   []string // "owner:name"
		wantUnresolved []string // "name:reason"
	}{
		{
			name: "OpsToolsEnvironment",
			in: runrules.Input{Team: team, Agent: "default",
				EnvList:    []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY"},
				Candidates: []runrules.Secret{s(team, "DEPLOY_TOKEN"), s(team, "PAGERDUTY_API_KEY"), s(team, "OPENAI_API_KEY")}},
			wantInjected: []string{team + ":DEPLOY_TOKEN", team + ":PAGERDUTY_API_KEY"},
		},
		{
			name: "RunListNamesMissingSecret",
			in: runrules.Input{Team: team, Agent: "default", RunList: []string{"DEPLOY_TOKEN", "NOT_THERE"},
				Candidates: []runrules.Secret{s(team, "DEPLOY_TOKEN")}},
			wantInjected:   []string{team + ":DEPLOY_TOKEN"},
			wantUnresolved: []string{"NOT_THERE:1"},
		},
		{
			name: "RunListBeatsEnvironment",
			in: runrules.Input{Team: team, Agent: "default", RunList: []string{"A"}, EnvList: []string{"B"},
				Candidates: []runrules.Secret{s(team, "A"), s(team, "B")}},
			wantInjected: []string{team + ":A"},
		},
		{
			name: "EmptyRunListInjectsNothing",
			in: runrules.Input{Team: team, Agent: "default", RunList: []string{}, EnvList: []string{"A"},
				Candidates: []runrules.Secret{s(team, "A")}},
		},
		{
			name: "NoAllowlistInjectsEveryCandidate",
			in: runrules.Input{Team: team, User: "users/alice", Agent: "default",
				Candidates: []runrules.Secret{s(team, "A"), s("users/alice", "MINE"), s("users/bob", "BOBS")}},
			wantInjected: []string{team + ":A", "users/alice:MINE"},
		},
		{
			name: "RestrictedToAnotherIdentity",
			in: runrules.Input{Team: team, Agent: "default", RunList: []string{"PROD_DB"},
				Identities: []runrules.Identity{{ID: "deployer", SecretNames: []string{"PROD_DB"}}},
				Candidates: []runrules.Secret{s(team, "PROD_DB")}},
			wantUnresolved: []string{"PROD_DB:2"},
		},
		{
			name: "RestrictedReachesItsIdentity",
			in: runrules.Input{Team: team, Agent: "deployer",
				Identities: []runrules.Identity{{ID: "deployer", SecretNames: []string{"PROD_DB"}}},
				Candidates: []runrules.Secret{s(team, "PROD_DB"), s(team, "OTHER")}},
			wantInjected: []string{team + ":OTHER", team + ":PROD_DB"},
		},
		{
			name: "PersonalOverridesTeam",
			in: runrules.Input{Team: team, User: "users/alice", Agent: "default",
				Candidates: []runrules.Secret{s(team, "GITHUB_TOKEN"), s("users/alice", "GITHUB_TOKEN")}},
			wantInjected: []string{"users/alice:GITHUB_TOKEN"},
		},
		{
			name: "UserlessTriggerGetsNoPersonal",
			in: runrules.Input{Team: team, Agent: "default", RunList: []string{"GITHUB_TOKEN"},
				Candidates: []runrules.Secret{s("users/alice", "GITHUB_TOKEN")}},
			wantUnresolved: []string{"GITHUB_TOKEN:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runrules.Decide(tt.in)
			var inj, unres []string
			for _, c := range res.Injected() {
				inj = append(inj, c.Owner+":"+c.Name)
			}
			for _, u := range res.Unresolved {
				unres = append(unres, u.Name+":"+string(rune('0'+int(u.Reason))))
			}
			slices.Sort(inj)
			if !slices.Equal(inj, tt.wantInjected) {
				t.Errorf("injected: got %v, want %v", inj, tt.wantInjected)
			}
			if !slices.Equal(unres, tt.wantUnresolved) {
				t.Errorf("unresolved: got %v, want %v", unres, tt.wantUnresolved)
			}
		})
	}
}

// Reading only CandidateNames' secrets decides the same: what is injected,
// what is unresolved and why, as with every candidate read (the
// resolver reads by name when there is an allowlist, issue 19).
func TestCandidateNamesDecideTheSame(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		names := in.CandidateNames()
		if (names == nil) != (in.RunList == nil && len(in.EnvList) == 0) {
			t.Fatalf("CandidateNames = %v for run list %v and environment list %v", names, in.RunList, in.EnvList)
		}
		if names == nil {
			return // no allowlist: every candidate is read
		}
		full := runrules.Decide(in)
		named := in
		named.Candidates = nil
		for _, c := range in.Candidates {
			if slices.Contains(names, c.Name) {
				named.Candidates = append(named.Candidates, c)
			}
		}
		got := runrules.Decide(named)
		if !reflect.DeepEqual(got.Injected(), full.Injected()) {
			t.Fatalf("injected from the named candidates %v, from all %v", got.Injected(), full.Injected())
		}
		if !reflect.DeepEqual(got.Unresolved, full.Unresolved) {
			t.Fatalf("unresolved from the named candidates %v, from all %v", got.Unresolved, full.Unresolved)
		}
		if gw, fw := runrules.WithoutPersonal(named, got), runrules.WithoutPersonal(in, full); !reflect.DeepEqual(gw.Injected(), fw.Injected()) || !reflect.DeepEqual(gw.Unresolved, fw.Unresolved) {
			t.Fatalf("the view without personal secrets differs: %+v vs %+v", gw, fw)
		}
	})
}
