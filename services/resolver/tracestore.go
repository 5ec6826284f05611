package resolver

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/tracing"
)

// TraceStore returns s with a child span around each Get, Scan and Apply
// made within a traced request: "store.Get", "store.Scan", "store.Apply".
// Calls outside one (the outbox shipper's, startup's) are not traced.
//
// Spans hold counts only (entries returned, conditions, writes) and, on
// failure, the error's kind: never a key (keys hold names, token hashes
// and record ids) and never a value. With tp nil or a no-op it returns s.
func TraceStore(s Store, tp trace.TracerProvider) Store {
	if !tracing.Enabled(tp) {
		return s
	}
	return &tracedStore{Store: s, tracer: tp.Tracer("github.com/ozsecrets/oz/services/resolver")}
}

type tracedStore struct {
	Store
	tracer trace.Tracer
}

func (t *tracedStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Get")
	v, err := t.Store.Get(ctx, key)
	tracing.End(span, err, storeErrorKind(err))
	return v, err
}

func (t *tracedStore) Scan(ctx context.Context, prefix, after string, limit int) ([]KV, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Scan", attribute.Int("oz.store.limit", limit))
	kvs, err := t.Store.Scan(ctx, prefix, after, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.entries", len(kvs)))
	}
	tracing.End(span, err, storeErrorKind(err))
	return kvs, err
}

func (t *tracedStore) Apply(ctx context.Context, conds []Cond, writes []Write) error {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Apply",
		attribute.Int("oz.store.conditions", len(conds)), attribute.Int("oz.store.writes", len(writes)))
	err := t.Store.Apply(ctx, conds, writes)
	tracing.End(span, err, storeErrorKind(err))
	return err
}

// storeErrorKind names err for a span: "conflict" for a condition that
// did not hold, else its errs kind.
func storeErrorKind(err error) string {
	if err == nil {
		return ""
	}
	if _, ok := errors.AsType[*ConflictError](err); ok {
		return "conflict"
	}
	return errs.KindOf(err).String()
}
