// Package resolvertest holds what the tests of the resolver's packages
// share: a settable clock, a directory on a fresh bbolt file with a system
// admin, a small directory of two teams, and error checks.
package resolvertest

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// Clock is a clock the test sets. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Start is when every Clock of Directory starts.
var Start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Open returns the store of a resolver on a fresh bbolt file in
// dir (t.TempDir() when ""), closed when the test ends.
func Open(t testing.TB, dir string) *boltkv.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	store, err := boltkv.Open(filepath.Join(dir, "resolver.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// Directory returns a Directory on a fresh bbolt file, its clock (at
// Start), and a context of its system admin "admin".
func Directory(t testing.TB) (*directory.Directory, *Clock, context.Context) {
	t.Helper()
	clk := NewClock(Start)
	d := directory.New(resolver.NewStore(Open(t, ""), clk.Now))
	_, bearer, err := d.BootstrapAdmin(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	return d, clk, Login(t, d, bearer)
}

// Login returns a context authenticated by bearer.
func Login(t testing.TB, d *directory.Directory, bearer string) context.Context {
	t.Helper()
	p, err := d.Authenticate(context.Background(), bearer)
	if err != nil {
		t.Fatal(err)
	}
	return auth.WithPrincipal(context.Background(), p)
}

// Teams is a directory with teams red and blue; ann admin and max member
// of red, oli admin of blue; a context for each, and for a runner and an
// agent identity that even claim to be admins (only their Kind should
// matter).
type Teams struct {
	D                  *directory.Directory
	Clock              *Clock
	Sys, Ann, Max, Oli context.Context
	Runner, Agent      context.Context
}

// NewTeams makes the Teams directory.
func NewTeams(t testing.TB) *Teams {
	t.Helper()
	d, clk, sys := Directory(t)
	f := &Teams{D: d, Clock: clk, Sys: sys}
	for _, team := range []string{"red", "blue"} {
		if _, err := d.CreateTeam(sys, team); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		user, team string
		role       auth.Role
	}{{"ann", "red", auth.RoleAdmin}, {"max", "red", auth.RoleMember}, {"oli", "blue", auth.RoleAdmin}} {
		if _, err := d.CreateUser(sys, m.user, false); err != nil {
			t.Fatal(err)
		}
		if _, err := d.CreateMembership(sys, m.team, m.user, m.role); err != nil {
			t.Fatal(err)
		}
	}
	f.Ann, f.Max, f.Oli = f.Login(t, "ann"), f.Login(t, "max"), f.Login(t, "oli")
	claims := map[string]auth.Role{"red": auth.RoleAdmin, "blue": auth.RoleAdmin}
	f.Runner = auth.WithPrincipal(context.Background(), &auth.Principal{Kind: auth.KindRunner, Name: "runners/r1", ID: "r1", SystemAdmin: true, Teams: claims})
	f.Agent = auth.WithPrincipal(context.Background(), &auth.Principal{Kind: auth.KindAgent, Name: "teams/red/agents/default", ID: "default", SystemAdmin: true, Teams: claims})
	return f
}

// Login issues a token for user and returns a context authenticated by it.
func (f *Teams) Login(t testing.TB, user string) context.Context {
	t.Helper()
	_, bearer, err := f.D.CreateToken(f.Sys, resolver.UserPrincipal(user), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	return Login(t, f.D, bearer)
}

// WantKind fails the test unless err is of kind want.
func WantKind(t testing.TB, err error, want errs.Kind) {
	t.Helper()
	if err == nil || errs.KindOf(err) != want {
		t.Fatalf("got %v (kind %v), want kind %v", err, errs.KindOf(err), want)
	}
}

// WantField fails the test unless err is Invalid about field.
func WantField(t testing.TB, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got %v, want an invalid-argument error for %s", err, field)
	}
}

// Snapshot returns every record of the directory's store, for "nothing
// changed" checks.
func (f *Teams) Snapshot(t testing.TB) []kv.KV {
	t.Helper()
	kvs, err := f.D.Store().KV().Scan(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

// Pages collects the ids of every item of a list, page after page of at
// most size, checking each page's size.
func Pages[T any](t testing.TB, size int, list func(resolver.Page) ([]T, string, error), id func(T) string) []string {
	t.Helper()
	var ids []string
	token := ""
	for range 100 {
		items, next, err := list(resolver.Page{Size: size, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > size {
			t.Fatalf("page of %d, want at most %d", len(items), size)
		}
		for _, it := range items {
			ids = append(ids, id(it))
		}
		if next == "" {
			return ids
		}
		token = next
	}
	t.Fatal("more than 100 pages")
	return nil
}

// Both is a directory and the run service over it, called as one.
type Both struct {
	*directory.Directory
	*runs.Service
}

// WithRuns is d with a run service over it whose secretstore answers
// nothing (NoSecrets): for the tests of everything but resolutions.
func WithRuns(d *directory.Directory) Both {
	return Both{Directory: d, Service: runs.New(d, NoSecrets{})}
}

// NoSecrets is a runs.SecretStore that answers every call Unavailable.
type NoSecrets struct{}

var _ runs.SecretStore = NoSecrets{}

// Candidates implements runs.SecretStore.
func (NoSecrets) Candidates(context.Context, []string, []string) ([]runrules.Secret, error) {
	return nil, errs.E(errs.KindUnavailable, "no secretstore in this test")
}

// Seal implements runs.SecretStore.
func (NoSecrets) Seal(context.Context, []runrules.Secret, runs.Recipient, []byte) (runs.Sealed, error) {
	return runs.Sealed{}, errs.E(errs.KindUnavailable, "no secretstore in this test")
}
