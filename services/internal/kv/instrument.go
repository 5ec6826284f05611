package kv

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ozsecrets/oz/lib/tracing"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

// Trace returns s with a child span around each Get, Scan and Apply
// made within a traced request: "store.Get", "store.Scan", "store.Apply".
// Calls outside one (the outbox shipper's, startup's) are not traced.
//
// Spans hold counts only (entries returned, conditions, writes) and, on
// failure, the error's kind: never a key (keys hold names, token hashes
// and record ids) and never a value. With tp nil or a no-op it returns s.
func Trace(s Store, tp trace.TracerProvider) Store { return Instrument(s, tp, nil) }

// Instrument is Trace that also times every call into o
// (oz_store_operation_duration_seconds; nil: no metrics). With neither
// tracing nor metrics it returns s.
func Instrument(s Store, tp trace.TracerProvider, o *storemetrics.Observer) Store {
	if !tracing.Enabled(tp) && o == nil {
		return s
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &tracedStore{Store: s, tracer: tp.Tracer("github.com/ozsecrets/oz/services/internal/kv"), o: o}
}

type tracedStore struct {
	Store
	tracer trace.Tracer
	o      *storemetrics.Observer
}

// end ends span and records the call's duration and outcome.
func (t *tracedStore) end(span trace.Span, op string, start time.Time, err error) {
	t.o.Observe(op, start, outcome(err))
	tracing.End(span, err, storeErrorKind(err))
}

func (t *tracedStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Get")
	start := time.Now()
	v, err := t.Store.Get(ctx, key)
	t.end(span, "Get", start, err)
	return v, err
}

func (t *tracedStore) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.GetMany", attribute.Int("oz.store.keys", len(keys)))
	start := time.Now()
	vs, err := t.Store.GetMany(ctx, keys)
	t.end(span, "GetMany", start, err)
	return vs, err
}

func (t *tracedStore) ScanPrefixes(ctx context.Context, prefixes []string) ([][]KV, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.ScanPrefixes", attribute.Int("oz.store.prefixes", len(prefixes)))
	start := time.Now()
	out, err := t.Store.ScanPrefixes(ctx, prefixes)
	t.end(span, "ScanPrefixes", start, err)
	return out, err
}

func (t *tracedStore) Scan(ctx context.Context, prefix, after string, limit int) ([]KV, error) {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Scan", attribute.Int("oz.store.limit", limit))
	start := time.Now()
	kvs, err := t.Store.Scan(ctx, prefix, after, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.entries", len(kvs)))
	}
	t.end(span, "Scan", start, err)
	return kvs, err
}

func (t *tracedStore) Apply(ctx context.Context, conds []Cond, writes []Write) error {
	ctx, span := tracing.Child(ctx, t.tracer, "store.Apply",
		attribute.Int("oz.store.conditions", len(conds)), attribute.Int("oz.store.writes", len(writes)))
	start := time.Now()
	err := t.Store.Apply(ctx, conds, writes)
	t.end(span, "Apply", start, err)
	return err
}

// outcome is a store call's outcome label for metrics.
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
	if _, ok := errors.AsType[*DiskFullError](err); ok {
		return "disk_full" // for an alert: writes are refused until space is freed
	}
	return "error"
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
