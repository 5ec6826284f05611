package secretstore

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ozsecrets/oz/lib/tracing"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

// TraceStore returns s with a child span around each of its calls made
// within a traced request, named after the method: "store.Create",
// "store.Get", "store.List", "store.Update", "store.Delete",
// "store.Record", and, when s has them, "store.ListOwners" and
// "store.Scan" (the result keeps s's optional capabilities). Calls outside
// a traced request (maintenance, startup) are not traced.
//
// Spans hold counts only (secrets returned, owners asked for) and, on
// failure, the error's kind: never an owner, a name, a ciphertext or an
// event. With tp nil or a no-op it returns s.
func TraceStore(s Store, tp trace.TracerProvider) Store { return InstrumentStore(s, tp, nil) }

// InstrumentStore is TraceStore that also times every call into o
// (oz_store_operation_duration_seconds; nil: no metrics). With neither
// tracing nor metrics it returns s.
func InstrumentStore(s Store, tp trace.TracerProvider, o *storemetrics.Observer) Store {
	if !tracing.Enabled(tp) && o == nil {
		return s
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	t := &tracedStore{s: s, tracer: tp.Tracer("github.com/ozsecrets/oz/services/secretstore"), o: o}
	ol, isOL := s.(OwnersLister)
	sc, isSc := s.(Scanner)
	switch {
	case isOL && isSc:
		return struct {
			*tracedStore
			tracedOwnersLister
			tracedScanner
		}{t, tracedOwnersLister{t, ol}, tracedScanner{t, sc}}
	case isOL:
		return struct {
			*tracedStore
			tracedOwnersLister
		}{t, tracedOwnersLister{t, ol}}
	case isSc:
		return struct {
			*tracedStore
			tracedScanner
		}{t, tracedScanner{t, sc}}
	}
	return t
}

type tracedStore struct {
	s      Store
	tracer trace.Tracer
	o      *storemetrics.Observer
}

func (t *tracedStore) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracing.Child(ctx, t.tracer, name, attrs...)
}

// end ends span and records the call's duration and outcome.
func (t *tracedStore) end(span trace.Span, op string, start time.Time, err error) {
	t.o.Observe(op, start, storeOutcome(err))
	tracing.End(span, err, errs.KindOf(err).String())
}

// storeOutcome is a store call's outcome label.
func storeOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	switch errs.KindOf(err) {
	case errs.KindNotFound:
		return "not_found"
	case errs.KindAlreadyExists, errs.KindFailedPrecondition:
		return "conflict"
	case errs.KindInvalid, errs.KindPermissionDenied:
		return "refused" // by the caller's fn (Update, Delete)
	}
	return "error"
}

func (t *tracedStore) Create(ctx context.Context, s *Secret, ev *auditv1.Event) error {
	ctx, span := t.span(ctx, "store.Create")
	start := time.Now()
	err := t.s.Create(ctx, s, ev)
	t.end(span, "Create", start, err)
	return err
}

func (t *tracedStore) Get(ctx context.Context, owner Owner, name string) (*Secret, error) {
	ctx, span := t.span(ctx, "store.Get")
	start := time.Now()
	sec, err := t.s.Get(ctx, owner, name)
	t.end(span, "Get", start, err)
	return sec, err
}

func (t *tracedStore) List(ctx context.Context, owner Owner, after string, limit int) ([]*Secret, error) {
	ctx, span := t.span(ctx, "store.List", attribute.Int("oz.store.limit", limit))
	start := time.Now()
	list, err := t.s.List(ctx, owner, after, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	t.end(span, "List", start, err)
	return list, err
}

func (t *tracedStore) Update(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) (*Secret, error) {
	ctx, span := t.span(ctx, "store.Update")
	start := time.Now()
	sec, err := t.s.Update(ctx, owner, name, fn)
	t.end(span, "Update", start, err)
	return sec, err
}

func (t *tracedStore) Delete(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) error {
	ctx, span := t.span(ctx, "store.Delete")
	start := time.Now()
	err := t.s.Delete(ctx, owner, name, fn)
	t.end(span, "Delete", start, err)
	return err
}

func (t *tracedStore) Record(ctx context.Context, ev *auditv1.Event) error {
	ctx, span := t.span(ctx, "store.Record")
	start := time.Now()
	err := t.s.Record(ctx, ev)
	t.end(span, "Record", start, err)
	return err
}

func (t *tracedStore) Outbox() outbox.Source { return t.s.Outbox() }

type tracedOwnersLister struct {
	t  *tracedStore
	ol OwnersLister
}

func (o tracedOwnersLister) ListOwners(ctx context.Context, owners []Owner) ([]*Secret, error) {
	ctx, span := o.t.span(ctx, "store.ListOwners", attribute.Int("oz.store.owners", len(owners)))
	start := time.Now()
	list, err := o.ol.ListOwners(ctx, owners)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	o.t.end(span, "ListOwners", start, err)
	return list, err
}

type tracedScanner struct {
	t  *tracedStore
	sc Scanner
}

func (s tracedScanner) Scan(ctx context.Context, afterOwner Owner, afterName string, limit int) ([]*Secret, error) {
	ctx, span := s.t.span(ctx, "store.Scan", attribute.Int("oz.store.limit", limit))
	start := time.Now()
	list, err := s.sc.Scan(ctx, afterOwner, afterName, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	s.t.end(span, "Scan", start, err)
	return list, err
}
