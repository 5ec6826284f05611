package client_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/reqmeta"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// failing answers fails times with code, then calls ok.
func failing[Req, Resp any](fails int32, code codes.Code, ok func() Resp) func(context.Context, Req) (Resp, error) {
	var n atomic.Int32
	return func(context.Context, Req) (Resp, error) {
		if n.Add(1) <= fails {
			var zero Resp
			return zero, status.Error(code, "the secretstore did not answer within 10s; retry")
		}
		return ok(), nil
	}
}

// TestRetryWrite: a write that got no answer is sent again with the same
// idempotency key, until it gets one; the next write gets a key of its
// own.
func TestRetryWrite(t *testing.T) {
	srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: failing[*secretsv1.CreateSecretRequest](2, codes.Unavailable,
		func() *secretsv1.CreateSecretResponse {
			return &secretsv1.CreateSecretResponse{Secret: &secretsv1.Secret{Name: "teams/acme/secrets/A"}}
		})}, nil, nil)
	conn, err := client.Dial(srv.Settings())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "A", Value: []byte("v")}
	if _, err := conn.Secrets.CreateSecret(context.Background(), req); err != nil {
		t.Fatalf("create after two Unavailable: %v, want it sent a third time and answered", err)
	}
	if _, err := conn.Secrets.CreateSecret(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	calls := srv.CallsTo("CreateSecret")
	if len(calls) != 4 {
		t.Fatalf("got %d calls, want 3 attempts of the first create and 1 of the second", len(calls))
	}
	var keys []string
	for _, c := range calls {
		k := c.MD.Get(reqmeta.IdempotencyKey)
		if len(k) != 1 || !reqmeta.ValidIdempotencyKey(k[0]) {
			t.Fatalf("call sent idempotency keys %q, want one valid key", k)
		}
		keys = append(keys, k[0])
	}
	if keys[0] != keys[1] || keys[1] != keys[2] {
		t.Errorf("the attempts of one write sent keys %q, want one key", keys[:3])
	}
	if keys[3] == keys[0] {
		t.Errorf("a second write sent the first one's key %q, want a fresh one", keys[3])
	}
}

// TestRetryRead: a read is sent again too, without a key.
func TestRetryRead(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: failing[*scopev1.GetCallerRequest](1, codes.DeadlineExceeded,
		func() *scopev1.GetCallerResponse { return &scopev1.GetCallerResponse{} })}, nil)
	conn, err := client.Dial(srv.Settings())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Directory.GetCaller(context.Background(), &scopev1.GetCallerRequest{}); err != nil {
		t.Fatalf("read after a DeadlineExceeded: %v, want it sent again and answered", err)
	}
	calls := srv.CallsTo("GetCaller")
	if len(calls) != 2 {
		t.Fatalf("got %d calls, want 2", len(calls))
	}
	for _, c := range calls {
		if k := c.MD.Get(reqmeta.IdempotencyKey); len(k) != 0 {
			t.Errorf("a read sent idempotency key %q, want none", k)
		}
	}
}

// TestRetryOnlyWithoutAnswer: an answer, even a refusal, is not sent
// again; and $OZ_RETRIES=0 sends nothing again.
func TestRetryOnlyWithoutAnswer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		code    codes.Code
		retries string
		want    int
	}{
		{"AlreadyExists", codes.AlreadyExists, "", 1},
		{"InvalidArgument", codes.InvalidArgument, "", 1},
		{"PermissionDenied", codes.PermissionDenied, "", 1},
		{"NoRetries", codes.Unavailable, "0", 1},
		{"OneRetry", codes.Unavailable, "1", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{DeleteSecretFunc: failing[*secretsv1.DeleteSecretRequest](100, tt.code,
				func() *secretsv1.DeleteSecretResponse { return nil })}, nil, nil)
			s := srv.Settings()
			s.Retries = tt.retries
			conn, err := client.Dial(s)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = conn.Secrets.DeleteSecret(context.Background(), &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/A"})
			if status.Code(err) != tt.code {
				t.Errorf("got %v, want %v", err, tt.code)
			}
			if n := len(srv.CallsTo("DeleteSecret")); n != tt.want {
				t.Errorf("got %d calls, want %d", n, tt.want)
			}
		})
	}
}

func TestRetriesSetting(t *testing.T) {
	for _, bad := range []string{"-1", "many", "11"} {
		s := config.Settings{Addr: "127.0.0.1:1", Token: ozfake.Token, Retries: bad}
		if _, err := client.Dial(s); err == nil || !strings.Contains(err.Error(), "OZ_RETRIES") {
			t.Errorf("OZ_RETRIES=%s: got %v, want an error naming OZ_RETRIES", bad, err)
		}
	}
}

func TestIsWrite(t *testing.T) {
	for method, want := range map[string]bool{
		"/oz.secrets.v1.SecretService/CreateSecret":      true,
		"/oz.secrets.v1.SecretService/DeleteSecret":      true,
		"/oz.scope.v1.DirectoryService/AcceptInvitation": true,
		"/oz.scope.v1.TokenService/RevokeToken":          true,
		"/oz.scope.v1.RunService/StartRun":               true,
		"/oz.secrets.v1.SecretService/ListSecrets":       false,
		"/oz.scope.v1.DirectoryService/GetCaller":        false,
		"/oz.scope.v1.RunService/ExplainRun":             false,
		"/oz.audit.v1.AuditService/VerifyChain":          false,
		"/oz.audit.v1.AuditService/ReviewSecrets":        false,
	} {
		if got := client.IsWrite(method); got != want {
			t.Errorf("IsWrite(%s): got %v, want %v", method, got, want)
		}
	}
}
