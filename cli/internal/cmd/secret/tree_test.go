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
