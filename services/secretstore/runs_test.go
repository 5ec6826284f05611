package secretstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestRunCandidatesAndOpen checks, over random owners and random picks of
// their secrets, that the candidates are every secret of the owners in
// order, and that OpenRunSecrets opens exactly the values named, in the
// order named.
func TestRunCandidatesAndOpen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	universe := runUniverse(t, e)
	owners := []string{"teams/t", "users/u1", "users/u2", "teams/other"}

	rapid.Check(t, func(rt *rapid.T) {
		os := rapid.SliceOfNDistinct(rapid.SampledFrom(owners), 1, 4, rapid.ID[string]).Draw(rt, "owners")
		var want []runrules.Secret
		for _, o := range os {
			want = append(want, universe[o]...)
		}
		cands, err := e.svc.RunCandidates(ctx, os)
		if err != nil {
			rt.Fatalf("RunCandidates(%v): %v", os, err)
		}
		if !runrules.SameSecrets(cands, want) {
			rt.Fatalf("candidates: got %v, want %v", cands, want)
		}
		// Any candidates of distinct names, in any order.
		var refs []runrules.Secret
		names := map[string]bool{}
		for _, i := range rapid.SliceOfN(rapid.IntRange(0, len(cands)-1), 0, 6).Draw(rt, "picks") {
			if c := cands[i]; !names[c.Name] {
				names[c.Name] = true
				refs = append(refs, c)
			}
		}
		var opened []string
		err = e.svc.OpenRunSecrets(ctx, refs, func(values []secretstore.Plaintext) error {
			if len(values) != len(refs) {
				return fmt.Errorf("%d values for %d secrets", len(values), len(refs))
			}
			for _, v := range values {
				opened = append(opened, string(v.Bytes()))
			}
			return nil
		})
		if err != nil {
			rt.Fatalf("OpenRunSecrets(%v): %v", refs, err)
		}
		for i, s := range refs {
			if w := s.Owner + ":" + s.Name + ":" + canary; opened[i] != w {
				rt.Fatalf("value of %v: got %q, want %q", s, opened[i], w)
			}
		}
	})
	if strings.Contains(e.logs.String(), canary) {
		t.Fatal("a value reached the logs")
	}
	for _, msg := range []string{"run candidates listed", "run secrets opened"} {
		if !strings.Contains(e.logs.String(), `"msg":"`+msg+`"`) {
			t.Fatalf("no %q log line in %s", msg, e.logs)
		}
	}
}

// TestOpenRunSecretsRefusesChanged: a secret rotated, deleted or made
// again since it was listed is refused, and nothing is opened.
func TestOpenRunSecretsRefusesChanged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, n := range []string{"KEEP", "ROTATED", "DELETED", "RECREATED"} {
		e.create(t, root, "teams/acme", n, n+":"+canary)
	}
	listed, err := e.svc.RunCandidates(ctx, []string{"teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]runrules.Secret{}
	for _, s := range listed {
		byName[s.Name] = s
	}
	if _, err := e.svc.Update(ctx, root, secretstore.UpdateRequest{Name: "teams/acme/secrets/ROTATED", Value: []byte("v2:" + canary), UpdateMask: []string{"value"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"DELETED", "RECREATED"} {
		if err := e.svc.Delete(ctx, root, secretstore.DeleteRequest{Name: "teams/acme/secrets/" + n}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(time.Second) // made again later: the same version, another secret
	e.create(t, root, "teams/acme", "RECREATED", "again:"+canary)

	for _, n := range []string{"ROTATED", "DELETED", "RECREATED"} {
		t.Run(n, func(t *testing.T) {
			called := false
			err := e.svc.OpenRunSecrets(ctx, []runrules.Secret{byName["KEEP"], byName[n]}, func([]secretstore.Plaintext) error {
				called = true
				return nil
			})
			wantKind(t, err, errs.KindFailedPrecondition)
			if called || !strings.Contains(err.Error(), n) || strings.Contains(err.Error(), canary) {
				t.Fatalf("got %v (use called: %v); want a refusal naming %s, without its value", err, called, n)
			}
		})
	}
	if err := e.svc.OpenRunSecrets(ctx, []runrules.Secret{byName["KEEP"]}, func([]secretstore.Plaintext) error { return nil }); err != nil {
		t.Fatalf("the unchanged secret: %v", err)
	}
}

func TestOpenRunWipesValues(t *testing.T) {
	e := newEnv(t)
	e.create(t, root, "teams/acme", "A", canary)
	e.create(t, root, "teams/acme", "B", canary+canary)
	refs, err := e.svc.RunCandidates(context.Background(), []string{"teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	err = e.svc.OpenRunSecrets(context.Background(), refs, func(values []secretstore.Plaintext) error {
		for i, v := range values {
			if !strings.Contains(string(v.Bytes()), canary) {
				return fmt.Errorf("value of %s: not the planted one", refs[i].Name)
			}
			kept = append(kept, v.Bytes()) // what use must not do
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
	refs, err := e.svc.RunCandidates(context.Background(), []string{"teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := e.svc.OpenRunSecrets(context.Background(), refs, func([]secretstore.Plaintext) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("OpenRunSecrets: got %v, want boom", err)
	}
}

// TestOpenRunConcurrentUpdates lists and opens while the value changes:
// every value opened is the one written at the version listed, or the
// secret is refused as changed.
func TestOpenRunConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, root, "teams/acme", "X", "v1")
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
				refs, err := e.svc.RunCandidates(ctx, []string{"teams/acme"})
				if err != nil {
					t.Error(err)
					return
				}
				err = e.svc.OpenRunSecrets(ctx, refs, func(values []secretstore.Plaintext) error {
					if got, want := string(values[0].Bytes()), fmt.Sprintf("v%d", refs[0].Version); got != want {
						return fmt.Errorf("version %d opened as %q, want %q", refs[0].Version, got, want)
					}
					return nil
				})
				if err != nil && errs.KindOf(err) != errs.KindFailedPrecondition {
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

// TestRunCandidatesWithoutOwnersLister reads through List, page after page.
func TestRunCandidatesWithoutOwnersLister(t *testing.T) {
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
	owners := []string{"users/alice", "teams/acme"}
	want, err := e.svc.RunCandidates(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != n+1 {
		t.Fatalf("candidates: got %d, want %d", len(want), n+1)
	}
	got, err := plain.RunCandidates(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	if !runrules.SameSecrets(got, want) {
		t.Fatalf("without OwnersLister: got %d candidates, want %d", len(got), len(want))
	}
	var values []string
	refs := []runrules.Secret{got[0], got[1+1002]}
	if err := plain.OpenRunSecrets(ctx, refs, func(vs []secretstore.Plaintext) error {
		for i, v := range vs {
			values = append(values, refs[i].Owner+"/"+refs[i].Name+"="+string(v.Bytes()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if w := []string{"users/alice/S0001=mine", "teams/acme/S1002=value-1002"}; !slices.Equal(values, w) {
		t.Fatalf("values: got %v, want %v", values, w)
	}
}

// TestRunRequestsRefused: malformed owners and secrets are refused,
// naming the field, before anything is read or opened.
func TestRunRequestsRefused(t *testing.T) {
	many := make([]string, secretstore.MaxRunOwners+1)
	for i := range many {
		many[i] = fmt.Sprintf("teams/t%d", i)
	}
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		owners []string
		ok     bool
	}{
		{"Valid", []string{"users/alice", "teams/acme"}, true},
		{"OwnerMe", []string{"users/me", "teams/acme"}, true}, // a user id like any other
		{"NoOwners", nil, false},
		{"TooManyOwners", many, false},
		{"OwnerMalformed", []string{"users/alice", "acme"}, false},
		{"OwnerOtherCollection", []string{"agents/a"}, false},
		{"OwnerBadID", []string{"teams/Acme"}, false},
		{"OwnerTwice", []string{"teams/acme", "teams/acme"}, false},
		{"OwnerEmpty", []string{""}, false},
	} {
		t.Run("Owners"+tc.name, func(t *testing.T) {
			_, err := e.svc.RunCandidates(context.Background(), tc.owners)
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			wantInvalid(t, err, "owners")
		})
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ref := func(owner, name string, v int64) runrules.Secret {
		return runrules.Secret{Owner: owner, Name: name, Version: v, Created: created}
	}
	tooMany := make([]runrules.Secret, secretstore.MaxRunSecrets+1)
	for i := range tooMany {
		tooMany[i] = ref("teams/acme", fmt.Sprintf("S%d", i), 1)
	}
	for _, tc := range []struct {
		name string
		refs []runrules.Secret
	}{
		{"TooMany", tooMany},
		{"OwnerMalformed", []runrules.Secret{ref("teams/", "A", 1)}},
		{"NameMissing", []runrules.Secret{ref("teams/acme", "", 1)}},
		{"NameMalformed", []runrules.Secret{ref("teams/acme", "1A", 1)}},
		{"NameTooLong", []runrules.Secret{ref("teams/acme", strings.Repeat("A", 4097), 1)}},
		{"VersionZero", []runrules.Secret{ref("teams/acme", "A", 0)}},
		{"NoCreateTime", []runrules.Secret{{Owner: "teams/acme", Name: "A", Version: 1}}},
		{"NameTwice", []runrules.Secret{ref("users/alice", "A", 1), ref("teams/acme", "A", 1)}},
	} {
		t.Run("Secrets"+tc.name, func(t *testing.T) {
			called := false
			err := e.svc.OpenRunSecrets(context.Background(), tc.refs, func([]secretstore.Plaintext) error {
				called = true
				return nil
			})
			wantInvalid(t, err, "secrets")
			if called {
				t.Fatal("use was called for invalid secrets")
			}
		})
	}
	// None is an empty environment.
	if err := e.svc.OpenRunSecrets(context.Background(), nil, func(vs []secretstore.Plaintext) error {
		if len(vs) != 0 {
			return fmt.Errorf("%d values", len(vs))
		}
		return nil
	}); err != nil {
		t.Fatalf("no secrets: %v", err)
	}
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got %v, want an invalid-argument error for %s", err, field)
	}
}

// TestRunCandidatesNamed: with names, only the owners' secrets named
// exactly one of them, read by key, in RunCandidates' order; a name that
// cannot be a secret's names none; too many names are refused.
func TestRunCandidatesNamed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, n := range []string{"ALPHA", "BETA", "GAMMA", "Mixed_Case"} {
		e.create(t, root, "teams/acme", n, n+":"+canary)
	}
	e.create(t, adminOf("other"), "teams/other", "ALPHA", "other:"+canary)

	got, err := e.svc.RunCandidatesNamed(ctx, []string{"teams/acme"}, []string{"GAMMA", "ALPHA", "MISSING", "mixed_case", "not a name", "ALPHA"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		if s.Owner != "teams/acme" || s.Version != 1 || s.Created.IsZero() {
			t.Errorf("candidate %+v", s)
		}
		names = append(names, s.Name)
	}
	// Named exactly: mixed_case is not Mixed_Case (the decision matches
	// names exactly, as the listing of every candidate does).
	if want := []string{"ALPHA", "GAMMA"}; !slices.Equal(names, want) {
		t.Errorf("candidates named: %v, want %v", names, want)
	}

	// Every candidate the named read returns, the full listing returns alike.
	all, err := e.svc.RunCandidates(ctx, []string{"teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if !slices.ContainsFunc(all, s.Same) {
			t.Errorf("%+v is not as RunCandidates lists it", s)
		}
	}

	tooMany := make([]string, secretstore.MaxRunSecrets+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("N%d", i)
	}
	_, err = e.svc.RunCandidatesNamed(ctx, []string{"teams/acme"}, tooMany)
	wantKind(t, err, errs.KindInvalid)
	if !strings.Contains(err.Error(), "names") {
		t.Errorf("too many names: %v, want an error naming the field", err)
	}
}
