package kvstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// events is the store's audit outbox as its shipper sees it: the events an
// upgrade carried over from the layout before kv.Store
// (upgraded_outbox/{16 hex digits}: an auditv1.Event with the id it was
// given then, so that the audit service skips one it already holds), and
// then those of the outbox.KV. Carried-over events are older than every
// other, and are delivered first; once none is left (the first Pending
// that finds none), events is the outbox.KV alone. It implements
// outbox.Source and outbox.Counter, and is safe for concurrent use.
type events struct {
	kv kv.Store
	ob *outbox.KV

	// carried is set while carried-over events may be left.
	carried atomic.Bool
	// keys are the keys of the carried-over events the last Pending
	// returned, by id, so that Ack deletes them without a read.
	mu   sync.Mutex
	keys map[string]string
}

var (
	_ outbox.Source    = (*events)(nil)
	_ outbox.Counter   = (*events)(nil)
	_ outbox.Witnessed = (*events)(nil)
)

func newEvents(s kv.Store, ob *outbox.KV) *events {
	e := &events{kv: s, ob: ob}
	e.carried.Store(true) // until a Pending finds none
	return e
}

// Pending implements outbox.Source: the oldest carried-over events while
// there are any, then the outbox.KV's.
func (e *events) Pending(ctx context.Context, max int) ([]*auditv1.Event, error) {
	if max <= 0 {
		return nil, ctx.Err()
	}
	if e.carried.Load() {
		kvs, err := e.kv.Scan(ctx, prefixUpgradedOutbox, "", max)
		if err != nil {
			return nil, fmt.Errorf("read the audit outbox: %w", err)
		}
		if len(kvs) > 0 {
			out := make([]*auditv1.Event, 0, len(kvs))
			keys := make(map[string]string, len(kvs))
			for _, c := range kvs {
				ev := &auditv1.Event{}
				if err := proto.Unmarshal(c.Value, ev); err != nil {
					return nil, fmt.Errorf("decode audit event %s: %w", c.Key, err)
				}
				out = append(out, ev)
				keys[ev.GetId()] = c.Key
			}
			e.mu.Lock()
			e.keys = keys
			e.mu.Unlock()
			return out, nil
		}
		// Only an upgrade writes them, before the store is opened: none
		// will appear again.
		e.carried.Store(false)
	}
	return e.ob.Pending(ctx, max)
}

// Ack implements outbox.Source: carried-over events are deleted by their
// keys (those the last Pending returned, else found by a Scan while any
// are left), the others by the outbox.KV. Unknown ids are ignored.
func (e *events) Ack(ctx context.Context, ids []string) error {
	return e.AckWitnessed(ctx, ids, nil)
}

// Witnesses implements outbox.Witnessed: the outbox.KV's.
func (e *events) Witnesses(ctx context.Context, chains []string) (map[string]outbox.Witness, error) {
	return e.ob.Witnesses(ctx, chains)
}

// AckWitnessed implements outbox.Witnessed: Ack, the witnesses kept by the
// outbox.KV with its deletions (carried-over events, which only an
// upgrade leaves, are deleted before).
func (e *events) AckWitnessed(ctx context.Context, ids []string, ws []outbox.Witness) error {
	var dels []kv.Write
	rest := ids
	e.mu.Lock()
	if len(e.keys) > 0 {
		rest = nil
		for _, id := range ids {
			if k, ok := e.keys[id]; ok {
				dels = append(dels, kv.Delete(k))
				delete(e.keys, id)
			} else {
				rest = append(rest, id)
			}
		}
	}
	e.mu.Unlock()
	if len(rest) > 0 && e.carried.Load() {
		found, err := e.findCarried(ctx, rest)
		if err != nil {
			return err
		}
		dels = append(dels, found...)
	}
	for len(dels) > 0 {
		n := min(len(dels), maxApplyOps)
		if err := e.kv.Apply(ctx, nil, dels[:n]); err != nil {
			return fmt.Errorf("delete delivered audit events: %w", err)
		}
		dels = dels[n:]
	}
	return e.ob.AckWitnessed(ctx, rest, ws)
}

// findCarried returns the deletions of the carried-over events with the
// given ids.
func (e *events) findCarried(ctx context.Context, ids []string) ([]kv.Write, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var dels []kv.Write
	after := ""
	for {
		kvs, err := e.kv.Scan(ctx, prefixUpgradedOutbox, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("read the audit outbox: %w", err)
		}
		for _, c := range kvs {
			ev := &auditv1.Event{}
			if err := proto.Unmarshal(c.Value, ev); err != nil {
				return nil, fmt.Errorf("decode audit event %s: %w", c.Key, err)
			}
			if want[ev.GetId()] {
				dels = append(dels, kv.Delete(c.Key))
			}
		}
		if len(kvs) < 1000 {
			return dels, nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// Backlog implements outbox.Counter: the carried-over events left and the
// outbox.KV's.
func (e *events) Backlog(ctx context.Context) (int, error) {
	n := 0
	if e.carried.Load() {
		kvs, err := e.kv.Scan(ctx, prefixUpgradedOutbox, "", 0)
		if err != nil {
			return 0, fmt.Errorf("count the audit outbox: %w", err)
		}
		n = len(kvs)
	}
	m, err := e.ob.Backlog(ctx)
	return n + m, err
}
