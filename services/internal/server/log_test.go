package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/server"
)

// canary is a would-be name that is really a value: it must reach the
// caller in the status message and never the service's log.
const canary = "hunter2-canary-7f3a"

// echoDirectory answers GetTeam with the error kind its name asks for,
// with a message that echoes the name as the services' errors do.
type echoDirectory struct {
	scopev1.UnimplementedDirectoryServiceServer
}

func (echoDirectory) GetTeam(_ context.Context, req *scopev1.GetTeamRequest) (*scopev1.GetTeamResponse, error) {
	kind, _, _ := strings.Cut(strings.TrimPrefix(req.GetName(), "teams/"), "/")
	switch kind {
	case "notfound":
		return nil, errs.E(errs.KindNotFound, "secret %s not found", req.GetName())
	case "exists":
		return nil, errs.E(errs.KindAlreadyExists, "secret %s already exists", req.GetName())
	case "invalid":
		return nil, errs.E(errs.KindInvalid, "name %s: must be UPPER_SNAKE", req.GetName())
	case "precondition":
		return nil, errs.E(errs.KindFailedPrecondition, "secret %s: etag mismatch", req.GetName())
	case "denied":
		return nil, errs.E(errs.KindPermissionDenied, "may not read %s", req.GetName())
	case "unavailable":
		return nil, errs.E(errs.KindUnavailable, "store busy")
	}
	return &scopev1.GetTeamResponse{Team: &scopev1.Team{Name: req.GetName()}}, nil
}

// syncBuffer is a log destination that the server writes while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogKeepsCallerInputOut: the request log line of a call refused for
// what the caller asked (not found, exists, invalid, precondition, denied)
// has the code but not the message, which echoes the caller's names; the
// caller still gets the message. A service's own fault keeps its message.
func TestLogKeepsCallerInputOut(t *testing.T) {
	var logs syncBuffer
	dirSvc := "/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/"
	srv := server.New(server.Config{
		Name:   "test",
		Rules:  auth.Rules{dirSvc: {Access: auth.Token}},
		Auth:   fakeAuth{},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	scopev1.RegisterDirectoryServiceServer(srv, echoDirectory{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dir := scopev1.NewDirectoryServiceClient(conn)
	callCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+goodToken)

	for _, tt := range []struct {
		kind string
		want codes.Code
	}{
		{"notfound", codes.NotFound},
		{"exists", codes.AlreadyExists},
		{"invalid", codes.InvalidArgument},
		{"precondition", codes.FailedPrecondition},
		{"denied", codes.PermissionDenied},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			name := "teams/" + tt.kind + "/secrets/" + canary
			_, err := dir.GetTeam(callCtx, &scopev1.GetTeamRequest{Name: name})
			st := status.Convert(err)
			if st.Code() != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(st.Message(), canary) {
				t.Errorf("the caller's message %q lost the name", st.Message())
			}
		})
	}
	_, err = dir.GetTeam(callCtx, &scopev1.GetTeamRequest{Name: "teams/unavailable"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}

	got := logs.String()
	if strings.Contains(got, canary) {
		t.Errorf("the log holds the caller's name:\n%s", got)
	}
	for _, code := range []string{"NotFound", "AlreadyExists", "InvalidArgument", "FailedPrecondition", "PermissionDenied"} {
		if !strings.Contains(got, "code="+code) {
			t.Errorf("the log has no line with code=%s:\n%s", code, got)
		}
	}
	if !strings.Contains(got, "store busy") {
		t.Errorf("the log lost the message of the service's own fault (Unavailable):\n%s", got)
	}
}
