package sealing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// MemStore is a Store in memory, for tests and tools that need sealing keys
// without a database. Its audit events wait in memory, in its Outbox,
// until acknowledged. The zero value is empty and ready to use.
type MemStore struct {
	mu     sync.Mutex
	keys   map[string]*Key
	events []*auditv1.Event
	seq    uint64
}

var (
	_ Store         = (*MemStore)(nil)
	_ outbox.Source = (*memOutbox)(nil)
)

// SealingKeys implements Store.
func (m *MemStore) SealingKeys(ctx context.Context) ([]*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Key, 0, len(m.keys))
	for _, k := range m.keys {
		out = append(out, k.Clone())
	}
	return out, nil
}

// SealingKey implements Store.
func (m *MemStore) SealingKey(ctx context.Context, id string) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return nil, errs.E(errs.KindNotFound, "sealing key %s not found", id)
	}
	return k.Clone(), nil
}

// UpdateSealingKeys implements Store.
func (m *MemStore) UpdateSealingKeys(ctx context.Context, fn func([]*Key) ([]*Key, *auditv1.Event, error)) ([]*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := make([]*Key, 0, len(m.keys))
	for _, k := range m.keys {
		old = append(old, k.Clone())
	}
	got, ev, err := fn(old)
	if err != nil {
		return nil, err
	}
	next := make(map[string]*Key, len(got))
	out := make([]*Key, 0, len(got))
	for _, k := range got {
		if k.ID == "" {
			return nil, fmt.Errorf("sealing: a key without an id")
		}
		if _, dup := next[k.ID]; dup {
			return nil, fmt.Errorf("sealing: two keys with id %s", k.ID)
		}
		next[k.ID] = k.Clone()
		out = append(out, k.Clone())
	}
	e, err := m.event(ev)
	if err != nil {
		return nil, err
	}
	m.keys = next
	m.events = append(m.events, e)
	return out, nil
}

// event prepares ev as outbox.KV.Apply does: a copy with an id and a time,
// without chain fields, valid by the audit service's rules.
func (m *MemStore) event(ev *auditv1.Event) (*auditv1.Event, error) {
	if ev == nil {
		return nil, fmt.Errorf("sealing: a change without its audit event")
	}
	e := proto.Clone(ev).(*auditv1.Event)
	m.seq++
	e.Id = fmt.Sprintf("%s-mem-%016x", auditevent.Secretstore, m.seq)
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	e.Seq, e.PrevHash, e.Hash, e.AppendTime = 0, nil, nil, nil
	if err := audit.ValidateEvent("audit event", e); err != nil {
		return nil, fmt.Errorf("sealing: audit event %s: %v", e.GetAction(), err)
	}
	return e, nil
}

// Outbox implements Store.
func (m *MemStore) Outbox() outbox.Source { return (*memOutbox)(m) }

// memOutbox is a MemStore's outbox.
type memOutbox MemStore

// Pending implements outbox.Source.
func (o *memOutbox) Pending(ctx context.Context, max int) ([]*auditv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*auditv1.Event, 0, min(max, len(o.events)))
	for _, ev := range o.events[:min(max, len(o.events))] {
		out = append(out, proto.Clone(ev).(*auditv1.Event))
	}
	return out, nil
}

// Ack implements outbox.Source.
func (o *memOutbox) Ack(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = slices.DeleteFunc(o.events, func(ev *auditv1.Event) bool { return slices.Contains(ids, ev.GetId()) })
	return nil
}
