package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// ozBin is the oz binary built for these tests.
var ozBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oz-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ozBin = filepath.Join(dir, "oz")
	build := exec.Command("go", "build", "-o", ozBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build oz:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ozCommand returns an oz command pointed at srv, with its own config
// directory so that no real config is read.
func ozCommand(t *testing.T, ctx context.Context, srv *ozfake.Server, args ...string) *exec.Cmd {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, ozBin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"OZ_CONFIG=" + filepath.Join(home, "config.json"),
		"TERM=dumb",
	}, srv.Env()...)
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run oz: %v", err)
	return -1
}

func TestDeleteWithoutTerminalRefuses(t *testing.T) {
	srv := ozfake.Start(t, &ozfake.Secrets{
		DeleteSecretFunc: func(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
			return &secretsv1.DeleteSecretResponse{}, nil
		},
	}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ozCommand(t, ctx, srv, "secret", "delete", "--team", "API_KEY")
	cmd.Stdin = strings.NewReader("y\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := exitCode(t, cmd.Run())
	if code != exitcode.Usage {
		t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
	}
	if !strings.HasPrefix(stderr.String(), "oz: ") || !strings.Contains(stderr.String(), "--force") {
		t.Errorf("got stderr %q, want an oz: line mentioning --force", stderr.String())
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("got %d calls, want none", n)
	}
}

func TestTokenCreatePrintsOnlyToken(t *testing.T) {
	const bearer = "oz_AbCdEf0123456789"
	srv := ozfake.Start(t, nil, nil, &ozfake.Tokens{
		CreateTokenFunc: func(_ context.Context, r *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
			return &scopev1.CreateTokenResponse{Token: &scopev1.Token{TokenId: "t9", Principal: r.GetPrincipal()}, BearerToken: bearer}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ozCommand(t, ctx, srv, "admin", "token", "create", "--user", "alice", "--expires", "12h")
	out, err := cmd.Output()
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("got exit code %d, want 0", code)
	}
	if got, want := string(out), bearer+"\n"; got != want {
		t.Errorf("got stdout %q, want %q", got, want)
	}
	req := srv.CallsTo("CreateToken")[0].Req.(*scopev1.CreateTokenRequest)
	if req.GetPrincipal() != "users/alice" || req.GetTtl().AsDuration() != 12*time.Hour {
		t.Errorf("got principal %q ttl %v, want users/alice 12h", req.GetPrincipal(), req.GetTtl().AsDuration())
	}
}

// syncBuffer is a buffer that one goroutine writes and another reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// copyOutput copies r into buf until r fails (a pty master fails with EIO
// once the process's side is closed); done is closed then.
func copyOutput(r io.Reader, buf *syncBuffer) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(buf, r)
	}()
	return done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oz exec is part of the real command tree, and a child's exit status is
// oz's, with no line of oz's own about it.
func TestExecPassesExitCode(t *testing.T) {
	const value = "sk_live_0123456789abcdef"
	srv := ozfake.StartExec(t, &ozfake.ExecRunService{ResolveRunFunc: ozfake.ExecResolved([]ozfake.ExecVar{{Name: "API_KEY", Value: value}})})
	for _, code := range []int{0, 3, 42} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// No "--": the child's -c must stay the child's.
			cmd := ozCommand(t, ctx, srv, "exec", "--ticket-env", "T",
				"sh", "-c", fmt.Sprintf(`echo "key $API_KEY"; echo child-err >&2; exit %d`, code))
			cmd.Env = append(cmd.Env, "T=ozt_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if got := exitCode(t, cmd.Run()); got != code {
				t.Errorf("got exit code %d, want %d; stderr %q", got, code, stderr.String())
			}
			if got, want := stdout.String(), "key ***\n"; got != want {
				t.Errorf("got stdout %q, want %q", got, want)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if lines[len(lines)-1] != "child-err" {
				t.Errorf("got stderr %q, want the child's line last", stderr.String())
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "oz: ") && !strings.HasPrefix(l, "oz: run ") && !strings.HasPrefix(l, "oz: injected ") {
					t.Errorf("got stderr line %q, want only the run's report from oz", l)
				}
			}
			if strings.Contains(stdout.String()+stderr.String(), value) {
				t.Error("the value was printed")
			}
		})
	}
}
