package runner_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ozsecrets/oz/cli/internal/runner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a Buffer safe for the relay goroutine and the test, which
// can wait for text to appear.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("got output %q, want it to hold %q", b.String(), s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shell(t *testing.T, script string) runner.Command {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	return runner.Command{Path: sh, Args: []string{"sh", "-c", script}, Env: []string{"PATH=" + os.Getenv("PATH")}}
}

func TestRunExitCode(t *testing.T) {
	tests := []struct {
		script string
		want   runner.Exit
	}{
		{"exit 0", runner.Exit{Code: 0}},
		{"exit 3", runner.Exit{Code: 3}},
		{"exit 255", runner.Exit{Code: 255}},
		{"kill -KILL $$", runner.Exit{Code: 128 + 9, Signal: syscall.SIGKILL}},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			c := shell(t, tt.script)
			c.Signals = make(chan os.Signal)
			got, err := runner.Run(c)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunRelaysIO(t *testing.T) {
	c := shell(t, `read line; echo "out:$line:$FOO"; echo err >&2`)
	c.Env = append(c.Env, "FOO=bar")
	c.Stdin = strings.NewReader("hello\n")
	var out, errOut syncBuffer
	c.Stdout, c.Stderr = &out, &errOut
	c.Signals = make(chan os.Signal)
	if _, err := runner.Run(c); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "out:hello:bar\n"; got != want {
		t.Errorf("got stdout %q, want %q", got, want)
	}
	if got, want := errOut.String(), "err\n"; got != want {
		t.Errorf("got stderr %q, want %q", got, want)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	tests := []struct {
		name   string
		script string
		sig    syscall.Signal
		want   runner.Exit
		output string
	}{
		{
			name:   "Trapped",
			script: `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`,
			sig:    syscall.SIGTERM, want: runner.Exit{Code: 7}, output: "got TERM",
		},
		{
			name:   "Killed",
			script: `echo ready; while :; do sleep 0.05; done`,
			sig:    syscall.SIGTERM, want: runner.Exit{Code: 143, Signal: syscall.SIGTERM},
		},
		{
			name:   "Hangup",
			script: `trap 'echo got HUP; exit 0' HUP; echo ready; while :; do sleep 0.05; done`,
			sig:    syscall.SIGHUP, want: runner.Exit{Code: 0}, output: "got HUP",
		},
		{
			name:   "InterruptReachesGroup",
			script: `trap 'echo child INT' INT; sh -c 'trap "echo grandchild INT; exit 0" INT; echo ready; while :; do sleep 0.05; done'; exit 5`,
			sig:    syscall.SIGINT, want: runner.Exit{Code: 5}, output: "grandchild INT",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := shell(t, tt.script)
			var out syncBuffer
			c.Stdout, c.Stderr = &out, &out
			sigs := make(chan os.Signal, 1)
			c.Signals = sigs
			var pid int
			started := make(chan struct{})
			c.Started = func(p int) { pid = p; close(started) }
			type result struct {
				exit runner.Exit
				err  error
			}
			done := make(chan result, 1)
			go func() {
				e, err := runner.Run(c)
				done <- result{e, err}
			}()
			<-started
			out.waitFor(t, "ready")
			if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
				t.Errorf("got process group %d (%v), want the child's own (%d)", pgid, err, pid)
			}
			sigs <- tt.sig
			select {
			case r := <-done:
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.exit != tt.want {
					t.Errorf("got %+v, want %+v", r.exit, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("child did not end after the signal")
			}
			if !strings.Contains(out.String(), tt.output) {
				t.Errorf("got output %q, want %q", out.String(), tt.output)
			}
		})
	}
}

func TestRunStartError(t *testing.T) {
	_, err := runner.Run(runner.Command{Path: "/nonexistent/prog", Args: []string{"prog"}, Signals: make(chan os.Signal)})
	if err == nil || !strings.Contains(err.Error(), "start prog") {
		t.Errorf("got %v, want a start error", err)
	}
}

// A process left behind holding the output does not keep Run waiting.
func TestRunDoesNotWaitForever(t *testing.T) {
	c := shell(t, `sleep 30 & echo started`)
	var out syncBuffer
	c.Stdout = &out
	c.Signals = make(chan os.Signal)
	c.WaitDelay = 100 * time.Millisecond
	var pid int
	c.Started = func(p int) { pid = p }
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	start := time.Now()
	got, err := runner.Run(c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != 0 {
		t.Errorf("got %+v, want exit 0", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v, want it to stop waiting", d)
	}
}
