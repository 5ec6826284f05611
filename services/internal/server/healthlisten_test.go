package server_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/server"
)

// The plain-text health listener answers health checks with the main
// server's status — SERVING while it serves, NOT_SERVING once shutdown
// begins — and serves nothing else: no API, no reflection.
func TestHealthListener(t *testing.T) {
	srv := server.New(server.Config{Name: "test", Auth: fakeAuth{}, Logger: slog.New(slog.DiscardHandler)})
	scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopHealth := srv.ServeHealthOn(hlis)
	defer stopHealth()

	conn, err := grpc.NewClient(hlis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		return resp.GetStatus()
	}
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("before Serve: %v, want NOT_SERVING", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	deadline := time.Now().Add(5 * time.Second)
	for check() != healthpb.HealthCheckResponse_SERVING {
		if time.Now().After(deadline) {
			t.Fatal("the health listener never reported SERVING")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Nothing but health: the API and reflection are not there.
	_, err = scopev1.NewDirectoryServiceClient(conn).ListTeams(context.Background(), &scopev1.ListTeamsRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("API call on the health listener: %v, want Unimplemented", err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection on the health listener: %v, want Unimplemented", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after shutdown: %v, want NOT_SERVING", got)
	}
}
