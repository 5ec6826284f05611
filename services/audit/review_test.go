package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// fakeInventory is an audit.Inventory whose methods call the func fields;
// an unset field returns nothing.
type fakeInventory struct {
	teamSecrets     func(team string) ([]audit.SecretMeta, error)
	personalSecrets func() ([]audit.SecretMeta, error)
}

var _ audit.Inventory = (*fakeInventory)(nil)

func (f *fakeInventory) TeamSecrets(_ context.Context, team string) ([]audit.SecretMeta, error) {
	if f.teamSecrets == nil {
		return nil, nil
	}
	return f.teamSecrets(team)
}

func (f *fakeInventory) PersonalSecrets(context.Context) ([]audit.SecretMeta, error) {
	if f.personalSecrets == nil {
		return nil, nil
	}
	return f.personalSecrets()
}

func (f *fakeInventory) Agents(context.Context, string) ([]audit.Referrer, error) { return nil, nil }

func (f *fakeInventory) Environments(context.Context, string) ([]audit.Referrer, error) {
	return nil, nil
}

// countingStore counts the List calls of the store it wraps.
type countingStore struct {
	audit.Store
	lists atomic.Int32
}

func (s *countingStore) List(ctx context.Context, q audit.Query) (*audit.Page, error) {
	s.lists.Add(1)
	return s.Store.List(ctx, q)
}

var reviewStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func reviewService(t *testing.T, inv audit.Inventory) (*audit.Service, *countingStore, *time.Time) {
	t.Helper()
	kvs, _, err := kvstore.OpenBoltKV(filepath.Join(t.TempDir(), "audit.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kvs.Close() })
	bs, err := kvstore.New(context.Background(), kvs, kvstore.BoltOptions)
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: bs}
	now := reviewStart
	svc := audit.NewService(audit.Config{Store: store, Inventory: inv, Now: func() time.Time { return now }})
	return svc, store, &now
}

func runResolve(id string, at time.Time, names ...string) *auditv1.Event {
	d := map[string]string{}
	for _, n := range names {
		d[audit.DetailInjectedPrefix+n] = "1"
	}
	return &auditv1.Event{
		Id: "resolver-" + id, Time: timestamppb.New(at), Action: audit.ActionRunResolve, Team: "acme",
		Actor:   &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, Name: "runners/ci", Client: "runner"},
		Outcome: auditv1.Outcome_OUTCOME_OK, RunId: id, Resource: "teams/acme/runs/" + id, Details: d,
	}
}

var admin = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}

func TestReviewLastInjected(t *testing.T) {
	secrets := []audit.SecretMeta{
		{Name: "teams/acme/secrets/A", ID: "A", ValueVersion: 1, CreateTime: reviewStart},
		{Name: "teams/acme/secrets/B", ID: "B", ValueVersion: 1, CreateTime: reviewStart},
	}
	svc, store, now := reviewService(t, &fakeInventory{teamSecrets: func(string) ([]audit.SecretMeta, error) { return secrets, nil }})
	ctx := context.Background()
	appendAt := func(at time.Time, evs ...*auditv1.Event) {
		t.Helper()
		*now = at
		if _, err := svc.Append(ctx, "resolver", evs); err != nil {
			t.Fatal(err)
		}
	}
	// 3000 runs that received A, a second apart, then two resolvers'
	// events out of order: r-late (received B at +2h) reached the log
	// before r-early (received B at +1h).
	day := reviewStart.Add(24 * time.Hour)
	for i := 0; i < 3000; i += 100 {
		var evs []*auditv1.Event
		for j := i; j < i+100; j++ {
			evs = append(evs, runResolve(fmt.Sprintf("a-%d", j), day.Add(time.Duration(j)*time.Second), "A"))
		}
		appendAt(evs[len(evs)-1].GetTime().AsTime(), evs...)
	}
	appendAt(day.Add(2*time.Hour), runResolve("r-late", day.Add(2*time.Hour), "B"))
	appendAt(day.Add(2*time.Hour), runResolve("r-early", day.Add(time.Hour), "B"))
	*now = day.Add(3 * time.Hour)

	store.lists.Store(0)
	resp, err := svc.Review(ctx, admin, audit.ReviewRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range resp.GetSecrets() {
		got[r.GetSecretId()] = r.GetLastInjectRunId()
	}
	if got["A"] != "a-2999" || got["B"] != "r-late" {
		t.Errorf("last runs: got %v, want A: a-2999, B: r-late", got)
	}
	// Both found in the newest page, which also reaches a minute before
	// the older of the two (clockSlack): the scan stops there.
	if n := store.lists.Load(); n != 1 {
		t.Errorf("store List calls: got %d, want 1", n)
	}

	// A secret created after every run, never received: the scan goes
	// back to its creation, no further.
	secrets = append(secrets, audit.SecretMeta{Name: "teams/acme/secrets/C", ID: "C", ValueVersion: 1, CreateTime: day.Add(90 * time.Minute)})
	store.lists.Store(0)
	if _, err := svc.Review(ctx, admin, audit.ReviewRequest{Parent: "teams/acme"}); err != nil {
		t.Fatal(err)
	}
	if n := store.lists.Load(); n != 1 {
		t.Errorf("store List calls with C: got %d, want 1", n)
	}
	// One created before every run: the whole chain.
	secrets = append(secrets, audit.SecretMeta{Name: "teams/acme/secrets/D", ID: "D", ValueVersion: 1, CreateTime: reviewStart})
	store.lists.Store(0)
	if _, err := svc.Review(ctx, admin, audit.ReviewRequest{Parent: "teams/acme"}); err != nil {
		t.Fatal(err)
	}
	if n := store.lists.Load(); n != 4 {
		t.Errorf("store List calls with D: got %d, want 4 (3002 events)", n)
	}
}

func TestReviewErrors(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := reviewService(t, nil)
	if _, err := svc.Review(ctx, admin, audit.ReviewRequest{Parent: "teams/acme"}); !errors.Is(err, errs.Unavailable) {
		t.Errorf("no inventory: got %v, want Unavailable", err)
	}
	member := &auth.Principal{Kind: auth.KindUser, Name: "users/bob", ID: "bob", Teams: map[string]auth.Role{"acme": auth.RoleMember}}
	if _, err := svc.Review(ctx, member, audit.ReviewRequest{Parent: "teams/acme"}); !errors.Is(err, errs.PermissionDenied) {
		t.Errorf("member, no inventory: got %v, want PermissionDenied (checked first)", err)
	}

	refused := errs.E(errs.KindPermissionDenied, "list your personal secrets: no")
	svc, _, _ = reviewService(t, &fakeInventory{personalSecrets: func() ([]audit.SecretMeta, error) { return nil, refused }})
	if _, err := svc.Review(ctx, admin, audit.ReviewRequest{Parent: "teams/acme"}); !errors.Is(err, errs.PermissionDenied) {
		t.Errorf("inventory refusal: got %v, want PermissionDenied", err)
	}
}
