package outbox_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

func newKV(t *testing.T) *outbox.KV {
	t.Helper()
	s, err := boltkv.Open(filepath.Join(t.TempDir(), "kv.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return outbox.NewKV(s, "resolver")
}

func kvEvent(resource string) *auditv1.Event {
	return &auditv1.Event{Action: "user.create", Resource: resource, Outcome: auditv1.Outcome_OUTCOME_OK,
		Actor: &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_SERVICE, Name: "resolver"}}
}

// drainKV returns and acknowledges what waits in o.
func drainKV(t *testing.T, o *outbox.KV) []*auditv1.Event {
	t.Helper()
	evs, err := o.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.GetId())
	}
	if err := o.Ack(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestKVLateEvent: once events are acknowledged, Pending reads from near
// the newest of them, and an event that commits with a key taken long
// before (a replica whose clock is an hour behind) is still delivered: the
// next read from the first key, every SweepEvery, finds it.
func TestKVLateEvent(t *testing.T) {
	o := newKV(t)
	outbox.SetKVSweepEvery(o, 300*time.Millisecond)
	ctx := context.Background()
	if err := o.Apply(ctx, nil, nil, kvEvent("users/late")); err != nil {
		t.Fatal(err)
	}
	evs := drainKV(t, o) // delivered and acknowledged; its copy comes back late
	if len(evs) != 1 {
		t.Fatalf("drained %d events, want 1", len(evs))
	}
	if err := outbox.PutKVAt(ctx, o, evs[0], time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := o.Apply(ctx, nil, nil, kvEvent("users/after")); err != nil {
		t.Fatal(err)
	}
	resources := func() []string {
		evs, err := o.Pending(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.GetResource())
		}
		return out
	}
	if got := resources(); !slices.Equal(got, []string{"users/after"}) {
		t.Fatalf("read after acknowledgements: got %v, want users/after (the late event waits for a sweep)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for got := resources(); !slices.Equal(got, []string{"users/late", "users/after"}); got = resources() {
		if time.Now().After(deadline) {
			t.Fatalf("the late event was never read: got %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKVRefusesInvalidEvent: an event the audit service would refuse is
// an error, and nothing of the change is written.
func TestKVRefusesInvalidEvent(t *testing.T) {
	o := newKV(t)
	bad := kvEvent("users/x")
	bad.Action = ""
	if err := o.Apply(context.Background(), nil, nil, bad); err == nil {
		t.Fatal("Apply with an invalid event: no error")
	}
	if n, err := o.Backlog(context.Background()); err != nil || n != 0 {
		t.Errorf("backlog %d (%v), want 0", n, err)
	}
}
