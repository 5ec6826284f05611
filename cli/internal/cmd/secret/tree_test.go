package secret_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// TestSealCommand runs `oz secret seal` through the command tree: its
// flags, and the line it prints.
func TestSealCommand(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme", "beta")}, nil)
	r := ozrun.Run(t, srv, ozrun.Options{Stdin: "hunter2-value\n"}, "secret", "seal", "DB_PASSWORD", "--team", "--use-team", "beta")
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	var sv secretsv1.SealedValue
	if err := protojson.Unmarshal([]byte(r.Stdout), &sv); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if got := srv.Sealer.MustOpen(t, &sv, "teams/beta", "DB_PASSWORD"); got != "hunter2-value" {
		t.Fatalf("opened: got %q", got)
	}

	for _, args := range [][]string{
		{"secret", "seal", "DB_PASSWORD"},
		{"secret", "seal", "--team", "--personal", "DB_PASSWORD"},
		{"secret", "seal", "--personal"},
	} {
		r := ozrun.Run(t, srv, ozrun.Options{Stdin: "v"}, args...)
		if r.Code != exitcode.Usage || !strings.HasPrefix(r.Stderr, "oz: ") {
			t.Errorf("%v: got exit %d, stderr %q; want a usage error", args, r.Code, r.Stderr)
		}
	}
}

// TestBindingFlags runs the binding flags through the command tree:
// --bind-host repeatable and comma-separated, --bind-query=false, and
// usage errors (exit 2, "oz: " and the flag) before anything is sent.
func TestBindingFlags(t *testing.T) {
	sealer := ozfake.NewSealer(t)
	store := ozfake.NewSecretStore(sealer, "alice")
	srv := ozfake.StartServices(t, ozfake.Services{
		Secrets: store.Fake(), Sealer: sealer,
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
	})
	const name = "teams/acme/secrets/API_KEY"
	wantHosts := func(step string, query bool, hosts ...string) {
		t.Helper()
		b := store.Secret(name).GetBinding()
		if strings.Join(b.GetHosts(), " ") != strings.Join(hosts, " ") || b.GetAllowQuery() != query {
			t.Errorf("after %s: got binding %v, want hosts %q, allow_query %v", step, b, hosts, query)
		}
	}
	ok := func(stdin string, args ...string) {
		t.Helper()
		if r := ozrun.Run(t, srv, ozrun.Options{Stdin: stdin}, args...); r.Code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.Code, r.Stderr)
		}
	}
	ok("canary-tree-value-1", "secret", "create", "--team", "--bind-host", "a.example.com,*.b.example.com", "--bind-host", "c.example.com", "--bind-query", "API_KEY")
	wantHosts("create", true, "a.example.com", "*.b.example.com", "c.example.com")
	ok("", "secret", "update", "--team", "--unbind-host", "a.example.com", "--bind-query=false", "API_KEY")
	wantHosts("update", false, "*.b.example.com", "c.example.com")

	calls := len(srv.Calls())
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"secret", "create", "--team", "--bind-query", "K2"}, []string{"--bind-query", "--bind-host"}},
		{[]string{"secret", "create", "--team", "--bind-host", "api.example.com:8443", "K2"}, []string{"--bind-host", "port"}},
		{[]string{"secret", "update", "--team", "--no-bind", "--bind-host", "a.example.com", "API_KEY"}, []string{"--no-bind", "--bind-host"}},
		{[]string{"secret", "update", "--team", "--no-bind", "--bind-body=false", "API_KEY"}, []string{"--no-bind", "--bind-body"}},
		{[]string{"secret", "update", "--team", "API_KEY"}, []string{"nothing to update", "--bind-host", "--no-bind"}},
	} {
		r := ozrun.Run(t, srv, ozrun.Options{Stdin: "canary-tree-value-2"}, tt.args...)
		if r.Code != exitcode.Usage || !strings.HasPrefix(r.Stderr, "oz: ") {
			t.Errorf("%v: got exit %d, stderr %q; want a usage error", tt.args, r.Code, r.Stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: got stderr %q, want it to name %s", tt.args, r.Stderr, w)
			}
		}
	}
	for _, c := range srv.Calls()[calls:] {
		t.Errorf("a refused command called %s", c.Method)
	}
	wantHosts("the refused commands", false, "*.b.example.com", "c.example.com")
}
