package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/flagenv"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

// fakeResolver answers AuthService.Authenticate from a map of tokens.
type fakeResolver struct {
	internalapiv1.UnimplementedAuthServiceServer
}

func (fakeResolver) Authenticate(_ context.Context, req *internalapiv1.AuthenticateRequest) (*internalapiv1.AuthenticateResponse, error) {
	switch req.GetBearerToken() {
	case "tok-alice":
		return &internalapiv1.AuthenticateResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice",
			Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_ADMIN}}}}, nil
	case "tok-bob":
		return &internalapiv1.AuthenticateResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/bob",
			Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_MEMBER}}}}, nil
	}
	return nil, status.Error(codes.Unauthenticated, "unknown token")
}

// startResolver serves the fake resolver with the resolver's certificate,
// admitting the audit service's certificate, like the real one.
func startResolver(t *testing.T, dir pki.Dir) string {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(dir.For("resolver"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name: "resolver", TLS: tlsCfg, Logger: slog.New(slog.DiscardHandler),
		Rules: auth.Rules{"/oz.internalapi.v1.AuthService/": {Access: auth.Internal, Services: []string{"audit"}}},
	})
	internalapiv1.RegisterAuthServiceServer(srv, fakeResolver{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

type daemon struct {
	addrs server.Addrs
	stop  func() error
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, withInit(append([]string{"--listen", "127.0.0.1:0"}, args...), func(string) string { return "" }), func(string) string { return "" },
			io.Discard, slog.New(slog.DiscardHandler), func(a server.Addrs) { ready <- a })
	}()
	d := &daemon{}
	select {
	case d.addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run returned before serving: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("the service did not start in 10s")
	}
	var once sync.Once
	var runErr error
	d.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { d.stop() })
	return d
}

func dial(t *testing.T, dir pki.Dir, cert, addr string) *grpcConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(dir.For(cert), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcConn{audit: auditv1.NewAuditServiceClient(conn), ingest: internalapiv1.NewAuditIngestServiceClient(conn)}
}

type grpcConn struct {
	audit  auditv1.AuditServiceClient
	ingest internalapiv1.AuditIngestServiceClient
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func TestServe(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolver := startResolver(t, dir)
	args := []string{"--data-dir", data, "--resolver-addr", resolver, "--metrics-listen", "127.0.0.1:0"}
	d := startDaemon(t, args...)

	ev := &auditv1.Event{
		Id: "secretstore-e-1", Time: timestamppb.Now(), Action: "secret.create", Team: "acme",
		Resource: "teams/acme/secrets/K", Outcome: auditv1.Outcome_OUTCOME_OK,
		Actor: &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
	}
	ss := dial(t, dir, "secretstore", d.addrs.GRPC.String())
	if resp, err := ss.ingest.AppendEvents(context.Background(), &internalapiv1.AppendEventsRequest{Events: []*auditv1.Event{ev}}); err != nil || resp.GetAppended() != 1 {
		t.Fatalf("AppendEvents: got %v, %v; want 1 appended", resp, err)
	}
	gw := dial(t, dir, "gateway", d.addrs.GRPC.String())
	list, err := gw.audit.ListEvents(as("tok-alice"), &auditv1.ListEventsRequest{Parent: "teams/acme"})
	if err != nil || len(list.GetEvents()) != 1 || list.GetEvents()[0].GetId() != ev.GetId() {
		t.Fatalf("ListEvents as admin: got %v, %v; want the event", list, err)
	}
	if _, err := gw.audit.ListEvents(as("tok-bob"), &auditv1.ListEventsRequest{Parent: "teams/acme"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListEvents as member: got %v, want PermissionDenied", err)
	}
	if _, err := gw.ingest.AppendEvents(as("tok-alice"), &internalapiv1.AppendEventsRequest{Events: []*auditv1.Event{ev}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("AppendEvents with a bearer token: got %v, want PermissionDenied", err)
	}

	resp, err := http.Get("http://" + d.addrs.Metrics.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		// The event, bob's denial and the refused AppendEvents (every refusal
		// is recorded, by the server's OnDenied hook).
		"oz_audit_events_appended_total 3",
		"go_goroutines",
		`oz_store_operation_duration_seconds_count{op="Apply",outcome="ok",service="audit",store="bolt"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics: want %q in\n%s", want, body)
		}
	}

	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	d = startDaemon(t, args...)
	gw = dial(t, dir, "gateway", d.addrs.GRPC.String())
	v, err := gw.audit.VerifyChain(as("tok-alice"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || !v.GetValid() || v.GetHead().GetSeq() != 2 {
		t.Errorf("after restart: VerifyChain got %v, %v; want 2 valid events", v, err)
	}
}

func TestFlags(t *testing.T) {
	lookup := func(env map[string]string) func(string) string {
		return func(k string) string { return env[k] }
	}
	c, err := parse("ozauditd", nil, lookup(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		daemon: server.Daemon{
			Name: "audit", Listen: "127.0.0.1:7452", DataDir: ".oz",
			Store:          storeflag.Config{Kind: storeflag.Bolt, Path: filepath.Join(".oz", "audit.db")},
			TLS:            pki.Paths{Cert: filepath.Join(".oz", "pki", "audit.pem"), Key: filepath.Join(".oz", "pki", "audit-key.pem")},
			CA:             filepath.Join(".oz", "pki", "ca.pem"),
			DeniedInterval: server.DefaultDeniedInterval,
			AuthTimeout:    server.DefaultAuthTimeout, CallTimeout: server.DefaultCallTimeout,
			Namespace: kvstore.Namespace, StoreCheck: boltcheck.DefaultTimeout,
		},
		resolverAddr: "127.0.0.1:7451", secretstoreAddr: "127.0.0.1:7450",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("defaults: got %+v, want %+v", *c, want)
	}
	env := map[string]string{
		"OZ_AUDIT_LISTEN": "127.0.0.1:1", "OZ_DATA_DIR": "/d", "OZ_AUDIT_DB": "/a.db", "OZ_RESOLVER_ADDR": "r:1", "OZ_SECRETSTORE_ADDR": "s:1",
		"OZ_AUDIT_TLS_CERT": "/c.pem", "OZ_AUDIT_TLS_KEY": "/k.pem", "OZ_TLS_CA": "/ca.pem", "OZ_AUDIT_METRICS_LISTEN": "127.0.0.1:9",
		"OZ_DENIED_COUNT_INTERVAL": "30s", "OZ_INIT": "true", "OZ_STORE_CHECK_TIMEOUT": "1m",
	}
	c, err = parse("ozauditd", []string{"--listen", "127.0.0.1:2"}, lookup(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = config{
		daemon: server.Daemon{
			Name: "audit", Listen: "127.0.0.1:2", DataDir: "/d", Store: storeflag.Config{Kind: storeflag.Bolt, Path: "/a.db"},
			TLS: pki.Paths{Cert: "/c.pem", Key: "/k.pem"}, CA: "/ca.pem", MetricsListen: "127.0.0.1:9",
			DeniedInterval: 30 * time.Second,
			AuthTimeout:    server.DefaultAuthTimeout, CallTimeout: server.DefaultCallTimeout,
			Namespace: kvstore.Namespace, Init: true, StoreCheck: time.Minute,
		},
		resolverAddr: "r:1", secretstoreAddr: "s:1",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("from env and flags: got %+v, want %+v", *c, want)
	}
	if _, err := parse("ozauditd", []string{"--denied-count-interval", "0s"}, lookup(nil), io.Discard); !flagenv.IsUsage(err) ||
		!strings.Contains(err.Error(), "--denied-count-interval: must be at least 1s") {
		t.Errorf("--denied-count-interval 0s: got %v, want a usage error naming the flag and the rule", err)
	}
	if _, err := parse("ozauditd", []string{"extra"}, lookup(nil), io.Discard); !flagenv.IsUsage(err) {
		t.Errorf("extra argument: got %v, want a usage error", err)
	}
	if _, err := parse("ozauditd", []string{"-h"}, lookup(nil), io.Discard); !errors.Is(err, flagenv.ErrHelp) {
		t.Errorf("-h: got %v, want flagenv.ErrHelp", err)
	}
}
