// Package storetest is the conformance suite of secretstore.Store (and, in
// sealingkeys.go, of sealing.Store): the implementation (package kvstore)
// runs it over every kv.Store it stands on (bbolt, etcd) with
//
//	storetest.Run(t, func(t *testing.T) secretstore.Store { return openMine(t) })
//
// open must return a new, empty store each time, and close it with
// t.Cleanup. When the store is also a secretstore.Scanner or a
// secretstore.OwnersLister, Scan or ListOwners is tested too. The audit
// events are read from the store's Outbox: every change commits with its
// event, and a change that fails or is refused stores none.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/suite"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) secretstore.Store) {
	suite.Run(t, open,
		testCreateGet, testGetExactName, testGetMissing, testOwnersSeparate, testCreateClash,
		testCreateAfterDelete, testListOrder, testListAfterMissing, testListEmpty, testUpdate,
		testUpdateFnError, testUpdateMissing, testUpdateRename, testDelete, testDeleteCheck,
		testDeleteExactName, testEtag, testConcurrentCreatesOneName, testConcurrentCreatesMany,
		testConcurrentUpdates, testConcurrentMixed, testCopies, testCanceled, testScan,
		testListOwners, testEventsWithChanges, testEventsOnlyWithChanges,
		testInvalidEventAbortsChange, testRecord, testOutboxAck, testConcurrentEvents,
		testBinding,
	)
}

var (
	acme  = secretstore.Team("acme")
	acme2 = secretstore.Team("acme-2")
	alice = secretstore.User("alice")
	t0    = time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
)

// NewSecret returns a secret record for tests, with a fake sealed value
// derived from owner and name.
func NewSecret(owner secretstore.Owner, name string) *secretstore.Secret {
	return &secretstore.Secret{
		Owner:           owner,
		Name:            name,
		Description:     "description of " + name,
		ValueVersion:    1,
		CreateTime:      t0,
		UpdateTime:      t0,
		ValueUpdateTime: t0,
		CreateBy:        "users/alice",
		UpdateBy:        "users/alice",
		Etag:            "etag-" + name,
		Value: keyring.Envelope{
			KEKID:      "k1",
			WrappedKey: []byte("wrapped:" + owner.String() + ":" + name),
			Ciphertext: []byte("ciphertext:" + owner.String() + ":" + name),
		},
	}
}

// Diff describes how got differs from want, "" when they are equal.
func Diff(got, want *secretstore.Secret) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.Owner != want.Owner {
		add("Owner", got.Owner, want.Owner)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if got.Description != want.Description {
		add("Description", got.Description, want.Description)
	}
	if got.ValueVersion != want.ValueVersion {
		add("ValueVersion", got.ValueVersion, want.ValueVersion)
	}
	for _, tc := range []struct {
		f    string
		g, w time.Time
	}{{"CreateTime", got.CreateTime, want.CreateTime}, {"UpdateTime", got.UpdateTime, want.UpdateTime}, {"ValueUpdateTime", got.ValueUpdateTime, want.ValueUpdateTime}} {
		if !tc.g.Equal(tc.w) {
			add(tc.f, tc.g, tc.w)
		}
	}
	if got.CreateBy != want.CreateBy {
		add("CreateBy", got.CreateBy, want.CreateBy)
	}
	if got.UpdateBy != want.UpdateBy {
		add("UpdateBy", got.UpdateBy, want.UpdateBy)
	}
	if got.Etag != want.Etag {
		add("Etag", got.Etag, want.Etag)
	}
	if !got.Binding.Equal(want.Binding) {
		add("Binding", got.Binding, want.Binding)
	}
	if got.Value.KEKID != want.Value.KEKID {
		add("Value.KEKID", got.Value.KEKID, want.Value.KEKID)
	}
	if !bytes.Equal(got.Value.WrappedKey, want.Value.WrappedKey) {
		add("Value.WrappedKey", got.Value.WrappedKey, want.Value.WrappedKey)
	}
	if !bytes.Equal(got.Value.Ciphertext, want.Value.Ciphertext) {
		add("Value.Ciphertext", got.Value.Ciphertext, want.Value.Ciphertext)
	}
	return strings.Join(d, "; ")
}

// NewEvent returns a valid audit event of action on sec, for tests.
func NewEvent(action string, sec *secretstore.Secret) *auditv1.Event {
	team := ""
	if sec.Owner.Kind == secretstore.OwnerTeam {
		team = sec.Owner.ID
	}
	return &auditv1.Event{
		Time:     timestamppb.New(t0),
		Actor:    &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
		Action:   action,
		Resource: sec.ResourceName(),
		Team:     team,
		Outcome:  auditv1.Outcome_OUTCOME_OK,
		Details:  map[string]string{audit.DetailValueVersion: strconv.FormatInt(sec.ValueVersion, 10)},
	}
}

// create is Create with the event NewEvent makes.
func create(ctx context.Context, s secretstore.Store, sec *secretstore.Secret) error {
	return s.Create(ctx, sec, NewEvent(audit.ActionSecretCreate, sec))
}

// update is Update of fn, with the event NewEvent makes of fn's result.
func update(ctx context.Context, s secretstore.Store, o secretstore.Owner, name string, fn func(*secretstore.Secret) error) (*secretstore.Secret, error) {
	return s.Update(ctx, o, name, func(sec *secretstore.Secret) (*auditv1.Event, error) {
		if err := fn(sec); err != nil {
			return nil, err
		}
		return NewEvent(audit.ActionSecretUpdate, sec), nil
	})
}

// del is Delete after check (when not nil), with the event NewEvent
// makes.
func del(ctx context.Context, s secretstore.Store, o secretstore.Owner, name string, check func(*secretstore.Secret) error) error {
	return s.Delete(ctx, o, name, func(sec *secretstore.Secret) (*auditv1.Event, error) {
		if check != nil {
			if err := check(sec); err != nil {
				return nil, err
			}
		}
		return NewEvent(audit.ActionSecretDelete, sec), nil
	})
}

func mustCreate(t *testing.T, s secretstore.Store, secs ...*secretstore.Secret) {
	t.Helper()
	for _, sec := range secs {
		if err := create(context.Background(), s, sec.Clone()); err != nil {
			t.Fatalf("Create(%s): %v", sec.ResourceName(), err)
		}
	}
}

func mustGet(t *testing.T, s secretstore.Store, o secretstore.Owner, name string) *secretstore.Secret {
	t.Helper()
	got, err := s.Get(context.Background(), o, name)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", o, name, err)
	}
	return got
}

func wantKind(t *testing.T, what string, err error, kind errs.Kind) {
	t.Helper()
	if got := errs.KindOf(err); err == nil || got != kind {
		t.Fatalf("%s: got error %v (kind %v), want kind %v", what, err, got, kind)
	}
}

func names(secs []*secretstore.Secret) []string {
	out := make([]string, len(secs))
	for i, s := range secs {
		out[i] = s.Name
	}
	return out
}

func listAll(t *testing.T, s secretstore.Store, o secretstore.Owner) []string {
	t.Helper()
	got, err := s.List(context.Background(), o, "", 10000)
	if err != nil {
		t.Fatalf("List(%s): %v", o, err)
	}
	return names(got)
}

func testCreateGet(t *testing.T, s secretstore.Store) {
	want := NewSecret(acme, "API_KEY")
	want.Description = "multi\nline ✓"
	mustCreate(t, s, want)
	if d := Diff(mustGet(t, s, acme, "API_KEY"), want); d != "" {
		t.Fatalf("Get after Create: %s", d)
	}
}

func testGetExactName(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "API_KEY"))
	for _, name := range []string{"api_key", "Api_Key", "API_KEy"} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Get(context.Background(), acme, name)
			wantKind(t, "Get "+name, err, errs.KindNotFound)
		})
	}
}

func testGetMissing(t *testing.T, s secretstore.Store) {
	_, err := s.Get(context.Background(), acme, "NOPE")
	wantKind(t, "Get from an empty store", err, errs.KindNotFound)
	mustCreate(t, s, NewSecret(acme, "NOPE"))
	_, err = s.Get(context.Background(), alice, "NOPE")
	wantKind(t, "Get from another owner", err, errs.KindNotFound)
}

func testOwnersSeparate(t *testing.T, s secretstore.Store) {
	// teams/acme is a prefix of teams/acme-2: its keys must not leak into
	// the other's lists. users/acme is another owner with the same id.
	owners := []secretstore.Owner{acme, acme2, secretstore.User("acme"), alice}
	for _, o := range owners {
		mustCreate(t, s, NewSecret(o, "TOKEN"), NewSecret(o, "Z_"+strings.ToUpper(strings.ReplaceAll(o.ID, "-", "_"))))
	}
	for _, o := range owners {
		want := []string{"TOKEN", "Z_" + strings.ToUpper(strings.ReplaceAll(o.ID, "-", "_"))}
		if got := listAll(t, s, o); !slices.Equal(got, want) {
			t.Errorf("List(%s): got %v, want %v", o, got, want)
		}
		if d := Diff(mustGet(t, s, o, "TOKEN"), NewSecret(o, "TOKEN")); d != "" {
			t.Errorf("Get(%s, TOKEN): %s", o, d)
		}
	}
}

func testCreateClash(t *testing.T, s secretstore.Store) {
	orig := NewSecret(acme, "API_KEY")
	mustCreate(t, s, orig)
	for _, name := range []string{"API_KEY", "api_key", "Api_Key"} {
		t.Run(name, func(t *testing.T) {
			err := create(context.Background(), s, NewSecret(acme, name))
			wantKind(t, "Create "+name, err, errs.KindAlreadyExists)
			if !strings.Contains(err.Error(), "API_KEY") {
				t.Errorf("error %q does not name the existing secret API_KEY", err)
			}
			if d := Diff(mustGet(t, s, acme, "API_KEY"), orig); d != "" {
				t.Errorf("existing secret changed: %s", d)
			}
			if got := listAll(t, s, acme); !slices.Equal(got, []string{"API_KEY"}) {
				t.Errorf("List: got %v, want [API_KEY]", got)
			}
		})
	}
	// Another owner may use the name.
	mustCreate(t, s, NewSecret(alice, "api_key"))
}

func testCreateAfterDelete(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "API_KEY"))
	if err := del(context.Background(), s, acme, "API_KEY", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustCreate(t, s, NewSecret(acme, "api_key"))
	if got := listAll(t, s, acme); !slices.Equal(got, []string{"api_key"}) {
		t.Fatalf("List: got %v, want [api_key]", got)
	}
}

func testListOrder(t *testing.T, s secretstore.Store) {
	in := []string{"b", "A", "_x", "C1", "a0", "Z", "c", "_", "Y9", "aa_"}
	for _, n := range in {
		mustCreate(t, s, NewSecret(acme, n))
	}
	want := slices.Clone(in)
	slices.SortFunc(want, func(a, b string) int {
		return strings.Compare(secretstore.FoldName(a), secretstore.FoldName(b))
	})
	if got := listAll(t, s, acme); !slices.Equal(got, want) {
		t.Fatalf("List: got %v, want %v", got, want)
	}
	for _, limit := range []int{1, 2, 3, len(in) - 1, len(in), len(in) + 1} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			var got []string
			after := ""
			for range len(in) + 2 {
				page, err := s.List(context.Background(), acme, after, limit)
				if err != nil {
					t.Fatalf("List(after %q, %d): %v", after, limit, err)
				}
				if len(page) > limit {
					t.Fatalf("List(after %q, %d): got %d secrets, want at most %d", after, limit, len(page), limit)
				}
				got = append(got, names(page)...)
				if len(page) < limit {
					break
				}
				after = page[len(page)-1].Name
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages: got %v, want %v", got, want)
			}
		})
	}
	// after is compared without regard to case.
	page, err := s.List(context.Background(), acme, "B", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(page); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("List(after B): got %v, want [c]", got)
	}
}

func testListAfterMissing(t *testing.T, s secretstore.Store) {
	for _, n := range []string{"A", "B", "D"} {
		mustCreate(t, s, NewSecret(acme, n))
	}
	page, err := s.List(context.Background(), acme, "C", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(page); !slices.Equal(got, []string{"D"}) {
		t.Fatalf("List(after C): got %v, want [D]", got)
	}
	page, err = s.List(context.Background(), acme, "D", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 {
		t.Fatalf("List(after D): got %v, want none", names(page))
	}
}

func testListEmpty(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme2, "X"))
	page, err := s.List(context.Background(), acme, "", 10)
	if err != nil {
		t.Fatalf("List of an owner without secrets: %v", err)
	}
	if len(page) != 0 {
		t.Fatalf("List of an owner without secrets: got %v, want none", names(page))
	}
}

func testUpdate(t *testing.T, s secretstore.Store) {
	orig := NewSecret(acme, "API_KEY")
	mustCreate(t, s, orig)
	calls := 0
	got, err := update(context.Background(), s, acme, "API_KEY", func(sec *secretstore.Secret) error {
		calls++
		if d := Diff(sec, orig); d != "" {
			return fmt.Errorf("fn got %s", d)
		}
		sec.Description = "new"
		sec.ValueVersion = 2
		sec.Etag = "etag-2"
		sec.UpdateTime = t0.Add(time.Hour)
		sec.Value = keyring.Envelope{KEKID: "k2", WrappedKey: []byte("w2"), Ciphertext: []byte("c2")}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls == 0 {
		t.Fatal("Update did not call fn")
	}
	want := orig.Clone()
	want.Description, want.ValueVersion, want.Etag, want.UpdateTime = "new", 2, "etag-2", t0.Add(time.Hour)
	want.Value = keyring.Envelope{KEKID: "k2", WrappedKey: []byte("w2"), Ciphertext: []byte("c2")}
	if d := Diff(got, want); d != "" {
		t.Fatalf("Update result: %s", d)
	}
	if d := Diff(mustGet(t, s, acme, "API_KEY"), want); d != "" {
		t.Fatalf("Get after Update: %s", d)
	}
}

func testUpdateFnError(t *testing.T, s secretstore.Store) {
	orig := NewSecret(acme, "API_KEY")
	mustCreate(t, s, orig)
	boom := errors.New("boom")
	_, err := update(context.Background(), s, acme, "API_KEY", func(sec *secretstore.Secret) error {
		sec.Description = "changed"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: got error %v, want %v", err, boom)
	}
	if d := Diff(mustGet(t, s, acme, "API_KEY"), orig); d != "" {
		t.Fatalf("secret changed although fn failed: %s", d)
	}
}

func testUpdateMissing(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "API_KEY"))
	for _, tc := range []struct {
		name  string
		owner secretstore.Owner
		id    string
	}{{"Missing", acme, "OTHER"}, {"OtherCase", acme, "api_key"}, {"OtherOwner", alice, "API_KEY"}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := update(context.Background(), s, tc.owner, tc.id, func(sec *secretstore.Secret) error {
				sec.Description = "changed"
				return nil
			})
			wantKind(t, "Update", err, errs.KindNotFound)
		})
	}
	if got := mustGet(t, s, acme, "API_KEY").Description; got != "description of API_KEY" {
		t.Fatalf("description: got %q, want unchanged", got)
	}
}

func testUpdateRename(t *testing.T, s secretstore.Store) {
	orig := NewSecret(acme, "API_KEY")
	mustCreate(t, s, orig)
	for _, tc := range []struct {
		name string
		fn   func(*secretstore.Secret)
	}{
		{"Name", func(sec *secretstore.Secret) { sec.Name = "OTHER" }},
		{"NameCase", func(sec *secretstore.Secret) { sec.Name = "api_key" }},
		{"Owner", func(sec *secretstore.Secret) { sec.Owner = alice }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := update(context.Background(), s, acme, "API_KEY", func(sec *secretstore.Secret) error {
				tc.fn(sec)
				return nil
			})
			if err == nil {
				t.Fatal("Update that renames: got no error")
			}
			if d := Diff(mustGet(t, s, acme, "API_KEY"), orig); d != "" {
				t.Fatalf("secret changed: %s", d)
			}
			if got := listAll(t, s, alice); len(got) != 0 {
				t.Fatalf("List(alice): got %v, want none", got)
			}
		})
	}
}

func testDelete(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "A"), NewSecret(acme, "B"))
	var seen *secretstore.Secret
	err := del(context.Background(), s, acme, "A", func(sec *secretstore.Secret) error {
		seen = sec.Clone()
		return nil
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if d := Diff(seen, NewSecret(acme, "A")); d != "" {
		t.Fatalf("check saw %s", d)
	}
	_, err = s.Get(context.Background(), acme, "A")
	wantKind(t, "Get after Delete", err, errs.KindNotFound)
	if got := listAll(t, s, acme); !slices.Equal(got, []string{"B"}) {
		t.Fatalf("List after Delete: got %v, want [B]", got)
	}
	err = del(context.Background(), s, acme, "A", nil)
	wantKind(t, "second Delete", err, errs.KindNotFound)
}

func testDeleteCheck(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "A"))
	refuse := errs.E(errs.KindFailedPrecondition, "no")
	if err := del(context.Background(), s, acme, "A", func(*secretstore.Secret) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("Delete: got error %v, want %v", err, refuse)
	}
	mustGet(t, s, acme, "A")
}

func testDeleteExactName(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "API_KEY"))
	err := del(context.Background(), s, acme, "api_key", nil)
	wantKind(t, "Delete api_key", err, errs.KindNotFound)
	mustGet(t, s, acme, "API_KEY")
}

// testEtag drives the conditional update and delete the Service builds on
// Update's fn and Delete's check.
func testEtag(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "A"))
	mismatch := errs.E(errs.KindFailedPrecondition, "etag mismatch")
	ifMatch := func(etag string) func(*secretstore.Secret) error {
		return func(sec *secretstore.Secret) error {
			if sec.Etag != etag {
				return mismatch
			}
			return nil
		}
	}
	update := func(etag, next string) error {
		_, err := update(context.Background(), s, acme, "A", func(sec *secretstore.Secret) error {
			if err := ifMatch(etag)(sec); err != nil {
				return err
			}
			sec.Etag = next
			return nil
		})
		return err
	}
	if err := update("stale", "e2"); !errors.Is(err, mismatch) {
		t.Fatalf("update with a stale etag: got %v, want %v", err, mismatch)
	}
	if err := update("etag-A", "e2"); err != nil {
		t.Fatalf("update with the current etag: %v", err)
	}
	if err := update("etag-A", "e3"); !errors.Is(err, mismatch) {
		t.Fatalf("update with the previous etag: got %v, want %v", err, mismatch)
	}
	if err := del(context.Background(), s, acme, "A", ifMatch("etag-A")); !errors.Is(err, mismatch) {
		t.Fatalf("delete with a stale etag: got %v, want %v", err, mismatch)
	}
	if got := mustGet(t, s, acme, "A").Etag; got != "e2" {
		t.Fatalf("etag: got %q, want e2", got)
	}
	if err := del(context.Background(), s, acme, "A", ifMatch("e2")); err != nil {
		t.Fatalf("delete with the current etag: %v", err)
	}
}

func testConcurrentCreatesOneName(t *testing.T, s secretstore.Store) {
	const n = 32
	var wg sync.WaitGroup
	errc := make([]error, n)
	for i := range n {
		wg.Go(func() {
			name := "SHARED"
			if i%2 == 1 {
				name = "shared"
			}
			sec := NewSecret(acme, name)
			sec.Description = fmt.Sprint("creator ", i)
			errc[i] = create(context.Background(), s, sec)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errc {
		switch {
		case err == nil:
			won++
		case errs.KindOf(err) != errs.KindAlreadyExists:
			t.Errorf("creator %d: got error %v, want AlreadyExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("creates that succeeded: got %d, want exactly 1", won)
	}
	if got := listAll(t, s, acme); len(got) != 1 {
		t.Fatalf("List: got %v, want one secret", got)
	}
}

func testConcurrentCreatesMany(t *testing.T, s secretstore.Store) {
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := create(context.Background(), s, NewSecret(acme, fmt.Sprintf("S%03d", i))); err != nil {
				t.Errorf("Create S%03d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := listAll(t, s, acme); len(got) != n {
		t.Fatalf("List: got %d secrets, want %d", len(got), n)
	}
}

func testConcurrentUpdates(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "COUNTER"))
	const n = 32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := update(context.Background(), s, acme, "COUNTER", func(sec *secretstore.Secret) error {
				sec.ValueVersion++
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	if got := mustGet(t, s, acme, "COUNTER").ValueVersion; got != 1+n {
		t.Fatalf("ValueVersion after %d concurrent increments: got %d, want %d", n, got, 1+n)
	}
}

// testConcurrentMixed runs creates, failing updates and deletes together,
// so that failures inside a batch of writes do not lose or repeat others.
func testConcurrentMixed(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "COUNTER"))
	for i := range 16 {
		mustCreate(t, s, NewSecret(acme, fmt.Sprintf("DEL%02d", i)))
	}
	var increments atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_ = create(context.Background(), s, NewSecret(acme, "COUNTER")) // always fails
		})
		wg.Go(func() {
			_, err := update(context.Background(), s, acme, "COUNTER", func(sec *secretstore.Secret) error {
				if i%2 == 0 {
					return errs.E(errs.KindFailedPrecondition, "refused")
				}
				sec.ValueVersion++
				return nil
			})
			if err == nil {
				increments.Add(1)
			}
		})
		wg.Go(func() {
			if err := del(context.Background(), s, acme, fmt.Sprintf("DEL%02d", i), nil); err != nil {
				t.Errorf("Delete DEL%02d: %v", i, err)
			}
		})
		wg.Go(func() {
			if err := create(context.Background(), s, NewSecret(acme, fmt.Sprintf("NEW%02d", i))); err != nil {
				t.Errorf("Create NEW%02d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got, want := increments.Load(), int64(8); got != want {
		t.Errorf("successful updates: got %d, want %d", got, want)
	}
	if got := mustGet(t, s, acme, "COUNTER").ValueVersion; got != 1+8 {
		t.Errorf("ValueVersion: got %d, want 9", got)
	}
	got := listAll(t, s, acme)
	if len(got) != 17 || got[0] != "COUNTER" || got[16] != "NEW15" {
		t.Errorf("List: got %v, want COUNTER and NEW00..NEW15", got)
	}
}

func testCopies(t *testing.T, s secretstore.Store) {
	in := NewSecret(acme, "A")
	if err := create(context.Background(), s, in); err != nil {
		t.Fatal(err)
	}
	in.Description = "mutated"
	in.Value.Ciphertext[0] ^= 0xff
	got := mustGet(t, s, acme, "A")
	got.Description = "mutated"
	got.Value.Ciphertext[0] ^= 0xff
	page, err := s.List(context.Background(), acme, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	page[0].Description = "mutated"
	page[0].Value.WrappedKey[0] ^= 0xff
	upd, err := update(context.Background(), s, acme, "A", func(sec *secretstore.Secret) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	upd.Value.Ciphertext[0] ^= 0xff
	if d := Diff(mustGet(t, s, acme, "A"), NewSecret(acme, "A")); d != "" {
		t.Fatalf("stored secret changed through a record handed in or out: %s", d)
	}
}

func testCanceled(t *testing.T, s secretstore.Store) {
	mustCreate(t, s, NewSecret(acme, "A"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	checks := map[string]error{
		"Create": create(ctx, s, NewSecret(acme, "B")),
		"Delete": del(ctx, s, acme, "A", nil),
	}
	_, checks["Get"] = s.Get(ctx, acme, "A")
	_, checks["List"] = s.List(ctx, acme, "", 10)
	_, checks["Update"] = update(ctx, s, acme, "A", func(*secretstore.Secret) error { return nil })
	for op, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got %v, want context.Canceled", op, err)
		}
	}
	if got := listAll(t, s, acme); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("List: got %v, want [A]", got)
	}
}

func testScan(t *testing.T, s secretstore.Store) {
	sc, ok := s.(secretstore.Scanner)
	if !ok {
		t.Skip("store is not a secretstore.Scanner")
	}
	owners := []secretstore.Owner{alice, acme2, acme, secretstore.User("bob")}
	var want []string
	for _, o := range owners {
		for _, n := range []string{"b", "A", "C"} {
			mustCreate(t, s, NewSecret(o, n))
		}
	}
	slices.SortFunc(owners, func(a, b secretstore.Owner) int { return strings.Compare(a.String(), b.String()) })
	for _, o := range owners {
		for _, n := range []string{"A", "b", "C"} {
			want = append(want, o.String()+"/"+n)
		}
	}
	for _, limit := range []int{1, 5, 12, 100} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			var got []string
			var ao secretstore.Owner
			an := ""
			for range 20 {
				page, err := sc.Scan(context.Background(), ao, an, limit)
				if err != nil {
					t.Fatal(err)
				}
				for _, sec := range page {
					got = append(got, sec.Owner.String()+"/"+sec.Name)
				}
				if len(page) < limit {
					break
				}
				ao, an = page[len(page)-1].Owner, page[len(page)-1].Name
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Scan: got %v, want %v", got, want)
			}
		})
	}
}

func testListOwners(t *testing.T, s secretstore.Store) {
	ol, ok := s.(secretstore.OwnersLister)
	if !ok {
		t.Skip("store is not a secretstore.OwnersLister")
	}
	ctx := context.Background()
	// acme-2 sorts after acme and shares its prefix: it must not leak into
	// acme's secrets.
	for _, o := range []secretstore.Owner{acme, acme2, alice} {
		for _, n := range []string{"b", "A", "C"} {
			mustCreate(t, s, NewSecret(o, n))
		}
	}
	key := func(secs []*secretstore.Secret) []string {
		var out []string
		for _, sec := range secs {
			out = append(out, sec.Owner.String()+"/"+sec.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		owners []secretstore.Owner
		want   []string
	}{
		{"UserThenTeam", []secretstore.Owner{alice, acme}, []string{"users/alice/A", "users/alice/b", "users/alice/C", "teams/acme/A", "teams/acme/b", "teams/acme/C"}},
		{"TeamThenUser", []secretstore.Owner{acme, alice}, []string{"teams/acme/A", "teams/acme/b", "teams/acme/C", "users/alice/A", "users/alice/b", "users/alice/C"}},
		{"PrefixOwner", []secretstore.Owner{acme2}, []string{"teams/acme-2/A", "teams/acme-2/b", "teams/acme-2/C"}},
		{"OwnerWithoutSecrets", []secretstore.Owner{secretstore.User("bob"), acme}, []string{"teams/acme/A", "teams/acme/b", "teams/acme/C"}},
		{"NoOwners", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ol.ListOwners(ctx, tc.owners)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(key(got), tc.want) {
				t.Fatalf("ListOwners(%v): got %v, want %v", tc.owners, key(got), tc.want)
			}
		})
	}
	// Records are whole (sealed value included) and copies.
	got, err := ol.ListOwners(ctx, []secretstore.Owner{acme})
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(got[0], NewSecret(acme, "A")); d != "" {
		t.Fatalf("ListOwners record: %s", d)
	}
	got[0].Value.Ciphertext[0] ^= 0xff
	got[0].Description = "changed"
	if d := Diff(mustGet(t, s, acme, "A"), NewSecret(acme, "A")); d != "" {
		t.Fatalf("changing a ListOwners result changed the store: %s", d)
	}
	// A canceled context is refused.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ol.ListOwners(cctx, []secretstore.Owner{acme}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListOwners with a canceled context: got %v, want context.Canceled", err)
	}
}

// testBinding: a secret's binding to hosts is kept as given, read back by
// every read, replaced and removed by Update, and never shared with a
// record handed in or out.
func testBinding(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	bound := NewSecret(acme, "BOUND")
	bound.Binding = &hostbind.Binding{Hosts: []string{"api.openai.com", "*.metabase.example.com"}, AllowBody: true}
	want := bound.Clone()
	if err := create(ctx, s, bound); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, NewSecret(acme, "PLAIN"))
	bound.Binding.Hosts[0] = "mutated.example.com" // the store kept its own copy

	if d := Diff(mustGet(t, s, acme, "BOUND"), want); d != "" {
		t.Errorf("Get: %s", d)
	}
	if got := mustGet(t, s, acme, "PLAIN"); got.Binding != nil {
		t.Errorf("Get of a secret created unbound: binding %v, want none", got.Binding)
	}
	page, err := s.List(ctx, acme, "", 10)
	if err != nil || len(page) != 2 {
		t.Fatalf("List: %d secrets, %v; want 2", len(page), err)
	}
	if d := Diff(page[0], want); d != "" {
		t.Errorf("List: %s", d)
	}
	if ol, ok := s.(secretstore.OwnersLister); ok {
		all, err := ol.ListOwners(ctx, []secretstore.Owner{acme})
		if err != nil || len(all) != 2 {
			t.Fatalf("ListOwners: %d secrets, %v; want 2", len(all), err)
		}
		if d := Diff(all[0], want); d != "" {
			t.Errorf("ListOwners: %s", d)
		}
	}
	if mg, ok := s.(secretstore.ManyGetter); ok {
		got, err := mg.GetMany(ctx, []secretstore.Owner{acme, acme}, []string{"BOUND", "PLAIN"})
		if err != nil || len(got) != 2 {
			t.Fatalf("GetMany: %v, %v", got, err)
		}
		if d := Diff(got[0], want); d != "" || got[1].Binding != nil {
			t.Errorf("GetMany: %s; unbound one's binding %v", d, got[1].Binding)
		}
	}
	mustGet(t, s, acme, "BOUND").Binding.Hosts[0] = "mutated.example.com"

	other := &hostbind.Binding{Hosts: []string{"api.example.com"}, AllowQuery: true}
	got, err := update(ctx, s, acme, "BOUND", func(sec *secretstore.Secret) error {
		sec.Binding = other
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want.Binding = other
	if d := Diff(got, want); d != "" {
		t.Errorf("Update result: %s", d)
	}
	got.Binding.Hosts[0] = "mutated.example.com"
	if d := Diff(mustGet(t, s, acme, "BOUND"), want); d != "" {
		t.Errorf("Get after the binding changed: %s", d)
	}
	if _, err := update(ctx, s, acme, "BOUND", func(sec *secretstore.Secret) error {
		sec.Binding = nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, acme, "BOUND"); got.Binding != nil {
		t.Errorf("Get after unbinding: binding %v, want none", got.Binding)
	}
}
