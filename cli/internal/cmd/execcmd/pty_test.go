//go:build linux

package execcmd_test

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyStart starts oz on a new pseudo-terminal (its controlling terminal,
// oz in the foreground) and returns the master side, the output so far
// and a function that waits for the exit code.
func ptyStart(t *testing.T, args ...string) (*os.File, *syncBuffer, func() int) {
	t.Helper()
	srv := startDefault(t)
	cmd := ozCommand(t, srv, args...)
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("start on pty: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	out := &syncBuffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(out, ptmx) // ends with EIO once oz has exited
	}()
	return ptmx, out, func() int {
		t.Helper()
		code := exitCode(t, cmd.Wait())
		ptmx.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return code
	}
}

// The child can read the terminal: its process group is the terminal's
// foreground group while it runs.
func TestExecChildReadsTerminal(t *testing.T) {
	ptmx, out, wait := ptyStart(t, execArgs("sh", "-c", `echo ready; read x; echo "got:$x:$API_KEY"`)...)
	waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
	if _, err := ptmx.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	if code := wait(); code != 0 {
		t.Fatalf("got exit code %d, want 0; output %q", code, out.String())
	}
	if !strings.Contains(out.String(), "got:hello:***") {
		t.Errorf("got output %q, want it to hold %q", out.String(), "got:hello:***")
	}
	wantNoLeak(t, "output", out.String())
}

// Ctrl-C on the terminal reaches the child.
func TestExecTerminalInterrupt(t *testing.T) {
	ptmx, out, wait := ptyStart(t, execArgs("sh", "-c", `trap 'echo got INT; exit 4' INT; echo ready; while :; do sleep 0.05; done`)...)
	waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
	if _, err := ptmx.Write([]byte{3}); err != nil { // ^C
		t.Fatal(err)
	}
	if code := wait(); code != 4 {
		t.Errorf("got exit code %d, want 4; output %q", code, out.String())
	}
	if !strings.Contains(out.String(), "got INT") {
		t.Errorf("got output %q, want it to hold %q", out.String(), "got INT")
	}
}
