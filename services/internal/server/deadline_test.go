package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ozsecrets/oz/lib/dial"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// hungResolver never answers until the call is given up.
type hungResolver struct {
	internalapiv1.UnimplementedAuthServiceServer
}

func (hungResolver) Authenticate(ctx context.Context, _ *internalapiv1.AuthenticateRequest) (*internalapiv1.AuthenticateResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A hung resolver costs a request the auth timeout, not the caller's whole
// deadline, and the error names it, through the remote authenticator as
// the services use it.
func TestBoundCallsHungResolver(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	internalapiv1.RegisterAuthServiceServer(srv, hungResolver{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		boundCalls(slog.New(slog.DiscardHandler), 100*time.Millisecond, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	// The caller (a request relayed by the gateway) would wait an hour.
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	_, err = auth.NewRemote(conn).Authenticate(ctx, "oz_canary_token")
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("got %v, want unavailable", err)
	}
	st := errs.ToStatus(err)
	if want := "the resolver did not answer within 100ms; retry"; st.Code() != codes.Unavailable || st.Message() != want {
		t.Errorf("got %v %q, want Unavailable %q", st.Code(), st.Message(), want)
	}
}

func TestCalleeTitle(t *testing.T) {
	for method, want := range map[string]string{
		"/oz.internalapi.v1.AuthService/Authenticate":         "the resolver",
		"/oz.internalapi.v1.RunSecretsService/SealRunSecrets": "the secret store",
		"/oz.internalapi.v1.AuditIngestService/AppendEvents":  "the audit service",
		"/oz.scope.v1.DirectoryService/GetTeam":               "the resolver",
		"/oz.secrets.v1.SecretService/ListSecrets":            "the secret store",
		"/grpc.health.v1.Health/Check":                        "the service called",
	} {
		if got := calleeTitle(method); got != want {
			t.Errorf("calleeTitle(%s): got %q, want %q", method, got, want)
		}
	}
}

// A resolver that cannot be reached fails the call with a message naming
// it; gRPC's transport error (addresses, "connection error") stays in the
// log, for a service relays the message to its callers.
func TestBoundCallsUnreachableResolver(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	var logs strings.Builder
	conn, err := dial.New([]string{addr}, insecure.NewCredentials(),
		boundCalls(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = auth.NewRemote(conn).Authenticate(t.Context(), "oz_canary_token")
	st := errs.ToStatus(err)
	if want := "the resolver is unavailable; retry"; st.Code() != codes.Unavailable || st.Message() != want {
		t.Errorf("got %v %q, want Unavailable %q", st.Code(), st.Message(), want)
	}
	if !strings.Contains(logs.String(), addr) {
		t.Errorf("log %q does not keep the transport error (naming %s)", logs.String(), addr)
	}
	if strings.Contains(logs.String(), "oz_canary_token") {
		t.Errorf("log %q holds the token", logs.String())
	}
}
