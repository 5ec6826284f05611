package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func sealingKeyOpts(deps Deps, format cmdutil.Format) *SealingKeyOptions {
	return &SealingKeyOptions{Deps: deps, Now: func() time.Time { return time.Now().UTC() }, Output: format}
}

func TestSealingKeyList(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{})
	deps, out, _ := testDeps(srv)
	if err := runSealingKeyList(context.Background(), sealingKeyOpts(deps, cmdutil.FormatTable)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "KEY ID") ||
		!strings.Contains(lines[1], "mlkem768x25519-1") || !strings.Contains(lines[1], "ML-KEM-768+X25519") || !strings.Contains(lines[1], "current") ||
		!strings.Contains(lines[2], "x25519-1") || !strings.Contains(lines[2], "X25519") {
		t.Fatalf("table: got\n%s", out)
	}

	deps, out, _ = testDeps(srv)
	if err := runSealingKeyList(context.Background(), sealingKeyOpts(deps, cmdutil.FormatJSON)); err != nil {
		t.Fatal(err)
	}
	var items []sealingKeyItem
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	want := srv.Sealer.Keys(t)
	if len(items) != 2 {
		t.Fatalf("json: got %d keys, want 2", len(items))
	}
	for i, it := range items {
		if it.KeyID != want[i].GetKeyId() || it.KEMID != want[i].GetKemId() || it.KDFID != 1 || it.AEADID != 2 || !it.Current ||
			it.CreatedAt == "" || it.ExpiresAt != "" || base64.StdEncoding.EncodeToString(it.PublicKey) != base64.StdEncoding.EncodeToString(want[i].GetPublicKey()) {
			t.Errorf("json[%d]: got %+v, want %v", i, it, want[i])
		}
	}
	if !strings.Contains(out.String(), `"public_key": "`+base64.StdEncoding.EncodeToString(want[1].GetPublicKey())+`"`) {
		t.Errorf("json: the public key is not standard base64: %s", out)
	}
}

func TestSealingKeyRotate(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{})
	for _, tty := range []bool{false, true} {
		deps, out, _ := testDeps(srv)
		deps.IO.StdoutTTY = tty
		if err := runSealingKeyRotate(context.Background(), sealingKeyOpts(deps, cmdutil.FormatTable)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), "Rotated the sealing keys"); got != tty {
			t.Errorf("tty=%v: got a message for people %v:\n%s", tty, got, out)
		}
		if !strings.Contains(out.String(), "previous, opens until") {
			t.Errorf("tty=%v: the previous keys are not shown with their expiry:\n%s", tty, out)
		}
	}
	keys := srv.Sealer.Keys(t)
	if len(keys) != 6 || keys[0].GetKeyId() != "mlkem768x25519-3" || !keys[0].GetCurrent() || keys[5].GetCurrent() {
		t.Fatalf("after two rotations: got %v", keys)
	}
	if n := len(srv.CallsTo("RotateSealingKeys")); n != 2 {
		t.Errorf("got %d RotateSealingKeys calls, want 2", n)
	}
}

func TestSealingKeyRotateDenied(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{SealingKeys: &ozfake.SealingKeys{
		RotateSealingKeysFunc: func(context.Context, *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error) {
			return nil, status.Error(codes.PermissionDenied, "only system admins may rotate sealing keys")
		},
	}})
	deps, out, _ := testDeps(srv)
	err := runSealingKeyRotate(context.Background(), sealingKeyOpts(deps, cmdutil.FormatTable))
	lines, code := exitcode.Describe(err)
	if code != exitcode.Denied || !strings.Contains(strings.Join(lines, " "), "system admins") {
		t.Fatalf("got %q (exit %d), want the server's refusal, exit %d", lines, code, exitcode.Denied)
	}
	if out.Len() != 0 {
		t.Errorf("got output %q, want none", out)
	}
}
