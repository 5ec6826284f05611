package sealing

import (
	"context"
	"fmt"
	"sync"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// MemStore is a Store in memory, for tests and tools that need sealing keys
// without a database. The zero value is empty and ready to use.
type MemStore struct {
	mu   sync.Mutex
	keys map[string]*Key
}

var _ Store = (*MemStore)(nil)

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
func (m *MemStore) UpdateSealingKeys(ctx context.Context, fn func([]*Key) ([]*Key, error)) ([]*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := make([]*Key, 0, len(m.keys))
	for _, k := range m.keys {
		old = append(old, k.Clone())
	}
	got, err := fn(old)
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
	m.keys = next
	return out, nil
}
