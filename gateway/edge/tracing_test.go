package edge_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/gateway/edge"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

const traceToken = "oz_trace-canary-token-77c1"

// tracedEnv is a gateway tracing into memory, before fake backends.
func tracedEnv(t *testing.T) (*env, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newEnv(t, func(c *edge.Config) { c.TracerProvider = tp }), rec
}

// backendSpan is the span context the backend received in traceparent.
func backendSpan(md metadata.MD) trace.SpanContext {
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := md.Get(k); len(v) > 0 {
			carrier[k] = v[0]
		}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

// TestTracingREST sends a REST request, with a trace context of the
// caller's own, and checks that the gateway's span starts a new trace that
// the backend continues, under the gateway's client span.
func TestTracingREST(t *testing.T) {
	e, rec := tracedEnv(t)
	const callerTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	resp, _ := e.do(t, "GET", "/v1/teams/acme/secrets/API_KEY", "", http.Header{
		"Authorization": {"Bearer " + traceToken},
		"Traceparent":   {callerTrace},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: got %s, want 200", resp.Status)
	}
	got := e.store.only(t)
	sc := backendSpan(got.md)
	if !sc.IsValid() {
		t.Fatalf("the backend got no trace context (metadata %v)", got.md)
	}

	var restSpan, clientSpan sdktrace.ReadOnlySpan
	for _, s := range ended(t, rec, 2) {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			restSpan = s
		case trace.SpanKindClient:
			clientSpan = s
		}
	}
	if restSpan == nil || clientSpan == nil {
		t.Fatalf("spans %v: want a server span and a client span", spanNames(rec.Ended()))
	}
	if want := "GET /v1/{name=teams/*/secrets/*}"; restSpan.Name() != want {
		t.Errorf("REST span name: got %q, want %q", restSpan.Name(), want)
	}
	if want := "oz.secrets.v1.SecretService/GetSecret"; clientSpan.Name() != want {
		t.Errorf("client span name: got %q, want %q", clientSpan.Name(), want)
	}
	if sc.TraceID() != restSpan.SpanContext().TraceID() {
		t.Errorf("backend's trace: got %v, want the gateway's %v", sc.TraceID(), restSpan.SpanContext().TraceID())
	}
	if sc.SpanID() != clientSpan.SpanContext().SpanID() || clientSpan.Parent().SpanID() != restSpan.SpanContext().SpanID() {
		t.Errorf("backend's parent %v: want the gateway's client span %v, child of the REST span", sc.SpanID(), clientSpan.SpanContext().SpanID())
	}
	if restSpan.Parent().IsValid() || restSpan.SpanContext().TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("REST span continues the caller's trace %v; want a new trace linked to it", restSpan.Parent())
	}
	if links := restSpan.Links(); len(links) != 1 || links[0].SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("REST span links: got %v, want the caller's span", links)
	}
	checkNoToken(t, rec.Ended())
}

// TestTracingGRPC does the same through the native gRPC proxy: the
// caller's traceparent is not forwarded; the backend continues the
// gateway's trace.
func TestTracingGRPC(t *testing.T) {
	e, rec := tracedEnv(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"authorization", "Bearer "+traceToken,
		"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	c := secretsv1.NewSecretServiceClient(e.gw.Dial(t))
	if _, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	got := e.store.only(t)
	sc := backendSpan(got.md)
	var serverSpan, clientSpan sdktrace.ReadOnlySpan
	for _, s := range ended(t, rec, 2) {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			serverSpan = s
		case trace.SpanKindClient:
			clientSpan = s
		}
	}
	if serverSpan == nil || clientSpan == nil {
		t.Fatalf("spans %v: want a server span and a client span", spanNames(rec.Ended()))
	}
	if tp := got.md.Get("traceparent"); len(tp) != 1 {
		t.Errorf("backend got traceparent %q, want the gateway's only", tp)
	}
	if sc.TraceID() != serverSpan.SpanContext().TraceID() || sc.SpanID() != clientSpan.SpanContext().SpanID() {
		t.Errorf("backend's span context %v: want the gateway's client span %v in trace %v", sc, clientSpan.SpanContext().SpanID(), serverSpan.SpanContext().TraceID())
	}
	if serverSpan.Parent().IsValid() || len(serverSpan.Links()) != 1 {
		t.Errorf("gateway's server span: parent %v, links %v; want a new root linked to the caller's span", serverSpan.Parent(), serverSpan.Links())
	}
	checkNoToken(t, rec.Ended())
}

// ended waits for n spans to end (a server span ends after the response
// is sent) and returns them.
func ended(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Ended()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return rec.Ended()
}

func checkNoToken(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range spans {
		if len(s.Events()) != 0 {
			t.Errorf("span %s: events %v, want none", s.Name(), s.Events())
		}
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), traceToken) || strings.Contains(strings.ToLower(string(a.Key)), "authorization") {
				t.Errorf("span %s: attribute %s=%s holds the authorization header", s.Name(), a.Key, a.Value.Emit())
			}
		}
		if strings.Contains(s.Status().Description, traceToken) {
			t.Errorf("span %s: status holds the token", s.Name())
		}
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name()+"("+s.SpanKind().String()+")")
	}
	return out
}
