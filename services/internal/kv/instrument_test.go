package kv_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/kvtest"
)

func openTraced(t *testing.T, tp *sdktrace.TracerProvider) kv.Store {
	t.Helper()
	s, err := boltkv.Open(filepath.Join(t.TempDir(), "resolver.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return kv.Trace(s, tp)
}

// TestTraceStoreConformance checks that the decorator changes nothing a
// store does.
func TestTraceStoreConformance(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	kvtest.Run(t, func(t *testing.T) kv.Store { return openTraced(t, tp) })
}

// TestTraceStoreSpans checks the spans of calls within a traced request,
// and that they hold counts, never keys or values.
func TestTraceStoreSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := openTraced(t, tp)

	// Outside a traced request: no span.
	if err := s.Apply(context.Background(), nil, []kv.Write{kv.Put("k/untraced", []byte("v"))}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Ended(); len(got) != 0 {
		t.Fatalf("got %d spans outside a request, want none", len(got))
	}

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	const key, value = "teams/secret-key-name", "secret-store-value"
	if err := s.Apply(ctx, []kv.Cond{kv.Absent(key)}, []kv.Write{kv.Put(key, []byte(value))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "teams/missing"); err == nil {
		t.Fatal("Get of a missing key: no error")
	}
	if _, err := s.Scan(ctx, "teams/", "", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, []kv.Cond{kv.Absent(key)}, nil); err == nil {
		t.Fatal("Apply with a failing condition: no error")
	}
	req.End()

	want := []string{"store.Apply conds=1 writes=1", "store.Get", "store.Get kind=not found", "store.Scan limit=10 entries=1", "store.Apply conds=1 writes=0 kind=conflict"}
	var got []string
	for _, sp := range rec.Ended() {
		if sp.Name() == "request" {
			continue
		}
		if sp.Parent().SpanID() != req.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the request's span", sp.Name(), sp.Parent().SpanID())
		}
		desc := sp.Name()
		for _, a := range sp.Attributes() {
			v := a.Value.Emit()
			if strings.Contains(v, "secret-") || strings.Contains(v, "teams/") {
				t.Errorf("%s: attribute %s=%s holds a key or value", sp.Name(), a.Key, v)
			}
			switch a.Key {
			case "oz.store.conditions":
				desc += " conds=" + v
			case "oz.store.writes":
				desc += " writes=" + v
			case "oz.store.limit":
				desc += " limit=" + v
			case "oz.store.entries":
				desc += " entries=" + v
			case "oz.error.kind":
				desc += " kind=" + v
			}
		}
		if strings.Contains(sp.Status().Description, "secret-") {
			t.Errorf("%s: status %q holds a key", sp.Name(), sp.Status().Description)
		}
		got = append(got, desc)
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("spans:\n got %q\nwant %q", got, want)
	}
}
