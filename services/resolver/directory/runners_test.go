package directory_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

// TestRunnerLifecycle: system admins create runners, whose token
// authenticates as a runner of its teams; deleting the runner revokes it.
func TestRunnerLifecycle(t *testing.T) {
	f := newIDFixture(t)
	ctx := context.Background()
	r, bearer, err := f.D.CreateRunner(f.Sys, "ci", []string{"red", "blue", "red"})
	idMust(t, err)
	if r.Name() != "runners/ci" || !slices.Equal(r.Teams, []string{"blue", "red"}) || r.CreateBy != "users/admin" || bearer == "" {
		t.Fatalf("created: got %+v, token %v", r, bearer != "")
	}
	p, err := f.D.Authenticate(ctx, bearer)
	idMust(t, err)
	if p.Kind != auth.KindRunner || p.Name != "runners/ci" || p.ID != "ci" || p.SystemAdmin || p.TokenID == "" ||
		len(p.Teams) != 2 || p.Teams["red"] != auth.RoleMember || p.Teams["blue"] != auth.RoleMember {
		t.Errorf("runner principal: got %+v", p)
	}
	// A runner is not a person: it manages nothing.
	rctx := auth.WithPrincipal(ctx, p)
	_, err = f.D.GetRunner(rctx, "ci")
	wantKind(t, err, errs.KindPermissionDenied)
	_, _, err = f.D.ListTeams(rctx, resolver.Page{})
	wantKind(t, err, errs.KindPermissionDenied)

	got, err := f.D.GetRunner(f.Sys, "ci")
	if err != nil || !slices.Equal(got.Teams, r.Teams) {
		t.Errorf("GetRunner: got %+v, %v", got, err)
	}
	_, _, err = f.D.CreateRunner(f.Sys, "ci", []string{"red"})
	wantKind(t, err, errs.KindAlreadyExists)

	// System admins may give it more tokens.
	_, second, err := f.D.CreateToken(f.Sys, resolver.RunnerPrincipal("ci"), 0, "rotation")
	idMust(t, err)
	_, _, err = f.D.CreateToken(f.Ann, resolver.RunnerPrincipal("ci"), 0, "")
	wantKind(t, err, errs.KindPermissionDenied)
	_, _, err = f.D.ListTokens(f.Ann, "runners/ci", resolver.Page{})
	wantKind(t, err, errs.KindPermissionDenied)
	toks, _, err := f.D.ListTokens(f.Sys, "runners/ci", resolver.Page{})
	if err != nil || len(toks) != 2 || toks[0].Principal.Kind != auth.KindRunner {
		t.Errorf("ListTokens: got %+v, %v, want 2 runner tokens", toks, err)
	}

	idMust(t, f.D.DeleteRunner(f.Sys, "ci"))
	for _, b := range []string{bearer, second} {
		_, err := f.D.Authenticate(ctx, b)
		wantKind(t, err, errs.KindUnauthenticated)
	}
	_, err = f.D.GetRunner(f.Sys, "ci")
	wantKind(t, err, errs.KindNotFound)
	wantKind(t, f.D.DeleteRunner(f.Sys, "ci"), errs.KindNotFound)
	_, _, err = f.D.CreateToken(f.Sys, resolver.RunnerPrincipal("ci"), 0, "")
	wantKind(t, err, errs.KindNotFound)

	// A new runner of the same name does not inherit the old tokens.
	_, fresh, err := f.D.CreateRunner(f.Sys, "ci", []string{"red"})
	idMust(t, err)
	_, err = f.D.Authenticate(ctx, bearer)
	wantKind(t, err, errs.KindUnauthenticated)
	if p, err := f.D.Authenticate(ctx, fresh); err != nil || len(p.Teams) != 1 {
		t.Errorf("new runner: got %+v, %v, want red only", p, err)
	}
}

func TestRunnerAccessAndInput(t *testing.T) {
	f := newIDFixture(t)
	idMust(t, errOf2(f.D.CreateRunner(f.Sys, "r1", []string{"red"})))
	others := map[string]context.Context{"TeamAdmin": f.Ann, "Member": f.Max, "Runner": f.Runner, "Agent": f.Agent}
	for who, ctx := range others {
		calls := map[string]func() error{
			"Create":        func() error { return errOf2(f.D.CreateRunner(ctx, "r2", []string{"red"})) },
			"Get":           func() error { return errOf(f.D.GetRunner(ctx, "r1")) },
			"GetMissing":    func() error { return errOf(f.D.GetRunner(ctx, "ghost")) },
			"List":          func() error { _, _, err := f.D.ListRunners(ctx, resolver.Page{}); return err },
			"kv.Delete":     func() error { return f.D.DeleteRunner(ctx, "r1") },
			"DeleteMissing": func() error { return f.D.DeleteRunner(ctx, "ghost") },
		}
		for name, call := range calls {
			t.Run(who+"/"+name, func(t *testing.T) { wantKind(t, call(), errs.KindPermissionDenied) })
		}
	}

	before := f.Snapshot(t)
	for name, tt := range map[string]struct {
		id    string
		teams []string
		field string
	}{
		"NoTeams":     {"r2", nil, "teams"},
		"TeamName":    {"r2", []string{"teams/red"}, "teams"},
		"BadID":       {"R2", []string{"red"}, "runner_id"},
		"EmptyID":     {"", []string{"red"}, "runner_id"},
		"TooManyTeam": {"r2", manyTeams(directory.MaxRunnerTeams + 1), "teams"},
	} {
		t.Run(name, func(t *testing.T) {
			wantFieldErr(t, errOf2(f.D.CreateRunner(f.Sys, tt.id, tt.teams)), tt.field)
		})
	}
	err := errOf2(f.D.CreateRunner(f.Sys, "r2", []string{"red", "nope"}))
	wantKind(t, err, errs.KindNotFound)
	if !slices.EqualFunc(before, f.Snapshot(t), func(a, b kv.KV) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
		t.Errorf("the store changed")
	}

	for i := range 4 {
		idMust(t, errOf2(f.D.CreateRunner(f.Sys, fmt.Sprintf("s%d", i), []string{"blue"})))
	}
	got := resolvertest.Pages(t, 2, func(p resolver.Page) ([]directory.Runner, string, error) { return f.D.ListRunners(f.Sys, p) },
		func(r directory.Runner) string { return r.ID })
	if want := []string{"r1", "s0", "s1", "s2", "s3"}; !slices.Equal(got, want) {
		t.Errorf("ListRunners: got %v, want %v", got, want)
	}
}

func manyTeams(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%d", i)
	}
	return out
}

func errOf2[A, B any](_ A, _ B, err error) error { return err }
