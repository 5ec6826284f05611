package secret

import (
	"context"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// connectTo dials srv over TLS, trusting its CA file, as the CLI does.
func connectTo(srv *ozfake.Server) func(context.Context) (*client.Conn, error) {
	return func(context.Context) (*client.Conn, error) { return client.Dial(srv.Settings()) }
}

// mustRequest returns the request of the only call to method.
func mustRequest[T any](t *testing.T, srv *ozfake.Server, method string) T {
	t.Helper()
	calls := srv.CallsTo(method)
	if len(calls) != 1 {
		t.Fatalf("got %d calls to %s, want 1", len(calls), method)
	}
	req, ok := calls[0].Req.(T)
	if !ok {
		t.Fatalf("got request %T, want %T", calls[0].Req, *new(T))
	}
	return req
}

func wantExitCode(t *testing.T, err error, want int) {
	t.Helper()
	lines, got := exitcode.Describe(err)
	if got != want {
		t.Errorf("got exit code %d (%q), want %d", got, lines, want)
	}
}

func wantNoCalls(t *testing.T, srv *ozfake.Server) {
	t.Helper()
	if calls := srv.Calls(); len(calls) != 0 {
		t.Errorf("got %d calls (first %s), want none", len(calls), calls[0].Method)
	}
}
