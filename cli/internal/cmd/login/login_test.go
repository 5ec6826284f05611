package login_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/login"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

const goodToken = "oz_login_token_0123456789abcdef"

// startServer serves a directory that knows alice by goodToken only.
func startServer(t *testing.T) *ozfake.Server {
	t.Helper()
	alice := ozfake.Caller("alice", "acme")
	return ozfake.Start(t, nil, &ozfake.Directory{
		GetCallerFunc: func(ctx context.Context, r *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+goodToken {
				return nil, status.Error(codes.Unauthenticated, "invalid, expired or revoked token")
			}
			return alice(ctx, r)
		},
	}, nil)
}

func TestLoginPiped(t *testing.T) {
	srv := startServer(t)
	path := filepath.Join(t.TempDir(), "oz", "config.json")
	r := ozrun.Run(t, nil, ozrun.Options{Env: map[string]string{config.EnvConfig: path}, Stdin: goodToken + "\nignored\n"},
		"login", "--addr", srv.Addr, "--ca-file", srv.CAFile)
	if r.Code != exitcode.OK {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "as users/alice (user)") {
		t.Errorf("stderr %q: want who is logged in", r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, goodToken) {
		t.Errorf("the token was printed: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("config file mode %o, want 600", mode)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.File{Addr: srv.Addr, CAFile: srv.CAFile, Token: goodToken}); f != want {
		t.Errorf("stored %+v, want %+v", f, want)
	}

	// The stored settings are what the next command uses.
	r = ozrun.Run(t, nil, ozrun.Options{Env: map[string]string{config.EnvConfig: path}}, "whoami")
	if r.Code != exitcode.OK || !strings.Contains(r.Stdout, "alice") {
		t.Errorf("whoami after login: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

func TestLoginPrompt(t *testing.T) {
	srv := startServer(t)
	path := filepath.Join(t.TempDir(), "config.json")
	// An existing file keeps its other keys; a token_file gives way.
	if err := config.Save(path, config.File{Team: "acme", TokenFile: "/old/token"}); err != nil {
		t.Fatal(err)
	}
	// ozrun answers no password prompts: Run directly, as the command does.
	env := map[string]string{config.EnvAddr: srv.Addr, config.EnvCAFile: srv.CAFile}
	ios, _, _, errOut := iostreams.Test()
	ios.StdinTTY, ios.StderrTTY = true, true
	p := &iostreams.ScriptedPrompter{Passwords: [][]byte{[]byte(goodToken)}}
	err := login.Run(context.Background(), &login.Options{
		IO: ios, Prompter: p, Getenv: func(k string) string { return env[k] }, Dial: client.Dial, Path: path,
	})
	if err != nil {
		t.Fatalf("%v (stderr %q)", err, errOut)
	}
	if len(p.Prompts) != 1 || p.Prompts[0] != "Token: " {
		t.Errorf("got prompts %q, want one hidden Token: prompt", p.Prompts)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// The address came from the environment: not stored.
	if want := (config.File{Team: "acme", Token: goodToken}); f != want {
		t.Errorf("stored %+v, want %+v", f, want)
	}
}

func TestLoginRefused(t *testing.T) {
	srv := startServer(t)
	for _, tt := range []struct {
		name, stdin string
		wantCode    int
		wantMsg     string
	}{
		{"BadToken", "oz_wrong_token_42\n", exitcode.Denied, "invalid, expired or revoked token"},
		{"Empty", "\n", exitcode.Usage, "no token given"},
		{"TwoWords", "oz_a oz_b\n", exitcode.Usage, "not a token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			r := ozrun.Run(t, nil, ozrun.Options{Env: map[string]string{config.EnvConfig: path}, Stdin: tt.stdin},
				"login", "--addr", srv.Addr, "--ca-file", srv.CAFile)
			if r.Code != tt.wantCode || !strings.Contains(r.Stderr, tt.wantMsg) {
				t.Errorf("got exit %d, stderr %q; want %d with %q", r.Code, r.Stderr, tt.wantCode, tt.wantMsg)
			}
			if tok := strings.TrimSpace(tt.stdin); tok != "" && strings.Contains(r.Stderr, tok) {
				t.Errorf("stderr %q repeats the token", r.Stderr)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("config file written after a refused login (stat: %v)", err)
			}
		})
	}
}
