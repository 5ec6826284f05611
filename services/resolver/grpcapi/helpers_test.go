package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

// t0 is when fixtures are made; servers start at t0+2h unless told.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is an injectable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newPKI makes a development CA with the service certificates, plus one
// for "intruder", a name no rule lists.
func newPKI(t *testing.T) pki.Dir {
	t.Helper()
	dir := pki.Dir(filepath.Join(t.TempDir(), "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(dir.CA(), filepath.Join(string(dir), "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(ca, pair.PrivateKey.(*ecdsa.PrivateKey), "intruder", dir.For("intruder")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// env is one resolver served over loopback with mutual TLS.
type env struct {
	pki    pki.Dir
	clock  *clock
	store  *boltkv.Store
	dir    resolvertest.Both
	addr   string
	logs   *syncBuffer
	dbPath string
	stop   func()
}

// serve starts a resolver on the database at dbPath; it stops at cleanup
// (or on stop, once).
func serve(t *testing.T, pkiDir pki.Dir, dbPath string, clk *clock) *env {
	t.Helper()
	store, err := boltkv.Open(dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pki: pkiDir, clock: clk, store: store, dbPath: dbPath, logs: &syncBuffer{}}
	e.dir = resolvertest.WithRuns(directory.New(resolver.NewStore(store, clk.Now)))
	tlsCfg, err := pki.ServerConfig(pkiDir.For("resolver"), pkiDir.CA())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := server.New(server.Config{Name: "resolver", TLS: tlsCfg, Rules: grpcapi.Rules, Auth: e.dir, Logger: log,
		OnDenied: grpcapi.OnDenied(e.dir.Store(), log)})
	grpcapi.Register(srv, e.dir.Directory)
	grpcapi.RegisterRuns(srv, e.dir.Service)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := store.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

// clients are the resolver's three services on one connection.
type clients struct {
	dir    scopev1.DirectoryServiceClient
	tokens scopev1.TokenServiceClient
	auth   internalapiv1.AuthServiceClient
}

// dial connects presenting the certificate of service name.
func (e *env) dial(t *testing.T, name string) clients {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(e.pki.For(name), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(e.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClients(conn)
}

func newClients(conn grpc.ClientConnInterface) clients {
	return clients{
		dir:    scopev1.NewDirectoryServiceClient(conn),
		tokens: scopev1.NewTokenServiceClient(conn),
		auth:   internalapiv1.NewAuthServiceClient(conn),
	}
}

// withToken returns a context sending token as the bearer token ("" sends
// none).
func withToken(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// as returns a context carrying p, for calling the Directory directly.
func as(p *auth.Principal) context.Context {
	return auth.WithPrincipal(context.Background(), p)
}

// authenticate resolves token on d, failing the test if it does not work.
func authenticate(t *testing.T, d auth.Authenticator, token string) *auth.Principal {
	t.Helper()
	p, err := d.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// fieldOf returns the field named by the BadRequest detail of err.
func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// secretPart is what follows "oz_<token id>_" in a bearer token.
func secretPart(t *testing.T, token string) string {
	t.Helper()
	const head = len(directory.TokenPrefix) + 16 + 1
	if len(token) <= head || !strings.HasPrefix(token, directory.TokenPrefix) || token[head-1] != '_' {
		t.Fatalf("token has not the shape oz_<id>_<secret>")
	}
	return token[head:]
}
