package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
)

// The audit events of a Store: every change commits with its event, and
// nothing else writes one.

// pendingEvents returns every event waiting in o, oldest first.
func pendingEvents(t *testing.T, o outbox.Source) []*auditv1.Event {
	t.Helper()
	evs, err := o.Pending(context.Background(), 1<<20)
	if err != nil {
		t.Fatalf("Outbox().Pending: %v", err)
	}
	return evs
}

// checkStored checks that got is want as an outbox stores it: with an id
// starting with the emitter's name, and nothing else changed.
func checkStored(t *testing.T, got, want *auditv1.Event) {
	t.Helper()
	if !strings.HasPrefix(got.GetId(), secretstore.Emitter+"-") {
		t.Errorf("event id %q: want one starting with %q (the audit service accepts no other from the secretstore)", got.GetId(), secretstore.Emitter+"-")
	}
	c := proto.Clone(got).(*auditv1.Event)
	c.Id = ""
	if !proto.Equal(c, want) {
		t.Errorf("stored event: got %v, want %v", c, want)
	}
}

// testEventsWithChanges: each change's event is in the outbox, in the
// order of the changes, as given (with an id assigned); the event passed
// in is not modified.
func testEventsWithChanges(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	a, p := NewSecret(acme, "A"), NewSecret(alice, "P")
	evA := NewEvent(audit.ActionSecretCreate, a)
	evA.RequestId = "req-1"
	evA.Details["sealed"] = "true"
	if err := s.Create(ctx, a.Clone(), evA); err != nil {
		t.Fatal(err)
	}
	if evA.GetId() != "" {
		t.Errorf("Create assigned an id to the caller's event: %q", evA.GetId())
	}
	evP := NewEvent(audit.ActionSecretCreate, p)
	if err := s.Create(ctx, p.Clone(), evP); err != nil {
		t.Fatal(err)
	}
	var evU *auditv1.Event
	if _, err := s.Update(ctx, acme, "A", func(sec *secretstore.Secret) (*auditv1.Event, error) {
		sec.ValueVersion++
		evU = NewEvent(audit.ActionSecretUpdate, sec)
		evU.Details[audit.DetailValueChanged] = "true"
		return evU, nil
	}); err != nil {
		t.Fatal(err)
	}
	if evU.GetDetails()[audit.DetailValueVersion] != "2" {
		t.Fatalf("fn built its event from the secret as it saw it: value_version %s", evU.GetDetails()[audit.DetailValueVersion])
	}
	var evD *auditv1.Event
	if err := s.Delete(ctx, alice, "P", func(sec *secretstore.Secret) (*auditv1.Event, error) {
		evD = NewEvent(audit.ActionSecretDelete, sec)
		return evD, nil
	}); err != nil {
		t.Fatal(err)
	}
	evs := pendingEvents(t, s.Outbox())
	if len(evs) != 4 {
		t.Fatalf("events after 4 changes: got %d, want 4", len(evs))
	}
	ids := map[string]bool{}
	for i, want := range []*auditv1.Event{evA, evP, evU, evD} {
		checkStored(t, evs[i], want)
		if ids[evs[i].GetId()] {
			t.Errorf("event id %s repeated", evs[i].GetId())
		}
		ids[evs[i].GetId()] = true
	}
}

// testEventsOnlyWithChanges: a change that is refused or fails stores no
// event.
func testEventsOnlyWithChanges(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewSecret(acme, "A"))
	refuse := errs.E(errs.KindFailedPrecondition, "etag mismatch")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for name, op := range map[string]func() error{
		"ConflictingCreate": func() error { return create(ctx, s, NewSecret(acme, "a")) },
		"UpdateFnError": func() error {
			_, err := update(ctx, s, acme, "A", func(*secretstore.Secret) error { return refuse })
			return err
		},
		"UpdateMissing": func() error {
			_, err := update(ctx, s, acme, "B", func(*secretstore.Secret) error { return nil })
			return err
		},
		"UpdateRename": func() error {
			_, err := update(ctx, s, acme, "A", func(sec *secretstore.Secret) error { sec.Name = "B"; return nil })
			return err
		},
		"DeleteRefused":  func() error { return del(ctx, s, acme, "A", func(*secretstore.Secret) error { return refuse }) },
		"DeleteMissing":  func() error { return del(ctx, s, acme, "B", nil) },
		"CanceledCreate": func() error { return create(canceled, s, NewSecret(acme, "B")) },
		"CanceledRecord": func() error { return s.Record(canceled, NewEvent(audit.ActionRequestDenied, NewSecret(acme, "B"))) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := op(); err == nil {
				t.Fatal("got no error")
			}
			if n := len(pendingEvents(t, s.Outbox())); n != 1 {
				t.Fatalf("events: got %d, want 1 (the first create's)", n)
			}
		})
	}
}

// testInvalidEventAbortsChange: a change whose event is missing, or would
// be refused by the audit service, is not stored.
func testInvalidEventAbortsChange(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	orig := NewSecret(acme, "A")
	mustCreate(t, s, orig)
	bad := func(sec *secretstore.Secret) *auditv1.Event {
		ev := NewEvent(audit.ActionSecretUpdate, sec)
		ev.Action = "" // required
		return ev
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"CreateInvalid", func() error { return s.Create(ctx, NewSecret(acme, "B"), bad(NewSecret(acme, "B"))) }},
		{"CreateNil", func() error { return s.Create(ctx, NewSecret(acme, "B"), nil) }},
		{"UpdateInvalid", func() error {
			_, err := s.Update(ctx, acme, "A", func(sec *secretstore.Secret) (*auditv1.Event, error) {
				sec.Description = "changed"
				return bad(sec), nil
			})
			return err
		}},
		{"UpdateNil", func() error {
			_, err := s.Update(ctx, acme, "A", func(sec *secretstore.Secret) (*auditv1.Event, error) {
				sec.Description = "changed"
				return nil, nil
			})
			return err
		}},
		{"DeleteInvalid", func() error {
			return s.Delete(ctx, acme, "A", func(sec *secretstore.Secret) (*auditv1.Event, error) { return bad(sec), nil })
		}},
		{"DeleteNil", func() error {
			return s.Delete(ctx, acme, "A", func(*secretstore.Secret) (*auditv1.Event, error) { return nil, nil })
		}},
		{"RecordInvalid", func() error { return s.Record(ctx, bad(orig)) }},
		{"RecordNil", func() error { return s.Record(ctx, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if err == nil {
				t.Fatal("got no error")
			}
			if k := errs.KindOf(err); k != errs.KindInternal {
				t.Errorf("error kind: got %v, want internal (not the caller's fault): %v", k, err)
			}
			if d := Diff(mustGet(t, s, acme, "A"), orig); d != "" {
				t.Fatalf("A changed: %s", d)
			}
			if got := listAll(t, s, acme); len(got) != 1 {
				t.Fatalf("List: got %v, want [A]", got)
			}
			if n := len(pendingEvents(t, s.Outbox())); n != 1 {
				t.Fatalf("events: got %d, want 1 (the first create's)", n)
			}
		})
	}
}

// testRecord: Record stores the event alone.
func testRecord(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	ev := NewEvent(audit.ActionRequestDenied, NewSecret(acme, "A"))
	ev.Outcome = auditv1.Outcome_OUTCOME_DENIED
	if err := s.Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	evs := pendingEvents(t, s.Outbox())
	if len(evs) != 1 {
		t.Fatalf("events: got %d, want 1", len(evs))
	}
	checkStored(t, evs[0], ev)
	if got := listAll(t, s, acme); len(got) != 0 {
		t.Fatalf("List after Record: got %v, want none", got)
	}
}

// testOutboxAck: acknowledged events leave the outbox, the others stay in
// order; unknown ids are ignored.
func testOutboxAck(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewSecret(acme, "A"), NewSecret(acme, "B"), NewSecret(acme, "C"))
	evs := pendingEvents(t, s.Outbox())
	if len(evs) != 3 {
		t.Fatalf("events: got %d, want 3", len(evs))
	}
	if err := s.Outbox().Ack(ctx, []string{evs[0].GetId(), evs[1].GetId(), secretstore.Emitter + "-unknown"}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	left := pendingEvents(t, s.Outbox())
	if len(left) != 1 || left[0].GetId() != evs[2].GetId() {
		t.Fatalf("after Ack of the first two: got %d events, want only %s", len(left), evs[2].GetId())
	}
	if got, err := s.Outbox().Pending(ctx, 0); err != nil || len(got) != 0 {
		t.Fatalf("Pending(0): got %d events, %v; want none", len(got), err)
	}
}

// testConcurrentEvents: concurrent changes, some failing, store exactly
// one event per change that succeeded.
func testConcurrentEvents(t *testing.T, s secretstore.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewSecret(acme, "COUNTER"))
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok = map[string]int{}
	)
	count := func(action string, err error) {
		if err == nil {
			mu.Lock()
			ok[action]++
			mu.Unlock()
		}
	}
	for i := range 32 {
		wg.Go(func() { count(audit.ActionSecretCreate, create(ctx, s, NewSecret(acme, "counter"))) })
		wg.Go(func() {
			_, err := update(ctx, s, acme, "COUNTER", func(sec *secretstore.Secret) error {
				if i%3 == 0 {
					return errors.New("refused")
				}
				sec.ValueVersion++
				return nil
			})
			count(audit.ActionSecretUpdate, err)
		})
		wg.Go(func() { count(audit.ActionSecretCreate, create(ctx, s, NewSecret(alice, "P"+strings.Repeat("X", i)))) })
	}
	wg.Wait()
	got := map[string]int{}
	for _, ev := range pendingEvents(t, s.Outbox()) {
		got[ev.GetAction()]++
	}
	ok[audit.ActionSecretCreate]++ // COUNTER
	if got[audit.ActionSecretCreate] != ok[audit.ActionSecretCreate] || got[audit.ActionSecretUpdate] != ok[audit.ActionSecretUpdate] || len(got) != 2 {
		t.Fatalf("events by action: got %v, want %v", got, ok)
	}
	if v := mustGet(t, s, acme, "COUNTER").ValueVersion; v != int64(1+ok[audit.ActionSecretUpdate]) {
		t.Fatalf("ValueVersion: got %d, want %d", v, 1+ok[audit.ActionSecretUpdate])
	}
}
