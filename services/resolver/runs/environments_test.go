package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

func TestEnvironmentLifecycle(t *testing.T) {
	f := newIDFixture(t)
	e, err := f.d.CreateEnvironment(f.Ann, runs.Environment{
		Team: "red", ID: "ops-tools", Description: "ops", SecretNames: []string{"DEPLOY_TOKEN", "GITHUB_TOKEN", "DEPLOY_TOKEN"},
	})
	idMust(t, err)
	if e.Name() != "teams/red/environments/ops-tools" || !slices.Equal(e.SecretNames, []string{"DEPLOY_TOKEN", "GITHUB_TOKEN"}) || e.Etag == "" {
		t.Fatalf("created: got %+v", e)
	}
	_, err = f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "ops-tools"})
	wantKind(t, err, errs.KindAlreadyExists)
	_, err = f.d.CreateEnvironment(f.Sys, runs.Environment{Team: "nope", ID: "ops-tools"})
	wantKind(t, err, errs.KindNotFound)

	got, err := f.d.GetEnvironment(f.Max, "red", "ops-tools")
	idMust(t, err)
	if got.Etag != e.Etag || !slices.Equal(got.SecretNames, e.SecretNames) {
		t.Errorf("get: got %+v, want %+v", got, e)
	}

	f.Clock.Advance(time.Second)
	u, err := f.d.UpdateEnvironment(f.Ann, "red", "ops-tools", runs.EnvironmentUpdate{
		Description: strp("tools"),
		SecretNames: resolver.NamesUpdate{Add: []string{"PAGERDUTY_KEY"}, Remove: []string{"GITHUB_TOKEN"}},
		Etag:        e.Etag,
	})
	idMust(t, err)
	if u.Description != "tools" || !slices.Equal(u.SecretNames, []string{"DEPLOY_TOKEN", "PAGERDUTY_KEY"}) || u.Etag == e.Etag || !u.UpdateTime.After(e.CreateTime) {
		t.Errorf("updated: got %+v", u)
	}
	_, err = f.d.UpdateEnvironment(f.Ann, "red", "ops-tools", runs.EnvironmentUpdate{Description: strp("stale"), Etag: e.Etag})
	wantKind(t, err, errs.KindFailedPrecondition)
	wantKind(t, f.d.DeleteEnvironment(f.Ann, "red", "ops-tools", e.Etag), errs.KindFailedPrecondition)

	for i := range 4 {
		idMust(t, errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: fmt.Sprintf("env-%d", i)})))
	}
	ids := resolvertest.Pages(t, 2, func(p resolver.Page) ([]runs.Environment, string, error) {
		return f.d.ListEnvironments(f.Max, "red", p)
	},
		func(e runs.Environment) string { return e.ID })
	if want := []string{"env-0", "env-1", "env-2", "env-3", "ops-tools"}; !slices.Equal(ids, want) {
		t.Errorf("ListEnvironments: got %v, want %v", ids, want)
	}
	blue, _, err := f.d.ListEnvironments(f.Oli, "blue", resolver.Page{})
	if err != nil || len(blue) != 0 {
		t.Errorf("blue's environments: got %v, %v, want none", blue, err)
	}

	idMust(t, f.d.DeleteEnvironment(f.Ann, "red", "ops-tools", u.Etag))
	_, err = f.d.GetEnvironment(f.Max, "red", "ops-tools")
	wantKind(t, err, errs.KindNotFound)
	wantKind(t, f.d.DeleteEnvironment(f.Ann, "red", "ops-tools", ""), errs.KindNotFound)
}

func TestEnvironmentAccess(t *testing.T) {
	f := newIDFixture(t)
	idMust(t, errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "prod"})))
	calls := map[string]func(ctx context.Context) error{
		"Create": func(ctx context.Context) error {
			return errOf(f.d.CreateEnvironment(ctx, runs.Environment{Team: "red", ID: "new"}))
		},
		"Update": func(ctx context.Context) error {
			return errOf(f.d.UpdateEnvironment(ctx, "red", "prod", runs.EnvironmentUpdate{Description: strp("x")}))
		},
		"kv.Delete": func(ctx context.Context) error { return f.d.DeleteEnvironment(ctx, "red", "prod", "") },
		"DeleteMissing": func(ctx context.Context) error {
			return f.d.DeleteEnvironment(ctx, "red", "ghost", "")
		},
	}
	reads := map[string]func(ctx context.Context) error{
		"Get":        func(ctx context.Context) error { return errOf(f.d.GetEnvironment(ctx, "red", "prod")) },
		"GetMissing": func(ctx context.Context) error { return errOf(f.d.GetEnvironment(ctx, "red", "ghost")) },
		"List": func(ctx context.Context) error {
			_, _, err := f.d.ListEnvironments(ctx, "red", resolver.Page{})
			return err
		},
	}
	// Only admins (people) change environments; whether or not they
	// exist, others are denied.
	for name, call := range calls {
		for who, ctx := range map[string]context.Context{"Member": f.Max, "OtherTeamAdmin": f.Oli, "Runner": f.Runner, "Agent": f.Agent} {
			t.Run(name+"/"+who, func(t *testing.T) { wantKind(t, call(ctx), errs.KindPermissionDenied) })
		}
	}
	for name, call := range reads {
		for who, ctx := range map[string]context.Context{"OtherTeamAdmin": f.Oli, "Runner": f.Runner, "Agent": f.Agent} {
			t.Run(name+"/"+who, func(t *testing.T) { wantKind(t, call(ctx), errs.KindPermissionDenied) })
		}
	}
	idMust(t, reads["Get"](f.Max))
	idMust(t, reads["List"](f.Max))
	wantKind(t, reads["GetMissing"](f.Max), errs.KindNotFound)
}

func TestEnvironmentBadInput(t *testing.T) {
	f := newIDFixture(t)
	idMust(t, errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "prod"})))
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"IDEmpty", func() error { return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red"})) }, "environment_id"},
		{"IDBad", func() error {
			return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "Prod_1"}))
		}, "environment_id"},
		{"TeamBad", func() error {
			return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "Red", ID: "prod"}))
		}, "team_id"},
		{"DescriptionLong", func() error {
			return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "x", Description: strings.Repeat("d", 1025)}))
		}, "description"},
		{"DescriptionEscape", func() error {
			return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "x", Description: "clear \x1b[2J"}))
		}, "description"},
		{"DescriptionCRLF", func() error {
			return errOf(f.d.UpdateEnvironment(f.Ann, "red", "prod", runs.EnvironmentUpdate{Description: new("fake\r\nrow")}))
		}, "description"},
		{"DescriptionNUL", func() error {
			return errOf(f.d.UpdateEnvironment(f.Ann, "red", "prod", runs.EnvironmentUpdate{Description: new("nul\x00")}))
		}, "description"},
		{"SecretNameReserved", func() error {
			return errOf(f.d.CreateEnvironment(f.Ann, runs.Environment{Team: "red", ID: "x", SecretNames: []string{"OK", "BASH_FUNC_x"}}))
		}, "secret_names"},
		{"UpdateAddBad", func() error {
			return errOf(f.d.UpdateEnvironment(f.Ann, "red", "prod", runs.EnvironmentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"A=B"}}}))
		}, "add_secret_names"},
		{"UpdateBoth", func() error {
			return errOf(f.d.UpdateEnvironment(f.Ann, "red", "prod", runs.EnvironmentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"A"}, Remove: []string{"B", "A"}}}))
		}, "remove_secret_names"},
		{"DeleteBadID", func() error { return f.d.DeleteEnvironment(f.Ann, "red", "", "") }, "environment_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.Snapshot(t)
			wantFieldErr(t, tt.call(), tt.field)
			if !slices.EqualFunc(before, f.Snapshot(t), func(a, b kv.KV) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
				t.Errorf("the store changed")
			}
		})
	}
}
