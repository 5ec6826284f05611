package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/suite"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// RunSealingKeys runs the conformance suite of sealing.Store against stores
// made by open, which must return a new, empty store each time:
//
//	storetest.RunSealingKeys(t, func(t *testing.T) sealing.Store { return openMine(t) })
func RunSealingKeys(t *testing.T, open func(t *testing.T) sealing.Store) {
	suite.Run(t, open,
		testSealingEmpty, testSealingReplace, testSealingFnError, testSealingCopies,
		testSealingConcurrent, testSealingCanceled, testSealingEvent, testSealingInvalidEvent,
	)
}

// NewSealingEvent returns a valid audit event of action on the sealing
// keys, for tests.
func NewSealingEvent(action string) *auditv1.Event {
	return &auditv1.Event{
		Time:     timestamppb.New(t0),
		Actor:    &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/root", Client: "cli"},
		Action:   action,
		Resource: "sealingKeys",
		Outcome:  auditv1.Outcome_OUTCOME_OK,
		Details:  map[string]string{"created": "x25519-2"},
	}
}

// NewSealingKey returns a sealing key record for tests, with fake key
// material derived from id.
func NewSealingKey(id string) *sealing.Key {
	return &sealing.Key{
		ID:         id,
		KEMID:      sealwire.KEMX25519,
		PublicKey:  []byte("public:" + id),
		CreateTime: t0,
		Private:    keyring.Envelope{KEKID: "k1", WrappedKey: []byte("wrapped:" + id), Ciphertext: []byte("private:" + id)},
	}
}

// SealingKeyDiff describes how got differs from want, "" when equal.
func SealingKeyDiff(got, want *sealing.Key) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.KEMID != want.KEMID {
		add("KEMID", got.KEMID, want.KEMID)
	}
	if !bytes.Equal(got.PublicKey, want.PublicKey) {
		add("PublicKey", got.PublicKey, want.PublicKey)
	}
	if !got.CreateTime.Equal(want.CreateTime) {
		add("CreateTime", got.CreateTime, want.CreateTime)
	}
	if !got.RetireTime.Equal(want.RetireTime) {
		add("RetireTime", got.RetireTime, want.RetireTime)
	}
	if got.Private.KEKID != want.Private.KEKID || !bytes.Equal(got.Private.WrappedKey, want.Private.WrappedKey) ||
		!bytes.Equal(got.Private.Ciphertext, want.Private.Ciphertext) {
		add("Private", got.Private, want.Private)
	}
	return strings.Join(d, "; ")
}

func sealingIDs(keys []*sealing.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	slices.Sort(out)
	return out
}

func mustReplace(t *testing.T, s sealing.Store, keys ...*sealing.Key) {
	t.Helper()
	_, err := s.UpdateSealingKeys(context.Background(), func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return keys, NewSealingEvent("sealing_key.rotate"), nil
	})
	if err != nil {
		t.Fatalf("UpdateSealingKeys: %v", err)
	}
}

func testSealingEmpty(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	keys, err := s.SealingKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("SealingKeys of an empty store: got %v, %v; want none", keys, err)
	}
	_, err = s.SealingKey(ctx, "x25519-1")
	wantKind(t, "SealingKey of an empty store", err, errs.KindNotFound)
}

func testSealingReplace(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	a, b := NewSealingKey("x25519-1"), NewSealingKey("mlkem768x25519-1")
	b.KEMID = sealwire.KEMMLKEM768X25519
	mustReplace(t, s, a, b)
	for _, want := range []*sealing.Key{a, b} {
		got, err := s.SealingKey(ctx, want.ID)
		if err != nil {
			t.Fatalf("SealingKey %s: %v", want.ID, err)
		}
		if d := SealingKeyDiff(got, want); d != "" {
			t.Errorf("SealingKey %s: %s", want.ID, d)
		}
	}

	retired := a.Clone()
	retired.RetireTime = t0.Add(time.Hour)
	c := NewSealingKey("x25519-2")
	var seen []string
	got, err := s.UpdateSealingKeys(ctx, func(old []*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		seen = sealingIDs(old)
		return []*sealing.Key{retired, c}, NewSealingEvent("sealing_key.rotate"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mlkem768x25519-1", "x25519-1"}; !slices.Equal(seen, want) {
		t.Errorf("fn saw %v, want %v", seen, want)
	}
	if want := []string{"x25519-1", "x25519-2"}; !slices.Equal(sealingIDs(got), want) {
		t.Errorf("UpdateSealingKeys returned %v, want %v", sealingIDs(got), want)
	}
	all, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x25519-1", "x25519-2"}; !slices.Equal(sealingIDs(all), want) {
		t.Errorf("SealingKeys after replacing: got %v, want %v", sealingIDs(all), want)
	}
	got1, err := s.SealingKey(ctx, "x25519-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := SealingKeyDiff(got1, retired); d != "" {
		t.Errorf("retired key: %s", d)
	}
	_, err = s.SealingKey(ctx, "mlkem768x25519-1")
	wantKind(t, "SealingKey of a dropped key", err, errs.KindNotFound)
}

func testSealingFnError(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	mustReplace(t, s, NewSealingKey("x25519-1"))
	boom := errs.E(errs.KindPermissionDenied, "no")
	_, err := s.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return nil, NewSealingEvent("sealing_key.rotate"), boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateSealingKeys: got %v, want fn's error as is", err)
	}
	all, err := s.SealingKeys(ctx)
	if err != nil || !slices.Equal(sealingIDs(all), []string{"x25519-1"}) {
		t.Fatalf("after a refused update: got %v, %v; want [x25519-1]", sealingIDs(all), err)
	}
	if n := len(pendingEvents(t, s.Outbox())); n != 1 {
		t.Fatalf("events after a refused update: got %d, want 1 (the first update's)", n)
	}
}

func testSealingCopies(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	k := NewSealingKey("x25519-1")
	want := k.Clone()
	mustReplace(t, s, k)
	k.PublicKey[0] = 'X'
	k.Private.Ciphertext[0] = 'X'
	got, err := s.SealingKey(ctx, "x25519-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := SealingKeyDiff(got, want); d != "" {
		t.Fatalf("the stored key changed with the caller's copy: %s", d)
	}
	got.PublicKey[0] = 'Y'
	all, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all[0].Private.WrappedKey[0] = 'Y'
	again, err := s.SealingKey(ctx, "x25519-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := SealingKeyDiff(again, want); d != "" {
		t.Fatalf("the stored key changed with a returned copy: %s", d)
	}
}

// testSealingConcurrent runs read-modify-write updates at once: each adds
// one key to what it saw, so none may be lost.
func testSealingConcurrent(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateSealingKeys(ctx, func(old []*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
				return append(old, NewSealingKey(fmt.Sprintf("x25519-%d", i+1))), NewSealingEvent("sealing_key.create"), nil
			})
			if err != nil {
				t.Errorf("UpdateSealingKeys: %v", err)
			}
		})
	}
	wg.Wait()
	all, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("after %d concurrent additions: got %d keys (%v)", n, len(all), sealingIDs(all))
	}
	if got := len(pendingEvents(t, s.Outbox())); got != n {
		t.Fatalf("events after %d concurrent additions: got %d, want %d", n, got, n)
	}
}

func testSealingCanceled(t *testing.T, s sealing.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.SealingKeys(ctx); err == nil {
		t.Error("SealingKeys with a canceled context: got no error")
	}
	if _, err := s.SealingKey(ctx, "x25519-1"); err == nil {
		t.Error("SealingKey with a canceled context: got no error")
	}
	called := false
	_, err := s.UpdateSealingKeys(ctx, func(old []*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		called = true
		return old, NewSealingEvent("sealing_key.rotate"), nil
	})
	if err == nil || called {
		t.Errorf("UpdateSealingKeys with a canceled context: got %v (fn called: %v), want an error before fn", err, called)
	}
}

// testSealingEvent: an update's event is in the outbox, as given (an id
// and nothing else added); a refused update adds none.
func testSealingEvent(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	ev := NewSealingEvent("sealing_key.rotate")
	_, err := s.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return []*sealing.Key{NewSealingKey("x25519-2")}, ev, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	evs := pendingEvents(t, s.Outbox())
	if len(evs) != 1 {
		t.Fatalf("events: got %d, want 1", len(evs))
	}
	checkStored(t, evs[0], ev)
}

// testSealingInvalidEvent: a nil event, or one the audit service would
// refuse, fails the update: no key changes, no event is stored.
func testSealingInvalidEvent(t *testing.T, s sealing.Store) {
	ctx := context.Background()
	mustReplace(t, s, NewSealingKey("x25519-1"))
	bad := NewSealingEvent("sealing_key.rotate")
	bad.Action = "not an action"
	for name, ev := range map[string]*auditv1.Event{"Nil": nil, "Invalid": bad} {
		t.Run(name, func(t *testing.T) {
			_, err := s.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
				return []*sealing.Key{NewSealingKey("x25519-9")}, ev, nil
			})
			if err == nil {
				t.Fatal("UpdateSealingKeys: got no error")
			}
			all, err := s.SealingKeys(ctx)
			if err != nil || !slices.Equal(sealingIDs(all), []string{"x25519-1"}) {
				t.Fatalf("keys: got %v, %v; want [x25519-1]", sealingIDs(all), err)
			}
			if n := len(pendingEvents(t, s.Outbox())); n != 1 {
				t.Fatalf("events: got %d, want 1 (the first update's)", n)
			}
		})
	}
}
