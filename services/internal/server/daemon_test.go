package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/flagenv"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

// logBuffer is a buffer safe for a logger's concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeOutbox is an outbox in a "store" that can be closed: reading it
// then is a mistake of the teardown's order.
type fakeOutbox struct {
	mu             sync.Mutex
	events         []*auditv1.Event
	notify         func()
	closed         bool
	readAfterClose bool
}

func (o *fakeOutbox) Pending(_ context.Context, max int) ([]*auditv1.Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		o.readAfterClose = true
		return nil, errors.New("store closed")
	}
	return slices.Clone(o.events[:min(max, len(o.events))]), nil
}

func (o *fakeOutbox) Ack(_ context.Context, ids []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = slices.DeleteFunc(o.events, func(ev *auditv1.Event) bool { return slices.Contains(ids, ev.GetId()) })
	return nil
}

func (o *fakeOutbox) OnCommit(fn func()) { o.notify = fn }

// commit adds an event, as a change would.
func (o *fakeOutbox) commit(id string) {
	o.mu.Lock()
	o.events = append(o.events, &auditv1.Event{Id: id, Time: timestamppb.Now(), Action: "test"})
	o.mu.Unlock()
	o.notify()
}

func (o *fakeOutbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return nil
}

// fakeIngest is the audit service's AuditIngestService, recording ids.
type fakeIngest struct {
	internalapiv1.UnimplementedAuditIngestServiceServer
	mu  sync.Mutex
	ids []string
}

func (f *fakeIngest) AppendEvents(_ context.Context, req *internalapiv1.AppendEventsRequest) (*internalapiv1.AppendEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range req.GetEvents() {
		f.ids = append(f.ids, ev.GetId())
	}
	return &internalapiv1.AppendEventsResponse{Appended: int32(len(req.GetEvents()))}, nil
}

func (f *fakeIngest) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids)
}

// startAudit serves fakeIngest with the audit service's certificate,
// admitting the resolver's.
func startAudit(t *testing.T, dir pki.Dir) (*fakeIngest, string) {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(dir.For("audit"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name: "audit", TLS: tlsCfg, Logger: slog.New(slog.DiscardHandler),
		Rules: auth.Rules{"/oz.internalapi.v1.AuditIngestService/": {Access: auth.Internal, Services: []string{"resolver"}}},
	})
	f := &fakeIngest{}
	internalapiv1.RegisterAuditIngestServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, lis.Addr().String()
}

func newPKI(t *testing.T) pki.Dir {
	t.Helper()
	dir := pki.Dir(filepath.Join(t.TempDir(), "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func daemon(dir pki.Dir, logs io.Writer) server.Daemon {
	// The data directory newPKI made: a first start (--init) of a store
	// the builds here do not open, but which Run checks before building.
	data := filepath.Dir(string(dir))
	return server.Daemon{
		Name: "resolver", Listen: "127.0.0.1:0", TLS: dir.For("resolver"), CA: dir.CA(),
		DataDir: data, Init: true, StoreCheck: time.Minute,
		Store:         storeflag.Config{Kind: storeflag.Bolt, Path: filepath.Join(data, "resolver.db")},
		MetricsListen: "127.0.0.1:0", HealthListen: "127.0.0.1:0",
		Log: slog.New(slog.NewJSONHandler(logs, nil)),
	}
}

// TestRun: Run serves what build made, with /metrics and the health
// listener beside it; the audit shipper delivers from the first event
// (made while building) on; once ctx is done it stops serving, then
// tears down last first: the shipper's flush before the store it reads,
// the store before what was deferred before it.
func TestRun(t *testing.T) {
	dir := newPKI(t)
	ingest, auditAddr := startAudit(t, dir)
	var logs logBuffer
	d := daemon(dir, &logs)
	ready := make(chan server.Addrs, 1)
	d.Ready = func(a server.Addrs) { ready <- a }

	var mu sync.Mutex
	var closed []string
	closer := func(name string) func() error {
		return func() error { mu.Lock(); closed = append(closed, name); mu.Unlock(); return nil }
	}
	ob := &fakeOutbox{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, d, func(ctx context.Context, deps *server.Deps) (*server.Server, error) {
			deps.Defer(closer("first"))
			deps.Defer(func() error { closer("store")(); return ob.Close() })
			if err := deps.Ship(auditAddr, "resolver", ob, ob.OnCommit); err != nil {
				return nil, err
			}
			ob.commit("resolver-1") // as a bootstrap would
			return deps.Server(server.Config{}), nil
		})
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before serving: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready in 10s")
	}

	deadline := time.Now().Add(10 * time.Second)
	for len(ingest.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ingest.got(); !slices.Equal(got, []string{"resolver-1"}) {
		t.Errorf("delivered: got %v, want the event made while building", got)
	}

	resp, err := http.Get("http://" + addrs.Metrics.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines", "process_start_time_seconds", `oz_audit_outbox_delivered_total{emitter="resolver"} 1`, "grpc_server_started_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	conn, err := grpc.NewClient(addrs.Health.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	if h, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: got %v, %v; want SERVING", h, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(closed, []string{"store", "first"}) {
		t.Errorf("closed: got %v, want the store, then what was deferred before it", closed)
	}
	if ob.readAfterClose {
		t.Error("the outbox was read after its store was closed")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("logs do not say it stopped:\n%s", logs.String())
	}
}

// TestRunAuditDown: events the audit service could not take by the end
// stay in the outbox, and the log says so, after serving has stopped.
func TestRunAuditDown(t *testing.T) {
	dir := newPKI(t)
	var logs logBuffer
	d := daemon(dir, &logs)
	d.MetricsListen, d.HealthListen = "", ""
	ready := make(chan server.Addrs, 1)
	d.Ready = func(a server.Addrs) { ready <- a }
	ob := &fakeOutbox{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, d, func(ctx context.Context, deps *server.Deps) (*server.Server, error) {
			deps.Defer(ob.Close)
			if err := deps.Ship("127.0.0.1:1", "resolver", ob, ob.OnCommit); err != nil {
				return nil, err
			}
			return deps.Server(server.Config{}), nil
		})
	}()
	select {
	case a := <-ready:
		if a.Metrics != nil || a.Health != nil {
			t.Errorf("addrs: got %+v, want no metrics or health listener", a)
		}
	case err := <-done:
		t.Fatalf("Run returned before serving: %v\n%s", err, logs.String())
	}
	ob.commit("resolver-1")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	l := logs.String()
	stopped, left := strings.Index(l, `"msg":"stopped"`), strings.Index(l, "events left in the outbox")
	if stopped < 0 || left < stopped {
		t.Errorf("logs: want \"stopped\", then events left in the outbox:\n%s", l)
	}
	if len(ob.events) != 1 || ob.readAfterClose {
		t.Errorf("outbox: got %d events (read after close: %v), want the one kept", len(ob.events), ob.readAfterClose)
	}
}

// TestRunBuildFails: a failing build is Run's error; what it deferred is
// closed, and nothing is served.
func TestRunBuildFails(t *testing.T) {
	dir := newPKI(t)
	d := daemon(dir, io.Discard)
	d.Ready = func(server.Addrs) { t.Error("ready after a failed build") }
	var closed bool
	boom := errors.New("boom")
	err := server.Run(context.Background(), d, func(_ context.Context, deps *server.Deps) (*server.Server, error) {
		deps.Defer(func() error { closed = true; return nil })
		return nil, boom
	})
	if !errors.Is(err, boom) || !closed {
		t.Errorf("got %v (closed %v), want boom and the deferred close run", err, closed)
	}

	d.TLS.Cert = filepath.Join(t.TempDir(), "none.pem")
	err = server.Run(context.Background(), d, func(context.Context, *server.Deps) (*server.Server, error) {
		t.Error("build called without a certificate")
		return nil, nil
	})
	if err == nil || !strings.Contains(err.Error(), "server TLS") {
		t.Errorf("missing certificate: got %v, want a server TLS error", err)
	}
}

// TestFlags: the flags every daemon has, their variables and defaults.
func TestFlags(t *testing.T) {
	parse := func(env map[string]string, args ...string) (server.Daemon, string, error) {
		set := flagenv.New("ozresolverd", flagenv.Help{}, func(k string) string { return env[k] }, io.Discard)
		f := server.RegisterFlags(set, "resolver")
		var peer string
		server.PeerFlag(set, &peer, "audit", "to deliver audit events to")
		if err := set.Parse(args); err != nil {
			return server.Daemon{}, "", err
		}
		d, err := f.Daemon()
		return d, peer, err
	}
	d, peer, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := server.Daemon{
		Name: "resolver", Listen: "127.0.0.1:7451", DataDir: ".oz",
		Store:          storeflag.Config{Kind: storeflag.Bolt, Path: filepath.Join(".oz", "resolver.db")},
		TLS:            pki.Paths{Cert: filepath.Join(".oz", "pki", "resolver.pem"), Key: filepath.Join(".oz", "pki", "resolver-key.pem")},
		CA:             filepath.Join(".oz", "pki", "ca.pem"),
		DeniedInterval: server.DefaultDeniedInterval,
		AuthTimeout:    server.DefaultAuthTimeout, CallTimeout: server.DefaultCallTimeout,
	}
	if !equalDaemon(d, want) || peer != "127.0.0.1:7452" {
		t.Errorf("defaults: got %+v, %q; want %+v, 127.0.0.1:7452", d, peer, want)
	}
	env := map[string]string{
		"OZ_RESOLVER_LISTEN": ":1", "OZ_DATA_DIR": "/d", "OZ_RESOLVER_DB": "/r.db", "OZ_RESOLVER_TLS_CERT": "/c.pem",
		"OZ_RESOLVER_TLS_KEY": "/k.pem", "OZ_TLS_CA": "/ca.pem", "OZ_RESOLVER_METRICS_LISTEN": ":9", "OZ_HEALTH_LISTEN": ":8",
		"OZ_TRACE_EXPORTER": "stdout", "OZ_AUDIT_ADDR": "a:1", "OZ_DENIED_COUNT_INTERVAL": "10s",
		"OZ_AUTH_TIMEOUT": "2s", "OZ_CALL_TIMEOUT": "3s",
	}
	d, peer, err = parse(env, "--listen", ":2")
	if err != nil {
		t.Fatal(err)
	}
	want = server.Daemon{
		Name: "resolver", Listen: ":2", DataDir: "/d", Store: storeflag.Config{Kind: storeflag.Bolt, Path: "/r.db"},
		TLS: pki.Paths{Cert: "/c.pem", Key: "/k.pem"}, CA: "/ca.pem", MetricsListen: ":9", HealthListen: ":8",
		DeniedInterval: 10 * time.Second, AuthTimeout: 2 * time.Second, CallTimeout: 3 * time.Second,
	}
	want.Trace.Exporter = "stdout"
	if !equalDaemon(d, want) || peer != "a:1" {
		t.Errorf("from the environment and a flag: got %+v, %q; want %+v, a:1", d, peer, want)
	}
	for name, args := range map[string][]string{
		"DBAndStore":  {"--db", "a.db", "--store", "bolt:b.db"},
		"BadExporter": {"--trace-exporter", "jaeger"},
		"DeniedZero":  {"--denied-count-interval", "0"},
		"DeniedShort": {"--denied-count-interval", "10ms"},
		"AuthZero":    {"--auth-timeout", "0s"},
		"CallZero":    {"--call-timeout", "0s"},
	} {
		if _, _, err := parse(nil, args...); !flagenv.IsUsage(err) {
			t.Errorf("%s: got %v, want a usage error", name, err)
		}
	}
}

func equalDaemon(a, b server.Daemon) bool {
	return a.Name == b.Name && a.Listen == b.Listen && a.TLS == b.TLS && a.CA == b.CA && a.DataDir == b.DataDir &&
		a.Store.String() == b.Store.String() && a.MetricsListen == b.MetricsListen && a.HealthListen == b.HealthListen &&
		a.Trace == b.Trace && a.DeniedInterval == b.DeniedInterval &&
		a.AuthTimeout == b.AuthTimeout && a.CallTimeout == b.CallTimeout
}
