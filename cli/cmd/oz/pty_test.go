//go:build linux

package main_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// echoOff reports whether the terminal behind the pty master no longer
// echoes input. On Linux, TCGETS on a master reads its slave's settings.
func echoOff(ptmx *os.File) bool {
	tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
	return err == nil && tio.Lflag&unix.ECHO == 0
}

// ptyRun starts oz on a new pseudo-terminal and returns its master side,
// the output so far, and a function that waits for the exit code.
func ptyRun(t *testing.T, srv *ozfake.Server, args ...string) (*os.File, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := ozCommand(t, ctx, srv, args...)
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("start on pty: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	out := &syncBuffer{}
	done := copyOutput(ptmx, out)
	wait := func() int {
		t.Helper()
		code := exitCode(t, cmd.Wait())
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return code
	}
	return ptmx, out, wait
}

func TestHiddenPrompt(t *testing.T) {
	const typed = "typed-S3cret-value"
	srv := ozfake.Start(t, &ozfake.Secrets{
		CreateSecretFunc: func(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
			return &secretsv1.CreateSecretResponse{Secret: &secretsv1.Secret{SecretId: r.GetSecretId()}}, nil
		},
	}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice")}, nil)
	ptmx, out, wait := ptyRun(t, srv, "secret", "create", "--personal", "API_KEY")

	waitFor(t, "the prompt", func() bool { return strings.Contains(out.String(), "Value for API_KEY: ") })
	waitFor(t, "echo to be turned off", func() bool { return echoOff(ptmx) })
	if _, err := ptmx.Write([]byte(typed + "\r")); err != nil {
		t.Fatal(err)
	}
	if code := wait(); code != 0 {
		t.Fatalf("got exit code %d, want 0; output %q", code, out.String())
	}
	if strings.Contains(out.String(), typed) || strings.Contains(out.String(), "S3cret") {
		t.Errorf("the value was echoed: %q", out.String())
	}
	calls := srv.CallsTo("CreateSecret")
	if len(calls) != 1 {
		t.Fatalf("got %d CreateSecret calls, want 1", len(calls))
	}
	req := calls[0].Req.(*secretsv1.CreateSecretRequest)
	if got := srv.Sealer.MustOpen(t, req.GetSealedValue(), "users/alice", "API_KEY"); got != typed || len(req.GetValue()) != 0 {
		t.Errorf("got sealed value %q (and %d plain bytes), want %q sealed only", got, len(req.GetValue()), typed)
	}
	if got := req.GetParent(); got != "users/me" {
		t.Errorf("got parent %q, want users/me", got)
	}
	if !strings.Contains(out.String(), "Created personal secret API_KEY") {
		t.Errorf("got output %q, want a confirmation on the terminal", out.String())
	}
}

func TestUpdatePromptHidden(t *testing.T) {
	const typed = "rotated-V4lue"
	srv := ozfake.Start(t, &ozfake.Secrets{
		UpdateSecretFunc: func(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
			return &secretsv1.UpdateSecretResponse{Secret: &secretsv1.Secret{Name: r.GetName()}}, nil
		},
	}, nil, nil)
	ptmx, out, wait := ptyRun(t, srv, "--use-team", "acme", "secret", "update", "API_KEY", "--team", "--value")
	waitFor(t, "the prompt", func() bool { return strings.Contains(out.String(), "Value for API_KEY: ") })
	waitFor(t, "echo to be turned off", func() bool { return echoOff(ptmx) })
	if _, err := ptmx.Write([]byte(typed + "\r")); err != nil {
		t.Fatal(err)
	}
	if code := wait(); code != 0 {
		t.Fatalf("got exit code %d, want 0; output %q", code, out.String())
	}
	if strings.Contains(out.String(), typed) {
		t.Errorf("the value was echoed: %q", out.String())
	}
	calls := srv.CallsTo("UpdateSecret")
	if len(calls) != 1 {
		t.Fatalf("got %d UpdateSecret calls, want 1", len(calls))
	}
	req := calls[0].Req.(*secretsv1.UpdateSecretRequest)
	if got := srv.Sealer.MustOpen(t, req.GetSealedValue(), "teams/acme", "API_KEY"); got != typed || len(req.GetValue()) != 0 || req.GetName() != "teams/acme/secrets/API_KEY" {
		t.Errorf("got name %q sealed value %q (and %d plain bytes), want teams/acme/secrets/API_KEY %q sealed only", req.GetName(), got, len(req.GetValue()), typed)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	tests := []struct {
		answer      string
		wantCode    int
		wantDeleted bool
	}{
		{"y", 0, true},
		{"yes", 0, true},
		{"n", exitcode.Error, false},
		{"", exitcode.Error, false},
	}
	for _, tt := range tests {
		t.Run("answer"+tt.answer, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{
				DeleteSecretFunc: func(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
					return &secretsv1.DeleteSecretResponse{}, nil
				},
			}, nil, nil)
			ptmx, out, wait := ptyRun(t, srv, "--use-team", "acme", "secret", "delete", "--team", "API_KEY")
			const prompt = "Delete team secret API_KEY (team acme)? [y/N] "
			waitFor(t, "the question", func() bool { return strings.Contains(out.String(), prompt) })
			if _, err := ptmx.Write([]byte(tt.answer + "\r")); err != nil {
				t.Fatal(err)
			}
			if code := wait(); code != tt.wantCode {
				t.Fatalf("got exit code %d, want %d; output %q", code, tt.wantCode, out.String())
			}
			calls := srv.CallsTo("DeleteSecret")
			if got := len(calls) == 1; got != tt.wantDeleted {
				t.Fatalf("got deleted %v (%d calls), want %v", got, len(calls), tt.wantDeleted)
			}
			if tt.wantDeleted {
				if got := calls[0].Req.(*secretsv1.DeleteSecretRequest).GetName(); got != "teams/acme/secrets/API_KEY" {
					t.Errorf("got name %q, want teams/acme/secrets/API_KEY", got)
				}
			} else if !strings.Contains(out.String(), "not deleted") {
				t.Errorf("got output %q, want it to say nothing was deleted", out.String())
			}
		})
	}
}
