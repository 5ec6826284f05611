package server_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// Dial with several addresses verifies each replica's certificate against
// its own host (as with one address) and balances calls over all of them.
func TestDialSeveralAddresses(t *testing.T) {
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
	var addrs []string
	calls := make([]*recorder, 2)
	for i := range calls {
		calls[i] = newRecorder()
		srv := server.New(server.Config{
			Name: "test", TLS: serverTLS, Auth: fakeAuth{}, Logger: slog.New(slog.DiscardHandler),
			Rules:    auth.Rules{"/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/": {Access: auth.Deny}},
			OnDenied: calls[i].hook, // every call is refused, and so recorded
		})
		scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, lis.Addr().String())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, lis) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	conn, err := server.Dial(strings.Join(addrs, ", "), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := scopev1.NewDirectoryServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer x")
	counts := func() (int, int) { return len(calls[0].got), len(calls[1].got) }
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := client.ListTeams(ctx, &scopev1.ListTeamsRequest{})
		if err == nil || strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "Unavailable") {
			t.Fatalf("call: %v, want it to reach a replica and be denied there", err)
		}
		calls[0].mu.Lock()
		calls[1].mu.Lock()
		a, b := counts()
		calls[1].mu.Unlock()
		calls[0].mu.Unlock()
		if a > 0 && b > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls per replica %d and %d, want both > 0", a, b)
		}
	}
}
