package secret

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

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

// wantNoPlaintext checks that value appears in no request srv received,
// nor in its metadata: the CLI sends values sealed only.
func wantNoPlaintext(t *testing.T, srv *ozfake.Server, value string) {
	t.Helper()
	if len(value) < 3 {
		t.Fatalf("value %q is too short to look for", value)
	}
	calls := srv.Calls()
	if len(calls) == 0 {
		t.Fatal("no calls recorded")
	}
	for _, c := range calls {
		raw, err := proto.Marshal(c.Req)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(value)) {
			t.Errorf("%s: the request carries the value in clear: %v", c.Method, c.Req)
		}
		for k, vs := range c.MD {
			for _, v := range vs {
				if bytes.Contains([]byte(v), []byte(value)) {
					t.Errorf("%s: metadata %s carries the value", c.Method, k)
				}
			}
		}
	}
}
