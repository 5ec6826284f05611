package resolver

import (
	"context"
	"errors"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

// MeasureStore returns s with each Get, Scan and Apply timed into o
// (oz_store_operation_duration_seconds). With o nil it returns s.
func MeasureStore(s Store, o *storemetrics.Observer) Store {
	if o == nil {
		return s
	}
	return &measuredStore{Store: s, o: o}
}

type measuredStore struct {
	Store
	o *storemetrics.Observer
}

func (m *measuredStore) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := m.Store.Get(ctx, key)
	m.o.Observe("Get", start, outcome(err))
	return v, err
}

func (m *measuredStore) Scan(ctx context.Context, prefix, after string, limit int) ([]KV, error) {
	start := time.Now()
	kvs, err := m.Store.Scan(ctx, prefix, after, limit)
	m.o.Observe("Scan", start, outcome(err))
	return kvs, err
}

func (m *measuredStore) Apply(ctx context.Context, conds []Cond, writes []Write) error {
	start := time.Now()
	err := m.Store.Apply(ctx, conds, writes)
	m.o.Observe("Apply", start, outcome(err))
	return err
}

// outcome is a store call's outcome label.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errs.KindOf(err) == errs.KindNotFound:
		return "not_found"
	}
	if _, ok := errors.AsType[*ConflictError](err); ok {
		return "conflict"
	}
	return "error"
}
