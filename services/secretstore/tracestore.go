package secretstore

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/tracing"
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
func TraceStore(s Store, tp trace.TracerProvider) Store {
	if !tracing.Enabled(tp) {
		return s
	}
	t := &tracedStore{s: s, tracer: tp.Tracer("github.com/ozsecrets/oz/services/secretstore")}
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
}

func (t *tracedStore) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracing.Child(ctx, t.tracer, name, attrs...)
}

func end(span trace.Span, err error) { tracing.End(span, err, errs.KindOf(err).String()) }

func (t *tracedStore) Create(ctx context.Context, s *Secret, ev *auditv1.Event) error {
	ctx, span := t.span(ctx, "store.Create")
	err := t.s.Create(ctx, s, ev)
	end(span, err)
	return err
}

func (t *tracedStore) Get(ctx context.Context, owner Owner, name string) (*Secret, error) {
	ctx, span := t.span(ctx, "store.Get")
	sec, err := t.s.Get(ctx, owner, name)
	end(span, err)
	return sec, err
}

func (t *tracedStore) List(ctx context.Context, owner Owner, after string, limit int) ([]*Secret, error) {
	ctx, span := t.span(ctx, "store.List", attribute.Int("oz.store.limit", limit))
	list, err := t.s.List(ctx, owner, after, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	end(span, err)
	return list, err
}

func (t *tracedStore) Update(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) (*Secret, error) {
	ctx, span := t.span(ctx, "store.Update")
	sec, err := t.s.Update(ctx, owner, name, fn)
	end(span, err)
	return sec, err
}

func (t *tracedStore) Delete(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) error {
	ctx, span := t.span(ctx, "store.Delete")
	err := t.s.Delete(ctx, owner, name, fn)
	end(span, err)
	return err
}

func (t *tracedStore) Record(ctx context.Context, ev *auditv1.Event) error {
	ctx, span := t.span(ctx, "store.Record")
	err := t.s.Record(ctx, ev)
	end(span, err)
	return err
}

func (t *tracedStore) Outbox() outbox.Source { return t.s.Outbox() }

type tracedOwnersLister struct {
	t  *tracedStore
	ol OwnersLister
}

func (o tracedOwnersLister) ListOwners(ctx context.Context, owners []Owner) ([]*Secret, error) {
	ctx, span := o.t.span(ctx, "store.ListOwners", attribute.Int("oz.store.owners", len(owners)))
	list, err := o.ol.ListOwners(ctx, owners)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	end(span, err)
	return list, err
}

type tracedScanner struct {
	t  *tracedStore
	sc Scanner
}

func (s tracedScanner) Scan(ctx context.Context, afterOwner Owner, afterName string, limit int) ([]*Secret, error) {
	ctx, span := s.t.span(ctx, "store.Scan", attribute.Int("oz.store.limit", limit))
	list, err := s.sc.Scan(ctx, afterOwner, afterName, limit)
	if span != nil {
		span.SetAttributes(attribute.Int("oz.store.secrets", len(list)))
	}
	end(span, err)
	return list, err
}
