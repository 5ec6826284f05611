package server_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// counted is one call of the OnDenied hook, with what counting adds.
type counted struct {
	method, source, relay, requestID, client string
	principal                                bool
	code                                     codes.Code
	msg                                      string
	count                                    server.DeniedCount
	isCount                                  bool
}

type countRecorder struct {
	mu  sync.Mutex
	got []counted
}

func (r *countRecorder) hook(ctx context.Context, method string, _ any, err error) {
	st := status.Convert(err)
	n, ok := server.DeniedCountFrom(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, counted{
		method: method, source: auth.SourceFrom(ctx), relay: auth.ServiceFrom(ctx), requestID: server.RequestID(ctx),
		client: auth.ClientFrom(ctx), principal: auth.PrincipalFrom(ctx) != nil, code: st.Code(), msg: st.Message(),
		count: n, isCount: ok,
	})
}

func (r *countRecorder) take() []counted {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// tlsServer serves the directory fake as the secretstore, with mutual
// TLS, counting anonymous refusals per interval (an hour: only flushes
// and the stop record them). It returns the server, its address and a
// stop function that waits for Serve.
func tlsServer(t *testing.T, dir pki.Dir, rec *countRecorder) (*server.Server, string, func()) {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(dir.For("secretstore"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name:           "test",
		TLS:            tlsCfg,
		Rules:          auth.Rules{"/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/": {Access: auth.Token}},
		Auth:           fakeAuth{},
		Logger:         slog.New(slog.DiscardHandler),
		OnDenied:       rec.hook,
		DeniedInterval: time.Hour,
	})
	scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, lis.Addr().String(), stop
}

func dialCert(t *testing.T, dir pki.Dir, cert, addr string) scopev1.DirectoryServiceClient {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(dir.For(cert), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return scopev1.NewDirectoryServiceClient(conn)
}

const tokenCanary = "oz_0123456789abcdef_CANARYtokenSECRET"

// TestDeniedCounted: refusals of requests without a valid credential are
// not told one by one but counted per source, method, code and reason,
// and told once per interval (here: at FlushDenied and at the stop) with
// the count; the source of a request the gateway relayed is the address
// it forwarded, believed from the gateway's certificate only. Refusals of
// an authenticated caller are told at once, each.
func TestDeniedCounted(t *testing.T) {
	dir := newPKI(t)
	rec := &countRecorder{}
	srv, addr, stop := tlsServer(t, dir, rec)
	gw := dialCert(t, dir, "gateway", addr)
	other := dialCert(t, dir, "resolver", addr)

	call := func(c scopev1.DirectoryServiceClient, n int, team string, md ...string) {
		t.Helper()
		for i := 0; i < n; i++ {
			ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
			_, err := c.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/" + team})
			if c := status.Code(err); c != codes.Unauthenticated && c != codes.PermissionDenied {
				t.Fatalf("GetTeam: got %v, want a refusal", err)
			}
		}
	}
	call(gw, 300, "acme", "x-oz-peer", "203.0.113.7")                                            // no token
	call(gw, 200, "acme", "x-oz-peer", "198.51.100.2", "authorization", "Bearer "+tokenCanary)   // a bad token
	call(other, 100, "acme", "x-oz-peer", "203.0.113.7", "authorization", "Bearer "+tokenCanary) // not a relay: its own address
	call(gw, 2, "secret-team", "x-oz-peer", "203.0.113.7", "authorization", "Bearer "+goodToken) // authenticated

	now := rec.take()
	if len(now) != 2 {
		t.Fatalf("told %d refusals before the flush, want 2 (the authenticated caller's, one each): %+v", len(now), now)
	}
	for _, d := range now {
		if d.isCount || !d.principal || d.code != codes.PermissionDenied || d.source != "203.0.113.7" {
			t.Errorf("authenticated refusal: got %+v, want alice's PermissionDenied from 203.0.113.7, uncounted", d)
		}
	}

	srv.FlushDenied()
	got := rec.take()
	want := map[string]int64{"203.0.113.7/gateway": 300, "198.51.100.2/gateway": 200, "127.0.0.1/resolver": 100}
	if len(got) != len(want) {
		t.Fatalf("told %d counts, want %d: %+v", len(got), len(want), got)
	}
	for _, d := range got {
		key := d.source + "/" + d.relay
		if !d.isCount || d.count.Count != want[key] || d.code != codes.Unauthenticated || d.principal || d.requestID != "" {
			t.Errorf("%s: got %+v, want an Unauthenticated count of %d, without principal or request id", key, d, want[key])
		}
		if d.method != scopev1.DirectoryService_GetTeam_FullMethodName || d.count.First.IsZero() || d.count.Last.Before(d.count.First) {
			t.Errorf("%s: got method %s, first %v, last %v", key, d.method, d.count.First, d.count.Last)
		}
		if strings.Contains(d.msg, "CANARY") {
			t.Errorf("%s: the reason holds the token: %q", key, d.msg)
		}
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("no count for %v", want)
	}

	// What is counted when the server stops is told then, not lost.
	call(gw, 5, "acme", "x-oz-peer", "203.0.113.7")
	srv.FlushDenied() // nothing else pending: the 5 only below
	if got := rec.take(); len(got) != 1 || got[0].count.Count != 5 {
		t.Fatalf("flush: got %+v, want one count of 5", got)
	}
	call(gw, 7, "acme", "x-oz-peer", "203.0.113.7")
	stop()
	if got := rec.take(); len(got) != 1 || got[0].count.Count != 7 {
		t.Errorf("at the stop: got %+v, want one count of 7", got)
	}
}

// TestRequestIDs: a request keeps a valid id; an invalid one (too long,
// odd characters, a pasted token) is replaced whole by a generated one,
// which the hook, the logs and the handler all see.
func TestRequestIDs(t *testing.T) {
	dir := newPKI(t)
	rec := &countRecorder{}
	_, addr, _ := tlsServer(t, dir, rec)
	gw := dialCert(t, dir, "gateway", addr)
	for _, tt := range []struct {
		name, sent string
		kept       bool
	}{
		{"Valid", "job-42:step.3", true},
		{"TooLong", strings.Repeat("a", 129), false},
		{"Spaces", "a forged=\"log line\"", false},
		{"Token", tokenCanary, false},
		{"Empty", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+goodToken, "x-request-id", tt.sent)
			if _, err := gw.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/secret-team"}); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("got %v, want PermissionDenied", err)
			}
			got := rec.take()
			if len(got) != 1 {
				t.Fatalf("told %d refusals, want 1", len(got))
			}
			id := got[0].requestID
			switch {
			case tt.kept && id != tt.sent:
				t.Errorf("got request id %q, want %q kept", id, tt.sent)
			case !tt.kept && (id == "" || strings.Contains(tt.sent, id) || strings.Contains(id, "CANARY") || len(id) > 128):
				t.Errorf("got request id %q, want a generated one, nothing of %q", id, tt.sent)
			}
		})
	}
}
