package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// TestExecInjectsAndMasks is issue 4 end to end: a real runner token, real
// services, `oz exec` starting real child processes.
func TestExecInjectsAndMasks(t *testing.T) {
	sys := startSystem(t)
	rt := newRunTeam(t, sys)
	// Each run is started by the scheduler, with ops-tools, and redeemed
	// by the runner; extraEnv and stdin go to oz exec.
	flags := []string{"exec", "--ticket-env", "OZ_TICKET", "--"}
	ticketEnv := func(extra ...string) []string {
		return append([]string{"OZ_TICKET=" + startRun(t, sys, rt.cron, "--environment", "ops-tools")}, extra...)
	}
	runExec := func(stdin string, extraEnv []string, args ...string) harness.CLIResult {
		t.Helper()
		r, err := sys.OZ(rt.runnerA, []byte(stdin), ticketEnv(extraEnv...), args...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// A child printing its environment, and the value's encodings (hex
	// too, in upper case), shows ***.
	r := runExec("", nil, append(flags, "sh", "-c",
		`env; printf '%s' "$DEPLOY_TOKEN" | base64; echo; printf 'json:"%s"\n' "$PAGERDUTY_API_KEY"; printf '%s' "$DEPLOY_TOKEN" | od -An -tx1 | tr -d ' \n' | tr a-f A-F; echo`)...)
	if r.Code != 0 {
		t.Fatalf("oz exec env: exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "DEPLOY_TOKEN=***") || !strings.Contains(r.Stdout, "PAGERDUTY_API_KEY=***") {
		t.Errorf("the child's env output does not show the secrets masked:\n%s", r.Stdout)
	}
	for _, c := range runCanaries {
		for _, enc := range []string{c, base64.StdEncoding.EncodeToString([]byte(c)), url.QueryEscape(c), hex.EncodeToString([]byte(c))} {
			if strings.Contains(strings.ToLower(r.Stdout), strings.ToLower(enc)) || strings.Contains(r.Stderr, enc) {
				t.Errorf("oz exec output holds a value or its encoding %q", enc)
			}
		}
	}

	// An inherited variable of the same name loses to the secret, and stderr
	// names it (name only).
	res := runExec("", []string{"DEPLOY_TOKEN=inherited-value"}, append(flags, "sh", "-c",
		`test "$DEPLOY_TOKEN" != inherited-value && echo secret-won`)...)
	if !strings.Contains(res.Stdout, "secret-won") || !strings.Contains(res.Stderr, "DEPLOY_TOKEN") {
		t.Errorf("inherited DEPLOY_TOKEN: stdout %q stderr %q; want the secret to win and stderr to say so", res.Stdout, res.Stderr)
	}

	// Exit codes and standard input pass through.
	if r := runExec("", nil, append(flags, "sh", "-c", "exit 3")...); r.Code != 3 {
		t.Errorf("child exit 3: oz exited %d (%s)", r.Code, r.Stderr)
	}
	if r := runExec("hello from stdin", nil, append(flags, "cat")...); r.Stdout != "hello from stdin" {
		t.Errorf("stdin through cat: %q", r.Stdout)
	}

	// Neither oz's nor the child's command line holds a value.
	dir := t.TempDir()
	script := `cat /proc/$PPID/cmdline > ` + filepath.Join(dir, "oz.cmdline") + `; cat /proc/$$/cmdline > ` + filepath.Join(dir, "child.cmdline")
	if r := runExec("", nil, append(flags, "sh", "-c", script)...); r.Code != 0 {
		t.Fatalf("cmdline child: exit %d: %s", r.Code, r.Stderr)
	}
	for _, f := range []string{"oz.cmdline", "child.cmdline"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Fatalf("read %s: %v (%d bytes)", f, err, len(b))
		}
		for _, c := range runCanaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds a value", f)
			}
		}
	}

	// Signals are forwarded to the child, and oz exits with the child's code.
	code, out := execWithSignal(t, sys, rt.runnerA, ticketEnv(), syscall.SIGTERM,
		append(flags, "sh", "-c", `trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done`)...)
	if code != 42 || !strings.Contains(out, "got-term") {
		t.Errorf("SIGTERM to oz exec: exit %d, output %q; want 42 and the child's trap to run", code, out)
	}
	code, _ = execWithSignal(t, sys, rt.runnerA, ticketEnv(), syscall.SIGINT,
		append(flags, "sh", "-c", `echo ready; exec sleep 30`)...)
	if code != 128+int(syscall.SIGINT) {
		t.Errorf("SIGINT to oz exec with a child that dies of it: exit %d, want %d", code, 128+int(syscall.SIGINT))
	}

	// `oz mask` filters any stream through the same masker.
	res, err := sys.OZ("", []byte("transcript: "+canaryDeploy+" end\n"), []string{"SOME_VALUE=" + canaryDeploy}, "mask", "--from-env", "SOME_VALUE")
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 0 || res.Stdout != "transcript: *** end\n" {
		t.Errorf("oz mask: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}

	for _, c := range runCanaries {
		if strings.Contains(sys.Output(), c) {
			t.Errorf("service logs hold a value")
		}
	}
	scanDataDir(t, sys, runCanaries)
}

// execWithSignal starts oz with args as a runner, waits for the child to
// print "ready", sends sig to oz (not to the child) and returns oz's exit
// code and output.
func execWithSignal(t *testing.T, sys *harness.System, token string, env []string, sig syscall.Signal, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(sys.BinDir, "oz"), args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"OZ_ADDR=" + sys.Addr, "OZ_CA_FILE=" + sys.CAFile, "OZ_TOKEN=" + token,
	}, env...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child never became ready: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("oz exec did not exit after %v: %s", sig, out.String())
	}
	return 0, ""
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutines of
// exec.Cmd and a reader polling it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
