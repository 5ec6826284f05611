package secretstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/secretstore"
)

// adminOf returns an admin of team.
func adminOf(team string) *auth.Principal {
	return &auth.Principal{Kind: auth.KindUser, Name: "users/root", ID: "root", Teams: map[string]auth.Role{team: auth.RoleAdmin}}
}

// runUniverse plants a fixed set of secrets, each valued owner:name plus
// the canary, and returns them by owner, in store order.
func runUniverse(t *testing.T, e *env) map[string][]runrules.Secret {
	t.Helper()
	plant := map[string][]string{
		"teams/t":     {"A", "B", "C", "DEPLOY_TOKEN"},
		"users/u1":    {"A", "b"},
		"users/u2":    {"C", "DEPLOY_TOKEN", "ONLY_U2"},
		"teams/other": {"A"},
	}
	out := map[string][]runrules.Secret{}
	for owner, names := range plant {
		coll, id, _ := strings.Cut(owner, "/")
		p := adminOf(id)
		if coll == "users" {
			p = &auth.Principal{Kind: auth.KindUser, Name: owner, ID: id}
		}
		for _, n := range names {
			sec := e.create(t, p, owner, n, owner+":"+n+":"+canary)
			out[owner] = append(out[owner], runrules.Secret{Owner: owner, Name: n, Version: 1, Created: sec.CreateTime})
		}
		slices.SortFunc(out[owner], func(a, b runrules.Secret) int {
			return strings.Compare(secretstore.FoldName(a.Name), secretstore.FoldName(b.Name))
		})
	}
	// Give one secret a later value version.
	for range 2 {
		if _, err := e.svc.Update(context.Background(), adminOf("t"), secretstore.UpdateRequest{
			Name: "teams/t/secrets/B", Value: []byte("teams/t:B:" + canary), UpdateMask: []string{"value"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range out["teams/t"] {
		if s.Name == "B" {
			out["teams/t"][i].Version = 3
		}
	}
	return out
}

// TestOpenRunSelectsAsRunrules checks, over random selections, that the
// Service's candidates are every secret of the owners, that it selects what
// runrules.Select says, and that it opens exactly those values at exactly
// those versions.
func TestOpenRunSelectsAsRunrules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	universe := runUniverse(t, e)
	owners := []string{"teams/t", "users/u1", "users/u2", "teams/other"}
	names := []string{"A", "B", "b", "C", "DEPLOY_TOKEN", "ONLY_U2", "MISSING"}

	rapid.Check(t, func(rt *rapid.T) {
		sel := runrules.Selection{
			Owners: rapid.SliceOfNDistinct(rapid.SampledFrom(owners), 1, 4, rapid.ID[string]).Draw(rt, "owners"),
		}
		for _, ex := range rapid.SliceOfN(rapid.Custom(func(t *rapid.T) runrules.Secret {
			return runrules.Secret{Owner: rapid.SampledFrom(owners).Draw(t, "owner"), Name: rapid.SampledFrom(names).Draw(t, "name")}
		}), 0, 4).Draw(rt, "excluded") {
			sel.Excluded = append(sel.Excluded, ex)
		}
		if rapid.Bool().Draw(rt, "allowlist") {
			sel.Allowlist = append([]string{}, rapid.SliceOfN(rapid.SampledFrom(names), 0, 5).Draw(rt, "names")...)
		}

		var wantCands []runrules.Secret
		for _, o := range sel.Owners {
			wantCands = append(wantCands, universe[o]...)
		}
		var opened []string
		rs, err := e.svc.OpenRun(ctx, sel, func(rs *secretstore.RunSecrets, values []secretstore.UnsealedValue) error {
			if len(values) != len(rs.Selected) {
				return fmt.Errorf("%d values for %d selected", len(values), len(rs.Selected))
			}
			for i, v := range values {
				s := rs.Selected[i]
				if v.Owner.String() != s.Owner || v.Name != s.Name || v.ValueVersion != s.Version {
					return fmt.Errorf("value %d is %s/%s v%d, selected %v", i, v.Owner, v.Name, v.ValueVersion, s)
				}
				opened = append(opened, string(v.Value.Bytes()))
			}
			return nil
		})
		if err != nil {
			rt.Fatalf("OpenRun(%+v): %v", sel, err)
		}
		if !slices.Equal(rs.Candidates, wantCands) {
			rt.Fatalf("candidates: got %v, want %v", rs.Candidates, wantCands)
		}
		want := runrules.Select(sel, wantCands)
		if !slices.Equal(rs.Selected, want) {
			rt.Fatalf("selected: got %v, want %v", rs.Selected, want)
		}
		for i, s := range want {
			if w := s.Owner + ":" + s.Name + ":" + canary; opened[i] != w {
				rt.Fatalf("value of %v: got %q, want %q", s, opened[i], w)
			}
		}
		meta, err := e.svc.SelectRun(ctx, sel)
		if err != nil {
			rt.Fatal(err)
		}
		if !slices.Equal(meta.Candidates, rs.Candidates) || !slices.Equal(meta.Selected, rs.Selected) {
			rt.Fatalf("SelectRun: got %+v, OpenRun got %+v", meta, rs)
		}
	})
	if strings.Contains(e.logs.String(), canary) {
		t.Fatal("a value reached the logs")
	}
	if !strings.Contains(e.logs.String(), `"msg":"run secrets selected"`) {
		t.Fatalf("no run log line in %s", e.logs)
	}
}

func TestOpenRunExamples(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	runUniverse(t, e)
	user, team := "users/u1", "teams/t"
	for _, tc := range []struct {
		name string
		sel  runrules.Selection
		want []string // owner/name of the selected
	}{
		{"NoAllowlist", runrules.Selection{Owners: []string{user, team}},
			[]string{"users/u1/A", "teams/t/B", "teams/t/C", "teams/t/DEPLOY_TOKEN", "users/u1/b"}},
		{"PersonalOverridesTeam", runrules.Selection{Owners: []string{user, team}, Allowlist: []string{"A"}},
			[]string{"users/u1/A"}},
		{"TeamFirstWins", runrules.Selection{Owners: []string{team, user}, Allowlist: []string{"A"}},
			[]string{"teams/t/A"}},
		{"ExclusionDoesNotHideOtherOwner", runrules.Selection{Owners: []string{user, team}, Excluded: []runrules.Secret{{Owner: user, Name: "A"}}, Allowlist: []string{"A"}},
			[]string{"teams/t/A"}},
		{"Excluded", runrules.Selection{Owners: []string{team}, Excluded: []runrules.Secret{{Owner: team, Name: "DEPLOY_TOKEN"}}},
			[]string{"teams/t/A", "teams/t/B", "teams/t/C"}},
		{"ExplicitAllowlist", runrules.Selection{Owners: []string{user, team}, Allowlist: []string{"C", "MISSING", "b"}},
			[]string{"teams/t/C", "users/u1/b"}},
		{"EmptyAllowlist", runrules.Selection{Owners: []string{user, team}, Allowlist: []string{}}, nil},
		{"AllowlistIsExact", runrules.Selection{Owners: []string{team}, Allowlist: []string{"a", "deploy_token"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			rs, err := e.svc.OpenRun(ctx, tc.sel, func(_ *secretstore.RunSecrets, values []secretstore.UnsealedValue) error {
				calls++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range rs.Selected {
				got = append(got, s.Owner+"/"+s.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("selected: got %v, want %v", got, tc.want)
			}
			if calls != 1 {
				t.Fatalf("use called %d times, want 1", calls)
			}
		})
	}
}

func TestOpenRunWipesValues(t *testing.T) {
	e := newEnv(t)
	e.create(t, root, "teams/acme", "A", canary)
	e.create(t, root, "teams/acme", "B", canary+canary)
	var kept [][]byte
	_, err := e.svc.OpenRun(context.Background(), runrules.Selection{Owners: []string{"teams/acme"}}, func(_ *secretstore.RunSecrets, values []secretstore.UnsealedValue) error {
		for _, v := range values {
			if !strings.Contains(string(v.Value.Bytes()), canary) {
				return fmt.Errorf("value of %s: not the planted one", v.Name)
			}
			kept = append(kept, v.Value.Bytes()) // what use must not do
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("got %d values, want 2", len(kept))
	}
	for i, b := range kept {
		if strings.Trim(string(b), "\x00") != "" {
			t.Errorf("value %d was not zeroed after use returned", i)
		}
	}
}

func TestOpenRunReturnsUseError(t *testing.T) {
	e := newEnv(t)
	e.create(t, root, "teams/acme", "A", canary)
	boom := errors.New("boom")
	rs, err := e.svc.OpenRun(context.Background(), runrules.Selection{Owners: []string{"teams/acme"}}, func(*secretstore.RunSecrets, []secretstore.UnsealedValue) error { return boom })
	if !errors.Is(err, boom) || rs != nil {
		t.Fatalf("OpenRun: got %v, %v, want nil, boom", rs, err)
	}
}

// TestOpenRunConcurrentUpdates opens while the value changes: every value
// opened is the one written at the version reported.
func TestOpenRunConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, root, "teams/acme", "X", "v1")
	sel := runrules.Selection{Owners: []string{"teams/acme"}}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for v := 2; v <= 30; v++ {
			if _, err := e.svc.Update(ctx, root, secretstore.UpdateRequest{Name: "teams/acme/secrets/X", Value: fmt.Appendf(nil, "v%d", v), UpdateMask: []string{"value"}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				_, err := e.svc.OpenRun(ctx, sel, func(rs *secretstore.RunSecrets, values []secretstore.UnsealedValue) error {
					if len(values) != 1 || rs.Selected[0].Version != values[0].ValueVersion {
						return fmt.Errorf("got %v for %v", values, rs.Selected)
					}
					if got, want := string(values[0].Value.Bytes()), fmt.Sprintf("v%d", values[0].ValueVersion); got != want {
						return fmt.Errorf("version %d opened as %q, want %q", values[0].ValueVersion, got, want)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// storeOnly hides every optional capability of the Store it wraps.
type storeOnly struct{ secretstore.Store }

// TestSelectRunWithoutOwnersLister reads through List, page after page.
func TestSelectRunWithoutOwnersLister(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	plain := secretstore.NewService(secretstore.Config{Store: storeOnly{e.store}, Keyring: e.keys})
	const n = secretstore.MaxPageSize + 3
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				_, err := e.svc.Create(ctx, root, secretstore.CreateRequest{Parent: "teams/acme", SecretID: fmt.Sprintf("S%04d", i), Value: fmt.Appendf(nil, "value-%d", i)})
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	e.create(t, alice, "users/me", "S0001", "mine")
	sel := runrules.Selection{Owners: []string{"users/alice", "teams/acme"}, Allowlist: []string{"S0001", "S1002"}}
	want, err := e.svc.SelectRun(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Candidates) != n+1 {
		t.Fatalf("candidates: got %d, want %d", len(want.Candidates), n+1)
	}
	var values []string
	got, err := plain.OpenRun(ctx, sel, func(_ *secretstore.RunSecrets, vs []secretstore.UnsealedValue) error {
		for _, v := range vs {
			values = append(values, v.Owner.String()+"/"+v.Name+"="+string(v.Value.Bytes()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Candidates, want.Candidates) || !slices.Equal(got.Selected, want.Selected) {
		t.Fatalf("without OwnersLister: got %d candidates, %v selected; want %d, %v", len(got.Candidates), got.Selected, len(want.Candidates), want.Selected)
	}
	if w := []string{"users/alice/S0001=mine", "teams/acme/S1002=value-1002"}; !slices.Equal(values, w) {
		t.Fatalf("values: got %v, want %v", values, w)
	}
}

func TestValidateRunSelection(t *testing.T) {
	ok := []string{"users/alice", "teams/acme"}
	many := make([]string, secretstore.MaxRunOwners+1)
	for i := range many {
		many[i] = fmt.Sprintf("teams/t%d", i)
	}
	for _, tc := range []struct {
		name  string
		sel   runrules.Selection
		field string // "" valid
	}{
		{"Valid", runrules.Selection{Owners: ok, Excluded: []runrules.Secret{{Owner: "teams/acme", Name: "PROD_DB"}}, Allowlist: []string{"PATH", "ld_preload", "x"}}, ""},
		{"ValidEmptyAllowlist", runrules.Selection{Owners: ok, Allowlist: []string{}}, ""},
		{"ExcludedOfAnotherOwner", runrules.Selection{Owners: ok, Excluded: []runrules.Secret{{Owner: "teams/zeta", Name: "A"}}}, ""},
		{"NoOwners", runrules.Selection{}, "selection.owners"},
		{"TooManyOwners", runrules.Selection{Owners: many}, "selection.owners"},
		{"OwnerMalformed", runrules.Selection{Owners: []string{"users/alice", "acme"}}, "selection.owners"},
		{"OwnerOtherCollection", runrules.Selection{Owners: []string{"agents/a"}}, "selection.owners"},
		{"OwnerBadID", runrules.Selection{Owners: []string{"teams/Acme"}}, "selection.owners"},
		{"OwnerMe", runrules.Selection{Owners: []string{"users/me", "teams/acme"}}, ""}, // a user id like any other
		{"OwnerTwice", runrules.Selection{Owners: []string{"teams/acme", "teams/acme"}}, "selection.owners"},
		{"OwnerEmpty", runrules.Selection{Owners: []string{""}}, "selection.owners"},
		{"ExcludedOwnerMalformed", runrules.Selection{Owners: ok, Excluded: []runrules.Secret{{Owner: "teams/", Name: "A"}}}, "selection.excluded"},
		{"ExcludedNameMissing", runrules.Selection{Owners: ok, Excluded: []runrules.Secret{{Owner: "teams/acme"}}}, "selection.excluded"},
		{"ExcludedNameMalformed", runrules.Selection{Owners: ok, Excluded: []runrules.Secret{{Owner: "teams/acme", Name: "1A"}}}, "selection.excluded"},
		{"AllowlistNameEmpty", runrules.Selection{Owners: ok, Allowlist: []string{"A", ""}}, "selection.allowlist.names"},
		{"AllowlistNameMalformed", runrules.Selection{Owners: ok, Allowlist: []string{"A-B"}}, "selection.allowlist.names"},
		{"AllowlistNameTooLong", runrules.Selection{Owners: ok, Allowlist: []string{strings.Repeat("A", 4097)}}, "selection.allowlist.names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := secretstore.ValidateRunSelection(tc.sel)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != tc.field {
				t.Fatalf("got %v, want an invalid-argument error for %s", err, tc.field)
			}
		})
	}
	// The Service refuses before reading or opening anything.
	e := newEnv(t)
	called := false
	_, err := e.svc.OpenRun(context.Background(), runrules.Selection{Owners: []string{"nobody"}}, func(*secretstore.RunSecrets, []secretstore.UnsealedValue) error {
		called = true
		return nil
	})
	wantKind(t, err, errs.KindInvalid)
	if called {
		t.Fatal("use was called for an invalid selection")
	}
	if _, err := e.svc.SelectRun(context.Background(), runrules.Selection{}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("SelectRun without owners: got %v, want invalid", err)
	}
}
