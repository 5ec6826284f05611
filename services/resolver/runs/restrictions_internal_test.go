package runs

import (
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/services/internal/runrules"
)

// TestRestrictionsForNamesDecideTheSame: a resolution with an allowlist
// reads the restrictions of its names alone (the index entries of those
// names, grouped by identitiesOf) and those names' candidates; it decides
// the same injected and unresolved secrets, and the same fate for every
// allowlisted candidate, as the decision on every identity and every
// candidate — also in the view without personal secrets.
func TestRestrictionsForNamesDecideTheSame(t *testing.T) {
	names := []string{"A", "B", "C", "D", "E"}
	agents := []string{"default", "x", "y", "z"}
	rapid.Check(t, func(t *rapid.T) {
		in := runrules.Input{
			Team:  "teams/acme",
			User:  rapid.SampledFrom([]string{"", "users/u1"}).Draw(t, "user"),
			Agent: rapid.SampledFrom(agents).Draw(t, "agent"),
		}
		for _, id := range agents {
			if rapid.Bool().Draw(t, "has-"+id) {
				in.Identities = append(in.Identities, runrules.Identity{ID: id,
					SecretNames: rapid.SliceOfN(rapid.SampledFrom(names), 0, 4).Draw(t, "refs-"+id)})
			}
		}
		if rapid.Bool().Draw(t, "hasRunList") {
			in.RunList = rapid.SliceOfN(rapid.SampledFrom(append(names, "MISSING")), 0, 4).Draw(t, "runList")
		}
		in.EnvList = rapid.SliceOfN(rapid.SampledFrom(append(names, "MISSING")), 0, 4).Draw(t, "envList")
		for i := range rapid.IntRange(0, 8).Draw(t, "candidates") {
			in.Candidates = append(in.Candidates, runrules.Secret{
				Owner: rapid.SampledFrom([]string{"teams/acme", "users/u1"}).Draw(t, "owner"),
				Name:  rapid.SampledFrom(names).Draw(t, "name"), Version: int64(i + 1),
			})
		}
		listed := in.CandidateNames()
		if listed == nil {
			return // no allowlist: every identity is read
		}
		// What the index holds for the listed names.
		var entries []restriction
		for _, id := range in.Identities {
			for _, n := range id.SecretNames {
				if slices.Contains(listed, n) {
					entries = append(entries, restriction{name: n, agent: id.ID})
				}
			}
		}
		named := in
		named.Identities = identitiesOf(entries)
		named.Candidates = nil
		for _, c := range in.Candidates {
			if slices.Contains(listed, c.Name) {
				named.Candidates = append(named.Candidates, c)
			}
		}
		full, got := runrules.Decide(in), runrules.Decide(named)
		if !reflect.DeepEqual(got.Injected(), full.Injected()) {
			t.Fatalf("injected from the listed names' restrictions %v, from every identity %v", got.Injected(), full.Injected())
		}
		if !reflect.DeepEqual(got.Unresolved, full.Unresolved) {
			t.Fatalf("unresolved from the listed names' restrictions %v, from every identity %v", got.Unresolved, full.Unresolved)
		}
		var fullListed []runrules.Candidate
		for _, c := range full.Candidates {
			if slices.Contains(listed, c.Name) {
				fullListed = append(fullListed, c)
			}
		}
		if !reflect.DeepEqual(got.Candidates, fullListed) {
			t.Fatalf("listed candidates %+v, from every identity %+v", got.Candidates, fullListed)
		}
		if gw, fw := runrules.WithoutPersonal(named, got), runrules.WithoutPersonal(in, full); !reflect.DeepEqual(gw.Injected(), fw.Injected()) || !reflect.DeepEqual(gw.Unresolved, fw.Unresolved) {
			t.Fatalf("the view without personal secrets differs: %+v vs %+v", gw, fw)
		}
	})
}

func TestRestrictionWrites(t *testing.T) {
	puts, dels := restrictionWrites("acme", "bot", []string{"A", "B"}, []string{"B", "C"})
	if len(puts) != 1 || puts[0].Key != "restrict/acme/C/bot" || puts[0].Delete {
		t.Errorf("puts %+v, want restrict/acme/C/bot", puts)
	}
	if len(dels) != 1 || dels[0].Key != "restrict/acme/A/bot" || !dels[0].Delete {
		t.Errorf("dels %+v, want a delete of restrict/acme/A/bot", dels)
	}
}
