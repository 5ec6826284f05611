package server_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/lib/tracing"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// tracedServer serves the fake directory, traced by tp, over mutual TLS
// on loopback, and returns a client dialed by server.Dial, traced by
// clientTP.
func tracedServer(t *testing.T, tp trace.TracerProvider, clientTP trace.TracerProvider) scopev1.DirectoryServiceClient {
	t.Helper()
	dir := pki.Dir(filepath.Join(t.TempDir(), "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerConfig(dir.For("resolver"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := pki.ClientConfig(dir.For("secretstore"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name:           "test",
		TLS:            serverTLS,
		Rules:          auth.Rules{"/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/": {Access: auth.Token}},
		Auth:           fakeAuth{},
		Logger:         slog.New(slog.DiscardHandler),
		TracerProvider: tp,
	})
	scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := server.Dial(lis.Addr().String(), clientTLS, tracing.DialOption(clientTP))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A health check, which is never traced.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check: %v", err)
	}
	return scopev1.NewDirectoryServiceClient(conn)
}

// TestTracePropagation calls a service built by server.New through a
// client made by server.Dial, each with its own in-memory recorder, as two
// processes would: the server's span must continue the client's trace.
func TestTracePropagation(t *testing.T) {
	clientRec, serverRec := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	clientTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(clientRec))
	serverTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(serverRec))
	dir := tracedServer(t, serverTP, clientTP)

	ctx, caller := clientTP.Tracer("test").Start(context.Background(), "caller")
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+goodToken)
	if _, err := dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/acme"}); err != nil {
		t.Fatalf("GetTeam: %v", err)
	}
	caller.End()

	const method = "oz.scope.v1.DirectoryService/GetTeam"
	var clientSpan sdktrace.ReadOnlySpan
	for _, s := range clientRec.Ended() {
		if s.Name() == method && s.SpanKind() == trace.SpanKindClient {
			clientSpan = s
		}
	}
	if clientSpan == nil {
		t.Fatalf("client spans %v, want one named %s", names(clientRec.Ended()), method)
	}
	if clientSpan.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Errorf("client span's parent: got %v, want the caller's span %v", clientSpan.Parent().SpanID(), caller.SpanContext().SpanID())
	}
	// The server span ends after the response is sent.
	deadline := time.Now().Add(5 * time.Second)
	for len(serverRec.Ended()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := serverRec.Ended()
	if len(got) != 1 {
		t.Fatalf("server spans: got %v, want one (%s; health checks are not traced)", names(got), method)
	}
	s := got[0]
	if s.Name() != method || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span: got %s (%v), want %s (server)", s.Name(), s.SpanKind(), method)
	}
	if s.SpanContext().TraceID() != caller.SpanContext().TraceID() {
		t.Errorf("server span's trace: got %v, want the client's %v", s.SpanContext().TraceID(), caller.SpanContext().TraceID())
	}
	if !s.Parent().IsRemote() || s.Parent().SpanID() != clientSpan.SpanContext().SpanID() {
		t.Errorf("server span's parent: got %v, want the remote client span %v", s.Parent().SpanID(), clientSpan.SpanContext().SpanID())
	}
	for _, span := range append(got, clientRec.Ended()...) {
		if len(span.Events()) != 0 {
			t.Errorf("span %s has events %v, want none (no message events)", span.Name(), span.Events())
		}
		for _, a := range span.Attributes() {
			if strings.Contains(a.Value.Emit(), goodToken) || strings.Contains(string(a.Key), "authorization") {
				t.Errorf("span %s attribute %s=%s: holds the authorization header", span.Name(), a.Key, a.Value.Emit())
			}
		}
	}
}

// TestTracingOff checks that a no-op provider (tracing.Setup with "off")
// records nothing and changes no call.
func TestTracingOff(t *testing.T) {
	dir := tracedServer(t, noop.NewTracerProvider(), nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+goodToken)
	if _, err := dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/acme"}); err != nil {
		t.Fatalf("GetTeam: %v", err)
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}
