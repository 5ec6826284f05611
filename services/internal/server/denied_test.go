package server_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/server"
)

// denial is one call of the OnDenied hook.
type denial struct {
	method, client, requestID string
	principal                 *auth.Principal
	req                       any
	code                      codes.Code
	msg                       string
	cancellable               bool
}

type recorder struct {
	mu   sync.Mutex
	got  []denial
	hook server.Denied
}

func newRecorder() *recorder {
	r := &recorder{}
	r.hook = func(ctx context.Context, method string, req any, err error) {
		st := status.Convert(err)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, denial{
			method: method, client: auth.ClientFrom(ctx), requestID: server.RequestID(ctx),
			principal: auth.PrincipalFrom(ctx), req: req, code: st.Code(), msg: st.Message(),
			cancellable: ctx.Done() != nil,
		})
	}
	return r
}

func (r *recorder) take() []denial {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// fakeDirectory refuses GetTeam for "secret-team" and finds no team
// "missing".
type fakeDirectory struct {
	scopev1.UnimplementedDirectoryServiceServer
}

func (fakeDirectory) GetTeam(ctx context.Context, req *scopev1.GetTeamRequest) (*scopev1.GetTeamResponse, error) {
	switch req.GetName() {
	case "teams/secret-team":
		return nil, errs.E(errs.KindPermissionDenied, "only members of team %q may see it", "secret-team")
	case "teams/missing":
		return nil, errs.E(errs.KindNotFound, "team not found")
	}
	return &scopev1.GetTeamResponse{Team: &scopev1.Team{Name: req.GetName()}}, nil
}

type fakeAuth struct{}

const goodToken = "oz_good"

func (fakeAuth) Authenticate(_ context.Context, token string) (*auth.Principal, error) {
	if token == goodToken {
		return &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice"}, nil
	}
	return nil, errs.E(errs.KindUnauthenticated, "invalid, expired or revoked token")
}

func TestOnDenied(t *testing.T) {
	rec := newRecorder()
	dirSvc := "/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/"
	srv := server.New(server.Config{
		Name: "test",
		Rules: auth.Rules{
			dirSvc:               {Access: auth.Token},
			dirSvc + "ListTeams": {Access: auth.Deny},
		},
		Auth:     fakeAuth{},
		Logger:   slog.New(slog.DiscardHandler),
		OnDenied: rec.hook,
	})
	scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
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
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dir := scopev1.NewDirectoryServiceClient(conn)

	as := func(token string) context.Context {
		md := metadata.Pairs("x-oz-client", "cli", "x-request-id", "req-1")
		if token != "" {
			md.Append("authorization", "Bearer "+token)
		}
		return metadata.NewOutgoingContext(context.Background(), md)
	}
	alice := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice"}
	getTeam := dir.GetTeam
	tests := []struct {
		name      string
		call      func() error
		want      codes.Code
		recorded  bool
		method    string
		principal *auth.Principal
		req       proto.Message
	}{
		{"NoToken", func() error { _, err := getTeam(as(""), &scopev1.GetTeamRequest{Name: "teams/acme"}); return err },
			codes.Unauthenticated, true, dirSvc + "GetTeam", nil, &scopev1.GetTeamRequest{Name: "teams/acme"}},
		{"BadToken", func() error { _, err := getTeam(as("oz_bad"), &scopev1.GetTeamRequest{Name: "teams/acme"}); return err },
			codes.Unauthenticated, true, dirSvc + "GetTeam", nil, &scopev1.GetTeamRequest{Name: "teams/acme"}},
		{"RefusedByHandler", func() error {
			_, err := getTeam(as(goodToken), &scopev1.GetTeamRequest{Name: "teams/secret-team"})
			return err
		}, codes.PermissionDenied, true, dirSvc + "GetTeam", alice, &scopev1.GetTeamRequest{Name: "teams/secret-team"}},
		{"NoAccessRule", func() error { _, err := dir.ListTeams(as(goodToken), &scopev1.ListTeamsRequest{}); return err },
			codes.PermissionDenied, true, dirSvc + "ListTeams", nil, &scopev1.ListTeamsRequest{}},
		{"Allowed", func() error {
			_, err := getTeam(as(goodToken), &scopev1.GetTeamRequest{Name: "teams/acme"})
			return err
		},
			codes.OK, false, "", nil, nil},
		{"OtherError", func() error {
			_, err := getTeam(as(goodToken), &scopev1.GetTeamRequest{Name: "teams/missing"})
			return err
		},
			codes.NotFound, false, "", nil, nil},
		{"HealthCheck", func() error {
			_, err := healthpb.NewHealthClient(conn).Check(as(""), &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK, false, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status.Code(err) != tt.want {
				t.Fatalf("call: got %v, want code %v", err, tt.want)
			}
			got := rec.take()
			if !tt.recorded {
				if len(got) != 0 {
					t.Fatalf("hook called %d times, want never", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("hook called %d times, want once", len(got))
			}
			d := got[0]
			if d.method != tt.method || d.code != tt.want || d.msg == "" {
				t.Errorf("got method %q code %v message %q, want %q %v and the refusal's message", d.method, d.code, d.msg, tt.method, tt.want)
			}
			if d.client != "cli" || d.requestID != "req-1" {
				t.Errorf("got client %q request id %q, want cli and req-1", d.client, d.requestID)
			}
			switch {
			case tt.principal == nil && d.principal != nil:
				t.Errorf("got principal %v, want none", d.principal.Name)
			case tt.principal != nil && (d.principal == nil || d.principal.Name != tt.principal.Name):
				t.Errorf("got principal %v, want %s", d.principal, tt.principal.Name)
			}
			if m, ok := d.req.(proto.Message); !ok || !proto.Equal(m, tt.req) {
				t.Errorf("got request %v, want %v", d.req, tt.req)
			}
			if d.cancellable {
				t.Errorf("the hook's context can be cancelled by the client")
			}
		})
	}
}

// TestNoHook: without OnDenied, refusals are what they were.
func TestNoHook(t *testing.T) {
	srv := server.New(server.Config{Name: "test", Auth: fakeAuth{}, Logger: slog.New(slog.DiscardHandler)})
	scopev1.RegisterDirectoryServiceServer(srv, fakeDirectory{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = scopev1.NewDirectoryServiceClient(conn).GetTeam(context.Background(), &scopev1.GetTeamRequest{Name: "teams/acme"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("got %v, want PermissionDenied (no access rule)", err)
	}
}
