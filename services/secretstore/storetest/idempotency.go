package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/suite"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// RunIdempotency runs the tests of writes sent again with an idempotency
// key (secretstore/idempotency.go) over a Service on stores made by open:
// the store commits a write's answer with the write, so that the key sent
// again answers as the first time and changes nothing.
func RunIdempotency(t *testing.T, open func(t *testing.T) secretstore.Store) {
	suite.Run(t, func(t *testing.T) *idemEnv { return newIdemEnv(t, open(t)) },
		testIdemCreateAgain, testIdemWithoutKeyDuplicates, testIdemOtherRequest, testIdemOtherValue,
		testIdemScopedToCaller, testIdemScopedToMethod, testIdemUpdateAgain, testIdemDeleteAgain,
		testIdemConcurrent, testIdemRaceLost, testIdemRefusedNotRemembered, testIdemExpires, testIdemBadKey,
		testIdemKeyringRotated, testIdemBinding,
	)
}

type idemEnv struct {
	store secretstore.Store
	svc   *secretstore.Service
	keys  *keyring.Keyring
	mu    sync.Mutex
	now   time.Time
}

func newIdemEnv(t *testing.T, s secretstore.Store) *idemEnv {
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &idemEnv{store: s, keys: kr, now: t0}
	e.svc = secretstore.NewService(secretstore.Config{Store: s, Keyring: kr, Now: e.clock})
	return e
}

func (e *idemEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *idemEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

var (
	idemAdmin = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	idemOther = &auth.Principal{Kind: auth.KindUser, Name: "users/dana", ID: "dana", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
)

// events counts the pending events of action.
func (e *idemEnv) events(t *testing.T, action string) int {
	t.Helper()
	n := 0
	for _, ev := range pendingEvents(t, e.store.Outbox()) {
		if ev.GetAction() == action {
			n++
		}
	}
	return n
}

func createReq(name, value, key string) secretstore.CreateRequest {
	return secretstore.CreateRequest{Parent: "teams/acme", SecretID: name, Value: []byte(value), Description: "d", IdempotencyKey: key}
}

func wantField(t *testing.T, what string, err error) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != idempotency.Field {
		t.Fatalf("%s: got %v, want an invalid-argument error naming %q", what, err, idempotency.Field)
	}
}

// testIdemCreateAgain: the create sent again with its key gets the first
// answer; one secret, one version, one event.
func testIdemCreateAgain(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	first, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	again, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil {
		t.Fatalf("create sent again with its key: %v, want the first answer", err)
	}
	if d := Diff(again, first); d != "" {
		t.Errorf("create sent again: %s", d)
	}
	stored := mustGet(t, e.store, acme, "API_KEY")
	if stored.ValueVersion != 1 || stored.Etag != first.Etag {
		t.Errorf("stored: version %d etag %q, want 1 and %q", stored.ValueVersion, stored.Etag, first.Etag)
	}
	if n := e.events(t, audit.ActionSecretCreate); n != 1 {
		t.Errorf("secret.create events: got %d, want 1", n)
	}
}

// testIdemWithoutKeyDuplicates: without a key, a create sent again is a
// new request, refused as a duplicate (what the key is for).
func testIdemWithoutKeyDuplicates(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "")); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", ""))
	wantKind(t, "create sent again without a key", err, errs.KindAlreadyExists)
}

// testIdemOtherRequest: a key sent with another request is refused, naming
// the key, and nothing changes.
func testIdemOtherRequest(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, idemAdmin, createReq("OTHER", "v1", "key-1"))
	wantField(t, "the key sent with another create", err)
	if _, err := e.store.Get(ctx, acme, "OTHER"); !errors.Is(err, errs.NotFound) {
		t.Errorf("OTHER after the refusal: %v, want not found", err)
	}
	if n := e.events(t, audit.ActionSecretCreate); n != 1 {
		t.Errorf("secret.create events: got %d, want 1", n)
	}
}

// testIdemOtherValue: the value is part of the request: the same key with
// another value is another request.
func testIdemOtherValue(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v2", "key-1"))
	wantField(t, "the key sent with another value", err)
	sealed := createReq("API_KEY", "", "key-1")
	sealed.Sealed = &secretstore.SealedValue{KeyID: "k", Ciphertext: []byte("v1")}
	_, err = e.svc.Create(ctx, idemAdmin, sealed)
	wantField(t, "the key sent with the value sealed instead", err)
}

// testIdemScopedToCaller: one caller's key never answers another's.
func testIdemScopedToCaller(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, idemOther, createReq("API_KEY", "v1", "key-1"))
	wantKind(t, "another admin's create with the same key", err, errs.KindAlreadyExists)
	if _, err := e.svc.Create(ctx, idemOther, createReq("DANAS", "v1", "key-1")); err != nil {
		t.Errorf("another admin's own create with the same key: %v, want it made", err)
	}
}

// testIdemScopedToMethod: a key counts for one kind of write.
func testIdemScopedToMethod(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil {
		t.Fatal(err)
	}
	err := e.svc.Delete(ctx, idemAdmin, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY", IdempotencyKey: "key-1"})
	if err != nil {
		t.Fatalf("delete with the key of a create: %v, want it done", err)
	}
	if _, err := e.store.Get(ctx, acme, "API_KEY"); !errors.Is(err, errs.NotFound) {
		t.Errorf("after the delete: %v, want not found", err)
	}
}

// testIdemUpdateAgain: the update sent again (its etag now stale) gets the
// first answer; one new version, one event.
func testIdemUpdateAgain(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	created, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", ""))
	if err != nil {
		t.Fatal(err)
	}
	req := secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte("v2"), Etag: created.Etag, IdempotencyKey: "upd-1"}
	first, err := e.svc.Update(ctx, idemAdmin, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Update(ctx, idemAdmin, req)
	if err != nil {
		t.Fatalf("update sent again with its key: %v, want the first answer", err)
	}
	if d := Diff(again, first); d != "" {
		t.Errorf("update sent again: %s", d)
	}
	if got := mustGet(t, e.store, acme, "API_KEY"); got.ValueVersion != 2 || got.Etag != first.Etag {
		t.Errorf("stored: version %d etag %q, want 2 and %q", got.ValueVersion, got.Etag, first.Etag)
	}
	if n := e.events(t, audit.ActionSecretUpdate); n != 1 {
		t.Errorf("secret.update events: got %d, want 1", n)
	}
	req.IdempotencyKey = ""
	_, err = e.svc.Update(ctx, idemAdmin, req)
	wantKind(t, "the same update without its key", err, errs.KindFailedPrecondition)
}

// testIdemDeleteAgain: the delete sent again succeeds as the first did.
func testIdemDeleteAgain(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "")); err != nil {
		t.Fatal(err)
	}
	req := secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY", IdempotencyKey: "del-1"}
	if err := e.svc.Delete(ctx, idemAdmin, req); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delete(ctx, idemAdmin, req); err != nil {
		t.Errorf("delete sent again with its key: %v, want success", err)
	}
	if n := e.events(t, audit.ActionSecretDelete); n != 1 {
		t.Errorf("secret.delete events: got %d, want 1", n)
	}
	req.IdempotencyKey = ""
	wantKind(t, "the same delete without its key", e.svc.Delete(ctx, idemAdmin, req), errs.KindNotFound)
}

// testIdemConcurrent: duplicates sent at once: one write, and every one
// gets its answer (or Unavailable, to retry, never a duplicate error).
func testIdemConcurrent(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	got := make([]*secretstore.Secret, n)
	errc := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errc[i] = e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
		}()
	}
	wg.Wait()
	stored := mustGet(t, e.store, acme, "API_KEY")
	for i := range n {
		switch {
		case errc[i] == nil:
			if got[i].Etag != stored.Etag || got[i].ValueVersion != 1 {
				t.Errorf("duplicate %d: etag %q version %d, want the stored %q and 1", i, got[i].Etag, got[i].ValueVersion, stored.Etag)
			}
		case errs.KindOf(errc[i]) == errs.KindUnavailable:
			// Allowed: retried, it gets the answer.
			again, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
			if err != nil || again.Etag != stored.Etag {
				t.Errorf("duplicate %d retried: %v, %v; want the stored etag %q", i, again, err, stored.Etag)
			}
		default:
			t.Errorf("duplicate %d: %v, want the first answer", i, errc[i])
		}
	}
	if n := e.events(t, audit.ActionSecretCreate); n != 1 {
		t.Errorf("secret.create events: got %d, want 1", n)
	}
}

// barrierStore holds every Create and Update until n of them have come:
// duplicates that all looked up their key before any committed.
type barrierStore struct {
	secretstore.Store
	arrived *sync.WaitGroup
}

func (b *barrierStore) Create(ctx context.Context, s *secretstore.Secret, ev *auditv1.Event) error {
	b.arrived.Done()
	b.arrived.Wait()
	return b.Store.Create(ctx, s, ev)
}

func (b *barrierStore) Update(ctx context.Context, o secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) (*secretstore.Secret, error) {
	b.arrived.Done()
	b.arrived.Wait()
	return b.Store.Update(ctx, o, name, fn)
}

// testIdemRaceLost: duplicates that both found their key free: one
// commits; the other, refused by the store (its key taken meanwhile),
// answers with the first's answer, not a duplicate error.
func testIdemRaceLost(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	race := func(do func(svc *secretstore.Service) (*secretstore.Secret, error)) [2]*secretstore.Secret {
		t.Helper()
		var arrived, done sync.WaitGroup
		arrived.Add(2)
		svc := secretstore.NewService(secretstore.Config{Store: &barrierStore{Store: e.store, arrived: &arrived}, Keyring: e.keys, Now: e.clock})
		var got [2]*secretstore.Secret
		var errc [2]error
		for i := range 2 {
			done.Add(1)
			go func() {
				defer done.Done()
				got[i], errc[i] = do(svc)
			}()
		}
		done.Wait()
		for i, err := range errc {
			if err != nil {
				t.Fatalf("duplicate %d: %v, want the first answer", i, err)
			}
		}
		if got[0].Etag != got[1].Etag {
			t.Errorf("the duplicates answered etags %q and %q, want one", got[0].Etag, got[1].Etag)
		}
		return got
	}
	race(func(svc *secretstore.Service) (*secretstore.Secret, error) {
		return svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	})
	got := race(func(svc *secretstore.Service) (*secretstore.Secret, error) {
		// A description: value updates of one secret take turns in the
		// service, before the store.
		return svc.Update(ctx, idemAdmin, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Description: "new", IdempotencyKey: "key-2"})
	})
	if got[0].Description != "new" {
		t.Errorf("after the update race: description %q, want new", got[0].Description)
	}
	for action, want := range map[string]int{audit.ActionSecretCreate: 1, audit.ActionSecretUpdate: 1} {
		if n := e.events(t, action); n != want {
			t.Errorf("%s events: got %d, want %d", action, n, want)
		}
	}
}

// testIdemRefusedNotRemembered: a write that did not commit leaves no
// record: the key sent again is decided afresh.
func testIdemRefusedNotRemembered(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v0", "")); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	wantKind(t, "create of a name taken", err, errs.KindAlreadyExists)
	if err := e.svc.Delete(ctx, idemAdmin, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil {
		t.Errorf("the refused create sent again once the name is free: %v, want it made", err)
	}
}

// testIdemExpires: a key is remembered for idempotency.TTL, then it names
// a new request.
func testIdemExpires(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	first, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.advance(idempotency.TTL - time.Second)
	if again, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil || again.Etag != first.Etag {
		t.Fatalf("just within the TTL: %v, %v; want the first answer", again, err)
	}
	e.advance(2 * time.Second)
	_, err = e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	wantKind(t, "after the TTL", err, errs.KindAlreadyExists)
	if err := e.svc.Delete(ctx, idemAdmin, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
		t.Fatal(err)
	}
	second, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil || second.Etag == first.Etag {
		t.Fatalf("after the TTL, the name free: %v, %v; want a new secret", second, err)
	}
	if again, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1")); err != nil || again.Etag != second.Etag {
		t.Errorf("the key reused after the TTL, sent again: %v, %v; want the second answer", again, err)
	}
}

// testIdemBadKey: a malformed key is refused, naming the field, before
// anything is written.
func testIdemBadKey(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	for _, key := range []string{"has space", "oz_0123456789abcdef_CANARY", string(make([]byte, 200))} {
		_, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", key))
		wantField(t, "a malformed key", err)
	}
	if _, err := e.store.Get(ctx, acme, "API_KEY"); !errors.Is(err, errs.NotFound) {
		t.Errorf("after the refusals: %v, want not found", err)
	}
}

// testIdemKeyringRotated: a fingerprint made before the keyring rotated
// still matches (it names its key).
func testIdemKeyringRotated(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	first, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v1", "key-1"))
	if err != nil || again.Etag != first.Etag {
		t.Errorf("sent again after a rotation: %v, %v; want the first answer", again, err)
	}
	_, err = e.svc.Create(ctx, idemAdmin, createReq("API_KEY", "v2", "key-1"))
	wantField(t, "another value after a rotation", err)
}

// testIdemBinding: the binding is part of the request, and of the answer
// given again: the same key with another binding (or none) is another
// request, for a create and for an update.
func testIdemBinding(t *testing.T, e *idemEnv) {
	ctx := context.Background()
	const value = "a value long enough to bind"
	req := createReq("API_KEY", value, "key-1")
	req.Binding = &hostbind.Binding{Hosts: []string{"api.example.com"}}
	first, err := e.svc.Create(ctx, idemAdmin, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Create(ctx, idemAdmin, req)
	if err != nil {
		t.Fatalf("create sent again with its key: %v", err)
	}
	if d := Diff(again, first); d != "" || again.Binding == nil {
		t.Errorf("create sent again: %s (binding %v)", d, again.Binding)
	}
	for name, b := range map[string]*hostbind.Binding{
		"OtherHost":  {Hosts: []string{"other.example.com"}},
		"OtherFlag":  {Hosts: []string{"api.example.com"}, AllowQuery: true},
		"NoBinding":  nil,
		"OtherOrder": {Hosts: []string{"api.example.com", "b.example.com"}},
	} {
		other := createReq("API_KEY", value, "key-1")
		other.Binding = b
		_, err := e.svc.Create(ctx, idemAdmin, other)
		wantField(t, "the key of a create sent with another binding: "+name, err)
	}

	upd := secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", UpdateMask: []string{"binding"},
		Binding: &hostbind.Binding{Hosts: []string{"*.example.com"}, AllowBody: true}, IdempotencyKey: "upd-1"}
	firstUpd, err := e.svc.Update(ctx, idemAdmin, upd)
	if err != nil {
		t.Fatal(err)
	}
	againUpd, err := e.svc.Update(ctx, idemAdmin, upd)
	if err != nil {
		t.Fatalf("update sent again with its key: %v", err)
	}
	if d := Diff(againUpd, firstUpd); d != "" {
		t.Errorf("update sent again: %s", d)
	}
	upd.Binding = nil
	_, err = e.svc.Update(ctx, idemAdmin, upd)
	wantField(t, "the key of an update sent with another binding", err)
	if got := mustGet(t, e.store, acme, "API_KEY"); !got.Binding.Equal(firstUpd.Binding) || got.Etag != firstUpd.Etag {
		t.Errorf("stored: binding %v etag %q, want %v and %q", got.Binding, got.Etag, firstUpd.Binding, firstUpd.Etag)
	}
	if n := e.events(t, audit.ActionSecretUpdate); n != 1 {
		t.Errorf("secret.update events: got %d, want 1", n)
	}
}
