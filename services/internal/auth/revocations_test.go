package auth_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// countingAuth authenticates "good-<id>" as a user holding token <id>,
// unless <id> is revoked, and counts its calls.
type countingAuth struct {
	calls   atomic.Int64
	revoked atomic.Value // map[string]bool
}

func (a *countingAuth) Authenticate(_ context.Context, token string) (*auth.Principal, error) {
	a.calls.Add(1)
	id := token[len("good-"):]
	if m, _ := a.revoked.Load().(map[string]bool); m[id] {
		return nil, errs.E(errs.KindUnauthenticated, "invalid, expired or revoked token")
	}
	return &auth.Principal{Kind: auth.KindUser, Name: "users/u", ID: "u", TokenID: id}, nil
}

type noticeServer struct {
	internalapiv1.UnimplementedAuthServiceServer
	n *auth.Notices
}

func (s *noticeServer) WatchRevocations(stream internalapiv1.AuthService_WatchRevocationsServer) error {
	return s.n.Serve(stream)
}

// serveNotices serves n's WatchRevocations on a loopback listener and
// returns a connection to it.
func serveNotices(t *testing.T, n *auth.Notices) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	internalapiv1.RegisterAuthServiceServer(srv, &noticeServer{n: n})
	go srv.Serve(lis)
	t.Cleanup(func() { n.Close(); srv.Stop() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// eventually polls cond every 10 ms for up to 30 s (a loaded machine).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRevocationNoticeDropsAtOnce: once Publish returns, a follower's cache
// no longer vouches for the revoked token — the very next call asks the
// authenticator, which refuses it — while other tokens stay cached.
func TestRevocationNoticeDropsAtOnce(t *testing.T) {
	n := auth.NewNotices(nil)
	n.AckWait = time.Minute // acknowledgements must come; never a timed pass
	var local []string
	n.Local(func(ids []string) { local = append(local, ids...) })
	conn := serveNotices(t, n)
	next := &countingAuth{}
	cache := auth.NewCache(next)
	cache.TTL = time.Hour // only a notice can drop the entry
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); auth.FollowRevocations(ctx, conn, cache, nil) }()
	t.Cleanup(func() { cancel(); <-followed })

	// Subscribed: a Publish reaches the follower (it may have cached
	// nothing yet; Publish to no subscriber returns at once).
	eventually(t, "the follower to subscribe", func() bool {
		_, _ = cache.Authenticate(ctx, "good-probe")
		before := next.calls.Load()
		n.Publish(ctx, []string{"probe"})
		_, _ = cache.Authenticate(ctx, "good-probe")
		return next.calls.Load() > before
	})

	for _, tok := range []string{"good-a", "good-b"} {
		if _, err := cache.Authenticate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	calls := next.calls.Load()
	next.revoked.Store(map[string]bool{"a": true})
	if late := n.Publish(ctx, []string{"a"}); late != 0 {
		t.Fatalf("Publish: %d subscribers did not acknowledge, want 0", late)
	}
	if _, err := cache.Authenticate(ctx, "good-a"); errs.KindOf(err) != errs.KindUnauthenticated {
		t.Errorf("revoked token right after Publish: got %v, want Unauthenticated", err)
	}
	if _, err := cache.Authenticate(ctx, "good-b"); err != nil {
		t.Errorf("another token: %v", err)
	}
	if got := next.calls.Load() - calls; got != 1 {
		t.Errorf("authenticator asked %d times, want 1 (the revoked token only)", got)
	}
	if len(local) == 0 || local[len(local)-1] != "a" {
		t.Errorf("local listener told %v, want the revoked id last", local)
	}
}

// TestRevocationWithoutStreamIsBoundedByTTL: with no stream, a revoked
// token keeps working from the cache until its entry's TTL, no longer.
func TestRevocationWithoutStreamIsBoundedByTTL(t *testing.T) {
	next := &countingAuth{}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	cache := auth.NewCache(next)
	cache.Now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := cache.Authenticate(ctx, "good-a"); err != nil {
		t.Fatal(err)
	}
	next.revoked.Store(map[string]bool{"a": true})
	now = now.Add(auth.DefaultCacheTTL - time.Nanosecond)
	if _, err := cache.Authenticate(ctx, "good-a"); err != nil {
		t.Fatalf("within the TTL (cached): %v", err)
	}
	now = now.Add(time.Nanosecond)
	if _, err := cache.Authenticate(ctx, "good-a"); errs.KindOf(err) != errs.KindUnauthenticated {
		t.Errorf("at the TTL: got %v, want Unauthenticated", err)
	}
}

// TestNoticesCloseEndsStreams: Close ends every stream, so that a
// graceful stop of the resolver need not wait for them.
func TestNoticesCloseEndsStreams(t *testing.T) {
	n := auth.NewNotices(nil)
	conn := serveNotices(t, n)
	stream, err := internalapiv1.NewAuthServiceClient(conn).WatchRevocations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hello, err := stream.Recv(); err != nil || hello.GetSequence() != 0 {
		t.Fatalf("first message: %v, %v; want sequence 0", hello, err)
	}
	n.Close()
	if _, err := stream.Recv(); err == nil {
		t.Fatalf("stream still open after Close")
	}
}
