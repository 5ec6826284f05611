package sealing_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.RunSealingKeys(t, func(*testing.T) sealing.Store { return &sealing.MemStore{} })
}

var (
	t0       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sysadmin = &auth.Principal{Kind: auth.KindUser, Name: "users/root", ID: "root", SystemAdmin: true}
)

type env struct {
	store *countingStore
	kr    *keyring.Keyring
	now   atomic.Pointer[time.Time]
	svc   *sealing.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: &countingStore{Store: &sealing.MemStore{}}, kr: kr}
	e.now.Store(&t0)
	e.svc = e.service(kr)
	return e
}

func (e *env) service(kr *keyring.Keyring) *sealing.Service {
	return sealing.NewService(sealing.Config{Store: e.store, Keyring: kr, Grace: time.Hour, Now: func() time.Time { return *e.now.Load() }})
}

func (e *env) advance(d time.Duration) {
	t := e.now.Load().Add(d)
	e.now.Store(&t)
}

// countingStore counts updates.
type countingStore struct {
	sealing.Store
	updates atomic.Int32
}

func (c *countingStore) UpdateSealingKeys(ctx context.Context, fn func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error)) ([]*sealing.Key, error) {
	c.updates.Add(1)
	return c.Store.UpdateSealingKeys(ctx, fn)
}

func ids(keys []*sealing.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func seal(t *testing.T, k *sealing.Key, info, value string) []byte {
	t.Helper()
	kem, err := hpke.NewKEM(k.KEMID)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kem.NewPublicKey(k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got %v, want an invalid-argument error for %s", err, field)
	}
}

func TestInfo(t *testing.T) {
	if got, want := string(sealwire.SecretInfo("teams/acme", "API_KEY")), "oz-secret-v1|teams/acme/secrets/API_KEY"; got != want {
		t.Fatalf("Info: got %q, want %q", got, want)
	}
}

func TestInitOnceThenStable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, err := e.svc.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(first), []string{"mlkem768x25519-1", "x25519-1"}; !slices.Equal(got, want) {
		t.Fatalf("Init: got %v, want %v", got, want)
	}
	for _, k := range first {
		if !k.Private.IsZero() {
			t.Errorf("Init returned the wrapped private key of %s; want public halves only", k.ID)
		}
		if !k.Current() || !k.CreateTime.Equal(t0) {
			t.Errorf("%s: got current %v, created %v", k.ID, k.Current(), k.CreateTime)
		}
	}
	updates := e.store.updates.Load()
	// A restart (a new Service over the same store) makes no new keys.
	again, err := e.service(e.kr).Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(again), ids(first)) || !bytes.Equal(again[0].PublicKey, first[0].PublicKey) {
		t.Fatalf("second Init: got %v, want the same keys %v", ids(again), ids(first))
	}
	if n := e.store.updates.Load(); n != updates {
		t.Errorf("second Init wrote to the store (%d updates, want %d)", n, updates)
	}
}

func TestInitConcurrent(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := e.service(e.kr).Init(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	all, err := e.store.SealingKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("after concurrent Inits: got %d keys (%v), want one per KEM", len(all), ids(all))
	}
}

func TestInitWithAnotherKeyringFails(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	other, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.service(other).Init(context.Background()); err == nil || !errors.Is(err, keyring.ErrOpen) || !strings.Contains(err.Error(), "does not unwrap with the keyring") {
		t.Fatalf("Init with another keyring: got %v, want an unwrap error", err)
	}
}

// TestPrivateKeyBoundToItsRecord swaps the wrapped private keys of two
// records: neither opens any more.
func TestPrivateKeyBoundToItsRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Rotate(ctx, sysadmin.Name); err != nil {
		t.Fatal(err)
	}
	_, err := e.store.UpdateSealingKeys(ctx, func(keys []*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		var a, b *sealing.Key
		for _, k := range keys {
			switch k.ID {
			case "x25519-1":
				a = k
			case "x25519-2":
				b = k
			}
		}
		a.Private, b.Private = b.Private, a.Private
		return keys, storetest.NewSealingEvent("sealing_key.rewrap"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.service(e.kr) // nothing cached
	k, err := e.store.SealingKey(ctx, "x25519-2")
	if err != nil {
		t.Fatal(err)
	}
	info := string(sealwire.SecretInfo("teams/acme", "A"))
	if _, err := fresh.Open(ctx, "x25519-2", seal(t, k, info, "v"), []byte(info)); err == nil || errs.KindOf(err) != errs.KindInternal {
		t.Fatalf("Open with a swapped private key: got %v, want an internal unwrap error", err)
	}
}

func TestOpen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys, err := e.svc.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info := "oz-secret-v1|users/alice/secrets/TOKEN"
	for _, k := range keys {
		ct := seal(t, k, info, "s3cret\nvalue")
		got, err := e.svc.Open(ctx, k.ID, ct, []byte(info))
		if err != nil || string(got) != "s3cret\nvalue" {
			t.Fatalf("Open with %s: got %q, %v", k.ID, got, err)
		}
		_, err = e.svc.Open(ctx, k.ID, ct, []byte("oz-secret-v1|users/bob/secrets/TOKEN"))
		wantField(t, err, sealing.FieldCiphertext)
		_, err = e.svc.Open(ctx, k.ID, ct[:len(ct)-1], []byte(info))
		wantField(t, err, sealing.FieldCiphertext)
	}
	_, err = e.svc.Open(ctx, "x25519-7", []byte("x"), []byte(info))
	wantField(t, err, sealing.FieldKeyID)
	_, err = e.svc.Open(ctx, "no such/key", []byte("x"), []byte(info))
	wantField(t, err, sealing.FieldKeyID)
	_, err = e.svc.Open(ctx, "x25519-1", nil, []byte(info))
	wantField(t, err, sealing.FieldCiphertext)
}

func TestRotateAndGrace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys, err := e.svc.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    *auth.Principal
		want errs.Kind
	}{
		{nil, errs.KindUnauthenticated},
		{&auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}, errs.KindPermissionDenied},
		{&auth.Principal{Kind: auth.KindRunner, Name: "runners/r1", SystemAdmin: true}, errs.KindPermissionDenied},
	} {
		if err := sealing.CheckRotate(tc.p); errs.KindOf(err) != tc.want || err == nil {
			t.Errorf("CheckRotate(%v): got %v, want kind %v", tc.p, err, tc.want)
		}
	}
	if err := sealing.CheckRotate(sysadmin); err != nil {
		t.Errorf("CheckRotate(a system admin): got %v", err)
	}
	info := "oz-secret-v1|teams/acme/secrets/A"
	ct := seal(t, keys[1], info, "v")

	e.advance(time.Minute)
	rotated, err := e.svc.Rotate(ctx, sysadmin.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(rotated), []string{"mlkem768x25519-2", "x25519-2", "mlkem768x25519-1", "x25519-1"}; !slices.Equal(got, want) {
		t.Fatalf("after Rotate: got %v, want %v", got, want)
	}
	if exp := e.svc.ExpireTime(rotated[3]); !exp.Equal(t0.Add(time.Minute + time.Hour)) {
		t.Errorf("ExpireTime of x25519-1: got %v", exp)
	}
	e.advance(time.Hour - time.Nanosecond)
	if _, err := e.svc.Open(ctx, "x25519-1", ct, []byte(info)); err != nil {
		t.Fatalf("Open with the previous key within the grace: %v", err)
	}
	e.advance(time.Nanosecond)
	_, err = e.svc.Open(ctx, "x25519-1", ct, []byte(info))
	wantField(t, err, sealing.FieldKeyID)
	listed, err := e.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(listed), []string{"mlkem768x25519-2", "x25519-2"}; !slices.Equal(got, want) {
		t.Fatalf("List after the grace: got %v, want %v", got, want)
	}
	// A restart drops the expired keys from storage.
	if _, err := e.service(e.kr).Init(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := e.store.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("stored after Init past the grace: got %v, want the 2 current keys", ids(all))
	}
}

func TestRewrap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys, err := e.svc.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.Rewrap(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Rewrap: got %d, %v; want 2", n, err)
	}
	all, err := e.store.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range all {
		if k.Private.KEKID != e.kr.Primary() {
			t.Errorf("%s: wrapped by %s, want %s", k.ID, k.Private.KEKID, e.kr.Primary())
		}
	}
	if n, err := e.svc.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("second Rewrap: got %d, %v; want 0", n, err)
	}
	// A fresh service (nothing cached) opens with the rewrapped keys.
	info := "oz-secret-v1|teams/acme/secrets/A"
	if _, err := e.service(e.kr).Open(ctx, keys[0].ID, seal(t, keys[0], info, "v"), []byte(info)); err != nil {
		t.Fatalf("Open after Rewrap: %v", err)
	}
}

// TestEvents: every change to the sealing keys is one event on the system
// chain, naming key ids only: the keys made at first start (by the
// service), a rotation (by its caller), keys dropped after their grace, a
// rewrap; an Init with nothing to do writes none.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	events := func() []string {
		t.Helper()
		evs, err := e.store.Outbox().Pending(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			if ev.GetTeam() != "" || ev.GetResource() != sealing.EventResource || ev.GetOutcome() != auditv1.Outcome_OUTCOME_OK {
				t.Errorf("event %v: want the system chain, resource %s, OK", ev, sealing.EventResource)
			}
			d := ev.GetDetails()
			out = append(out, fmt.Sprintf("%s by %s: created=%s retired=%s dropped=%s rewrapped=%s kek=%s", ev.GetAction(), ev.GetActor().GetName(),
				d["created"], d["retired"], d["dropped"], d["rewrapped"], d["kek_id"]))
		}
		return out
	}
	if _, err := e.svc.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Init(ctx); err != nil { // nothing to do
		t.Fatal(err)
	}
	rctx := auth.WithPrincipal(ctx, sysadmin)
	if _, err := e.svc.Rotate(rctx, sysadmin.Name); err != nil {
		t.Fatal(err)
	}
	e.advance(2 * time.Hour) // past the grace
	if _, err := e.svc.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Rewrap(ctx); err != nil || n != 2 {
		t.Fatalf("Rewrap: got %d, %v; want 2", n, err)
	}
	if n, err := e.svc.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("Rewrap again: got %d, %v; want 0", n, err)
	}
	want := []string{
		"sealing_key.create by secretstore: created=mlkem768x25519-1,x25519-1 retired= dropped= rewrapped= kek=",
		"sealing_key.rotate by users/root: created=mlkem768x25519-2,x25519-2 retired=mlkem768x25519-1,x25519-1 dropped= rewrapped= kek=",
		"sealing_key.delete by secretstore: created= retired= dropped=mlkem768x25519-1,x25519-1 rewrapped= kek=",
		"sealing_key.rewrap by secretstore: created= retired= dropped= rewrapped=mlkem768x25519-2,x25519-2 kek=k2",
	}
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}
