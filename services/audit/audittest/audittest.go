// Package audittest runs a real audit service (bbolt store, mutual TLS on
// a loopback port, the access rules of grpcapi) for tests of the audit
// service and of the services that ship events to it. It can be stopped
// and started again on the same address, to test delivery while the audit
// service is down.
package audittest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/grpcapi"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// Principals are test principals by bearer token.
var Principals = map[string]*auth.Principal{
	"admin":    {Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}},
	"member":   {Kind: auth.KindUser, Name: "users/bob", ID: "bob", Teams: map[string]auth.Role{"acme": auth.RoleMember}},
	"outsider": {Kind: auth.KindUser, Name: "users/carol", ID: "carol", Teams: map[string]auth.Role{"beta": auth.RoleAdmin}},
	"sysadmin": {Kind: auth.KindUser, Name: "users/root", ID: "root", SystemAdmin: true, Teams: map[string]auth.Role{}},
	"runner":   {Kind: auth.KindRunner, Name: "runners/r1", ID: "r1", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}},
}

// Options configure Start. The zero value is fine.
type Options struct {
	// Now is the service's clock; time.Now when nil.
	Now func() time.Time
	// ScanLimit is audit.Config's; the default when zero.
	ScanLimit int
	// Witnesses is audit.Config's: the emitters' witnesses VerifyChain
	// checks the chain against; none when nil.
	Witnesses audit.Witnesses
}

// Server is a running (or stopped) audit service.
type Server struct {
	Addr   string
	PKI    pki.Dir // the development PKI: certificates for every service
	DBPath string

	t      testing.TB
	opts   Options
	mu     sync.Mutex
	kv     kv.Store
	store  *kvstore.Store
	svc    *audit.Service
	cancel context.CancelFunc
	done   chan error
}

// Start starts an audit service with a new PKI and database in t's
// temporary directory. It is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{t: t, opts: opts, PKI: pki.Dir(filepath.Join(dir, "pki")), DBPath: filepath.Join(dir, "audit.db")}
	if err := pki.EnsureDev(s.PKI); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	s.serve(lis)
	t.Cleanup(s.Stop)
	return s
}

// Service returns the running service (nil while stopped).
func (s *Server) Service() *audit.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svc
}

// Store returns the running service's store (nil while stopped).
func (s *Server) Store() *kvstore.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store
}

func (s *Server) serve(lis net.Listener) {
	t := s.t
	t.Helper()
	serverTLS, err := pki.ServerConfig(s.PKI.For("audit"), s.PKI.CA())
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, err := kvstore.OpenBoltKV(s.DBPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	store, err := kvstore.New(context.Background(), kvs, kvstore.BoltOptions)
	if err != nil {
		kvs.Close()
		t.Fatal(err)
	}
	svc := audit.NewService(audit.Config{Store: store, Now: s.opts.Now, ScanLimit: s.opts.ScanLimit, Witnesses: s.opts.Witnesses})
	srv := server.New(server.Config{
		Name:     "audit",
		TLS:      serverTLS,
		Rules:    grpcapi.Rules,
		Logger:   slog.New(slog.DiscardHandler),
		OnDenied: grpcapi.OnDenied(svc, nil),
		Auth: authFunc(func(_ context.Context, token string) (*auth.Principal, error) {
			if p, ok := Principals[token]; ok {
				return p, nil
			}
			return nil, errs.E(errs.KindUnauthenticated, "unknown token")
		}),
	})
	grpcapi.Register(srv, svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	s.mu.Lock()
	s.kv, s.store, s.svc, s.cancel, s.done = kvs, store, svc, cancel, done
	s.mu.Unlock()
}

// Stop stops serving and closes the database (checking its consistency).
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cancel, done, kvs := s.cancel, s.done, s.kv
	s.cancel, s.done, s.kv, s.store, s.svc = nil, nil, nil, nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if err := <-done; err != nil {
		s.t.Errorf("audit Serve: %v", err)
	}
	if err := kvs.Close(); err != nil {
		s.t.Errorf("close audit db: %v", err)
	}
	if err := check(s.DBPath); err != nil {
		s.t.Errorf("audit db consistency check: %v", err)
	}
}

// check runs bbolt's consistency check over the closed file at path.
func check(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var all []error
		for err := range tx.Check() {
			all = append(all, err)
		}
		return errors.Join(all...)
	})
}

// Restart serves again on the same address, with the same database.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var lis net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if lis, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.Addr, err)
	}
	s.serve(lis)
}

// Dial connects to the server with the certificate of service cert
// ("secretstore", "resolver", "gateway", "audit").
func (s *Server) Dial(t testing.TB, cert string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(s.PKI.For(cert), s.PKI.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(s.Addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// As returns ctx carrying token as a bearer token.
func As(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

type authFunc func(context.Context, string) (*auth.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	return f(ctx, token)
}
