package grpcapi_test

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/tracing"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
)

// TestTracingRecordsNoValueOrToken sends secrets and bearer tokens that
// are canaries through a traced secretstore (server, client and store all
// recording into memory), then looks for the canaries in everything the
// spans hold, and for the store's span under the RPC's.
func TestTracingRecordsNoValueOrToken(t *testing.T) {
	const (
		value      = "canary-value-5b1e0c7d"
		token      = "oz_canary-token-9d2f41aa"
		badToken   = "oz_canary-badtoken-3c88e0f2"
		badValue   = "canary-invalid-value-a41f"
		parent     = "teams/acme"
		secretName = "TRACED_SECRET"
	)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	dir := t.TempDir()
	pkiDir := pki.Dir(filepath.Join(dir, "pki"))
	if err := pki.EnsureDev(pkiDir); err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerConfig(pkiDir.For("secretstore"), pkiDir.CA())
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := kvstore.OpenBoltKV(filepath.Join(dir, "secretstore.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The store is traced as ozsecretstored traces it: its kv.Store.
	store, err := kvstore.Open(context.Background(), kv.Instrument(raw, tp, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr, Logger: log})
	rules := auth.Rules{}
	maps.Copy(rules, grpcapi.Rules)
	srv := server.New(server.Config{
		Name: "secretstore", TLS: serverTLS, Rules: rules, Logger: log, TracerProvider: tp,
		OnDenied: grpcapi.OnDenied(svc, log),
		Auth: &fakeAuth{AuthenticateFunc: func(_ context.Context, tok string) (*auth.Principal, error) {
			if tok == token {
				return principals["admin"], nil
			}
			return nil, errs.E(errs.KindUnauthenticated, "invalid, expired or revoked token")
		}},
	})
	grpcapi.Register(srv, svc)
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

	clientTLS, err := pki.ClientConfig(pkiDir.For("gateway"), pkiDir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(lis.Addr().String(), clientTLS, tracing.DialOption(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := secretsv1.NewSecretServiceClient(conn)

	if _, err := c.CreateSecret(as(token), &secretsv1.CreateSecretRequest{
		Parent: parent, SecretId: secretName, Value: []byte(value), Description: "traced",
	}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	// Failures, whose statuses the spans record.
	_, err = c.CreateSecret(as(badToken), &secretsv1.CreateSecretRequest{Parent: parent, SecretId: "OTHER", Value: []byte(value)})
	if got := status.Code(err); got != codes.Unauthenticated {
		t.Fatalf("CreateSecret with a bad token: got %v, want Unauthenticated", err)
	}
	_, err = c.CreateSecret(as(token), &secretsv1.CreateSecretRequest{Parent: parent, SecretId: "bad name!", Value: []byte(badValue)})
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("CreateSecret with a bad id: got %v, want InvalidArgument", err)
	}
	_, err = c.CreateSecret(as(token), &secretsv1.CreateSecretRequest{Parent: parent, SecretId: secretName, Value: []byte(badValue)})
	if got := status.Code(err); got != codes.AlreadyExists {
		t.Fatalf("CreateSecret again: got %v, want AlreadyExists", err)
	}

	// Server spans end after their responses are sent: wait for the four.
	servers := func() int {
		n := 0
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); servers() < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	spans := rec.Ended()
	for _, s := range spans {
		for _, canary := range []string{value, badValue, token, badToken, "Bearer"} {
			if where := spanHolds(s, canary); where != "" {
				t.Errorf("span %q holds %q in %s", s.Name(), canary, where)
			}
		}
	}

	// The first call: a client span, its server span, and the store's
	// Create under the server span.
	var clientSpan, serverSpan sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() != "oz.secrets.v1.SecretService/CreateSecret" {
			continue
		}
		switch {
		case s.SpanKind() == trace.SpanKindClient && clientSpan == nil:
			clientSpan = s
		case s.SpanKind() == trace.SpanKindServer && serverSpan == nil:
			serverSpan = s
		}
	}
	if clientSpan == nil || serverSpan == nil {
		t.Fatalf("got spans %v, want a client and a server span of CreateSecret", spanNames(spans))
	}
	if serverSpan.Parent().SpanID() != clientSpan.SpanContext().SpanID() || serverSpan.SpanContext().TraceID() != clientSpan.SpanContext().TraceID() {
		t.Errorf("server span's parent is %v, want the client span %v", serverSpan.Parent(), clientSpan.SpanContext())
	}
	var storeSpan sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "store.Apply" && s.Parent().SpanID() == serverSpan.SpanContext().SpanID() {
			storeSpan = s
		}
	}
	if storeSpan == nil {
		t.Fatalf("got spans %v, want store.Apply (the create's write) under the server span of the first CreateSecret", spanNames(spans))
	}
	if storeSpan.SpanContext().TraceID() != clientSpan.SpanContext().TraceID() {
		t.Errorf("store span in trace %v, want the call's %v", storeSpan.SpanContext().TraceID(), clientSpan.SpanContext().TraceID())
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name(), "store.") && s.Status().Code != 0 && s.Status().Description != "internal" {
			t.Errorf("%s status %v, want an error kind at most", s.Name(), s.Status())
		}
	}
}

// spanHolds returns where in s the string canary appears ("" for
// nowhere): its name, status, attributes, events, links and resource.
func spanHolds(s sdktrace.ReadOnlySpan, canary string) string {
	if strings.Contains(s.Name(), canary) {
		return "the name"
	}
	if strings.Contains(s.Status().Description, canary) {
		return "the status"
	}
	for _, a := range s.Attributes() {
		if strings.Contains(string(a.Key), canary) || strings.Contains(a.Value.Emit(), canary) {
			return "attribute " + string(a.Key)
		}
	}
	for _, e := range s.Events() {
		if strings.Contains(e.Name, canary) {
			return "event " + e.Name
		}
		for _, a := range e.Attributes {
			if strings.Contains(string(a.Key), canary) || strings.Contains(a.Value.Emit(), canary) {
				return "event " + e.Name + " attribute " + string(a.Key)
			}
		}
	}
	for _, l := range s.Links() {
		for _, a := range l.Attributes {
			if strings.Contains(a.Value.Emit(), canary) {
				return "a link"
			}
		}
	}
	for _, a := range s.Resource().Attributes() {
		if strings.Contains(a.Value.Emit(), canary) {
			return "the resource"
		}
	}
	return ""
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name()+"("+s.SpanKind().String()+")")
	}
	return names
}
