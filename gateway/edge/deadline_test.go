package edge_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/gateway/edge"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// A backend that does not answer fails the call with Unavailable naming it
// once Config.BackendTimeout has passed, over native gRPC and REST alike,
// even when the caller would wait longer (or forever: no deadline).
func TestBackendTimeout(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.BackendTimeout = 300 * time.Millisecond })
	e.store.failWith("/oz.secrets.v1.SecretService/DeleteSecret", errHang)
	e.resolver.failWith("/oz.scope.v1.DirectoryService/GetCaller", errHang)
	conn := e.gw.Dial(t)

	t.Run("GRPC", func(t *testing.T) {
		// The caller sets no deadline of its own.
		_, err := secretsv1.NewSecretServiceClient(conn).DeleteSecret(outgoing(t.Context()), &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/X"})
		st := status.Convert(err)
		if want := "the secret store did not answer within 300ms; retry"; st.Code() != codes.Unavailable || st.Message() != want {
			t.Errorf("got %v %q, want Unavailable %q", st.Code(), st.Message(), want)
		}
		_, err = scopev1.NewDirectoryServiceClient(conn).GetCaller(outgoing(t.Context()), &scopev1.GetCallerRequest{})
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.HasPrefix(st.Message(), "the resolver did not answer within") {
			t.Errorf("got %v %q, want Unavailable naming the resolver", st.Code(), st.Message())
		}
	})
	t.Run("REST", func(t *testing.T) {
		resp, body := e.do(t, http.MethodDelete, "/v1/teams/acme/secrets/X", "", authHeader())
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "the secret store did not answer within 300ms; retry") {
			t.Errorf("got %d %s, want 503 naming the secret store", resp.StatusCode, body)
		}
	})
	t.Run("CallerDeadlineFirst", func(t *testing.T) {
		// A caller that gives up sooner gets its own DeadlineExceeded:
		// the backend was not given the gateway's time.
		ctx, cancel := context.WithTimeout(outgoing(t.Context()), 50*time.Millisecond)
		defer cancel()
		_, err := secretsv1.NewSecretServiceClient(conn).DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/X"})
		if got := status.Code(err); got != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", got)
		}
	})
}
