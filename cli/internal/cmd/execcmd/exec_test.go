package execcmd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/mask"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// ozBin is oz with the exec and mask commands, built for these tests.
var ozBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oz-exec-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ozBin = filepath.Join(dir, "oz")
	build := exec.Command("go", "build", "-o", ozBin, "./testdata/ozexec")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build oz:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The secrets of the fake run.
const (
	apiKey     = "sk_live_4f9a8b7c6d5e3f2a"
	password   = "p@ss w0rd/+<&>"
	shadow     = "shadow-secret-value"
	pin        = "123"
	startToken = "oz_start_token_abcdef0123456789"
)

var pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"

var runVars = []ozfake.ExecVar{
	{Name: "API_KEY", Value: apiKey, Version: 3},
	{Name: "DB_PASSWORD", Value: password, Scope: scopev1.SecretScope_SECRET_SCOPE_PERSONAL},
	{Name: "PEM_KEY", Value: pem},
	{Name: "SHADOWED", Value: shadow},
	{Name: "PIN", Value: pin},
}

// longValues are the values oz must mask, and the runner's credentials.
var longValues = []string{apiKey, password, shadow, pem, ozfake.Token, startToken}

func startFake(t *testing.T, resolve func(context.Context, *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error)) *ozfake.Server {
	t.Helper()
	return ozfake.StartExec(t, &ozfake.ExecRunService{ResolveRunFunc: resolve})
}

func startDefault(t *testing.T) *ozfake.Server {
	t.Helper()
	return startFake(t, ozfake.ExecResolved(runVars,
		&scopev1.UnresolvedReference{SecretName: "DEPLOY_KEY", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED, Detail: "restricted to agent identities: deployer"}))
}

// ozCommand returns oz pointed at srv with its own config directory, and
// with SHADOWED, KEEP and START_TOKEN in its environment.
func ozCommand(t *testing.T, srv *ozfake.Server, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, ozBin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"OZ_CONFIG=" + filepath.Join(home, "config.json"),
		"SHADOWED=inherited-value",
		"KEEP=kept",
		"START_TOKEN=" + startToken,
	}, srv.Env()...)
	return cmd
}

func execArgs(child ...string) []string {
	return append([]string{"exec", "--team", "acme", "--trigger", "cli", "--user", "alice", "--start-token-env", "START_TOKEN", "--"}, child...)
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

// leaks returns what in b reveals a value: the value or any listed
// encoding of it.
func leaks(b string) []string {
	var found []string
	for _, v := range longValues {
		for _, p := range mask.Patterns([]byte(v)) {
			if strings.Contains(b, string(p)) {
				found = append(found, string(p))
			}
		}
	}
	return found
}

func wantNoLeak(t *testing.T, what, b string) {
	t.Helper()
	if l := leaks(b); len(l) > 0 {
		t.Errorf("%s reveals %q: %q", what, l, b)
	}
}

// run runs oz and returns its output and exit code, checking that neither
// stream reveals a value.
func run(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code = exitCode(t, cmd.Run())
	wantNoLeak(t, "stdout", out.String())
	wantNoLeak(t, "stderr", errOut.String())
	return out.String(), errOut.String(), code
}

func TestExecMasksOutput(t *testing.T) {
	srv := startDefault(t)
	tests := []struct {
		name       string
		child      []string
		stdin      string
		wantStdout []string
		wantStderr []string
	}{
		{name: "Env", child: []string{"sh", "-c", "env"}, wantStdout: []string{"API_KEY=***\n", "DB_PASSWORD=***\n", "PEM_KEY=***\n", "SHADOWED=***\n"}},
		{name: "Printenv", child: []string{"printenv", "API_KEY"}, wantStdout: []string{"***\n"}},
		{name: "Stdin", child: []string{"cat"}, stdin: "echo: " + apiKey + " and " + password + "\n", wantStdout: []string{"echo: *** and ***\n"}},
		{name: "Base64", child: []string{"sh", "-c", `printf %s "$API_KEY" | base64`}, wantStdout: []string{"***\n"}},
		{name: "BasicAuth", child: []string{"sh", "-c", `printf "alice:%s" "$DB_PASSWORD" | base64`}, wantStdout: []string{"***"}},
		{name: "Percent", child: []string{"sh", "-c", `echo "p%40ss+w0rd%2F%2B%3C%26%3E"`}, wantStdout: []string{"***\n"}},
		{name: "PEMLines", child: []string{"sh", "-c", `printenv PEM_KEY | tail -n 3`}, wantStdout: []string{"***\n***\n\n"}},
		{name: "PEMLine", child: []string{"sh", "-c", `printenv PEM_KEY | sed -n 2p`}, wantStdout: []string{"***\n"}},
		{name: "JSON", child: []string{"sh", "-c", `printf '{"pw":"p@ss w0rd/+\\u003c\\u0026\\u003e"}\n'`}, wantStdout: []string{`{"pw":"***"}`}},
		{name: "Stderr", child: []string{"sh", "-c", `echo "key=$API_KEY" >&2`}, wantStderr: []string{"key=***\n"}},
		{name: "ByteByByte", child: []string{"sh", "-c", `printf '%s\n' "$API_KEY" | fold -w 1 | while IFS= read -r c; do printf %s "$c"; sleep 0.001; done; echo`}, wantStdout: []string{"***\n"}},
		{name: "RunnerToken", child: []string{"sh", "-c", "echo " + ozfake.Token}, wantStdout: []string{"***\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := ozCommand(t, srv, execArgs(tt.child...)...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			stdout, stderr, code := run(t, cmd)
			if code != 0 {
				t.Fatalf("got exit code %d, want 0; stderr %q", code, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("got stdout %q, want it to hold %q", stdout, w)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("got stderr %q, want it to hold %q", stderr, w)
				}
			}
		})
	}
}

func TestExecEnvironment(t *testing.T) {
	srv := startDefault(t)
	stdout, stderr, code := run(t, ozCommand(t, srv, execArgs("env")...))
	if code != 0 {
		t.Fatalf("got exit code %d, want 0; stderr %q", code, stderr)
	}
	env := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for _, name := range []string{"OZ_TOKEN", "START_TOKEN"} {
		if _, ok := env[name]; ok {
			t.Errorf("the child's environment holds %s", name)
		}
	}
	if got := env["SHADOWED"]; got != "***" {
		t.Errorf("got SHADOWED=%q, want the secret (***)", got)
	}
	if got := env["KEEP"]; got != "kept" {
		t.Errorf("got KEEP=%q, want the inherited kept", got)
	}
	if got := env["PIN"]; got != pin {
		t.Errorf("got PIN=%q, want %q (too short to mask)", got, pin)
	}
	for _, want := range []string{
		"oz: run run-0001 (teams/acme/runs/run-0001) as agent default\n",
		"oz: injected API_KEY (team, version 3)\n",
		"oz: injected DB_PASSWORD (personal, version 1)\n",
		"oz: unresolved DEPLOY_KEY: restricted to other agent identities: restricted to agent identities: deployer\n",
		"oz: secret SHADOWED replaces the inherited environment variable SHADOWED\n",
		"oz: not masked in output (shorter than 4 bytes): PIN\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("got stderr %q, want it to hold %q", stderr, want)
		}
	}
}

func TestExecRequest(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  *scopev1.ResolveRunRequest
	}{
		{
			name:  "Full",
			flags: []string{"--team", "acme", "--trigger", "slack", "--user", "alice", "--agent", "deployer", "--environment", "prod", "--secret", "A", "--secret", "B", "--run-id", "r42", "--start-token-env", "START_TOKEN"},
			want: &scopev1.ResolveRunRequest{Parent: "teams/acme", RunId: "r42", Context: &scopev1.RunContext{
				Trigger: scopev1.Trigger_TRIGGER_SLACK, User: "users/alice", Agent: "deployer", Environment: "prod",
				Secrets: &scopev1.SecretNameList{Names: []string{"A", "B"}}, StartToken: startToken,
			}},
		},
		{
			name:  "NoSecretsIsEmptyList",
			flags: []string{"--team", "acme", "--trigger", "schedule", "--no-secrets", "--strict"},
			want: &scopev1.ResolveRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{
				Trigger: scopev1.Trigger_TRIGGER_SCHEDULE, Secrets: &scopev1.SecretNameList{}, Strict: true,
			}},
		},
		{
			name:  "NoListIsAbsent",
			flags: []string{"--use-team", "acme", "--trigger", "integration"},
			want:  &scopev1.ResolveRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_INTEGRATION}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, ozfake.ExecResolved(nil))
			args := append([]string{"exec"}, tt.flags...)
			if tt.flags[0] == "--use-team" { // a global flag
				args = append(tt.flags[:2:2], append([]string{"exec"}, tt.flags[2:]...)...)
			}
			_, stderr, code := run(t, ozCommand(t, srv, append(args, "--", "true")...))
			if code != 0 {
				t.Fatalf("got exit code %d, want 0; stderr %q", code, stderr)
			}
			calls := srv.CallsTo("ResolveRun")
			if len(calls) != 1 {
				t.Fatalf("got %d ResolveRun calls, want 1", len(calls))
			}
			got := proto.Clone(calls[0].Req).(*scopev1.ResolveRunRequest)
			if got.GetRecipient().GetKemId() != 0x647a || len(got.GetRecipient().GetPublicKey()) == 0 {
				t.Errorf("got recipient KEM %#x with %d key bytes, want 0x647a and a key", got.GetRecipient().GetKemId(), len(got.GetRecipient().GetPublicKey()))
			}
			got.Recipient = nil
			if !proto.Equal(got, tt.want) {
				t.Errorf("got request %v, want %v", got, tt.want)
			}
			if tt.want.GetContext().GetSecrets() != nil && got.GetContext().GetSecrets() == nil {
				t.Error("got no secret list, want a present one")
			}
			if md := calls[0].MD.Get("authorization"); !slices.Equal(md, []string{"Bearer " + ozfake.Token}) {
				t.Errorf("got authorization %q, want the runner token", md)
			}
			if !strings.Contains(stderr, "oz: injected: none\n") {
				t.Errorf("got stderr %q, want it to say nothing was injected", stderr)
			}
		})
	}
}

func TestExecUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"NoTrigger", []string{"exec", "--team", "acme", "--", "true"}, "--trigger is required"},
		{"BadTrigger", []string{"exec", "--team", "acme", "--trigger", "cron", "--", "true"}, `--trigger: must be one of`},
		{"NoTeam", []string{"exec", "--trigger", "cli", "--", "true"}, "--team is required"},
		{"NoCommand", []string{"exec", "--team", "acme", "--trigger", "cli"}, "missing COMMAND"},
		{"SecretAndNoSecrets", []string{"exec", "--team", "acme", "--trigger", "cli", "--secret", "A", "--no-secrets", "--", "true"}, "cannot be used together"},
		{"UnsetStartToken", []string{"exec", "--team", "acme", "--trigger", "cli", "--start-token-env", "NOPE", "--", "true"}, "$NOPE is not set"},
		{"CommandNotFound", []string{"exec", "--team", "acme", "--trigger", "cli", "--", "no-such-command-xyz"}, "cannot run no-such-command-xyz: executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDefault(t)
			_, stderr, code := run(t, ozCommand(t, srv, tt.args...))
			if code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("got stderr %q, want it to hold %q", stderr, tt.want)
			}
			if n := len(srv.Calls()); n != 0 {
				t.Errorf("got %d calls, want none", n)
			}
		})
	}
}

func TestExecExitCode(t *testing.T) {
	srv := startDefault(t)
	for _, want := range []int{0, 1, 3, 42} {
		t.Run(strconv.Itoa(want), func(t *testing.T) {
			_, stderr, code := run(t, ozCommand(t, srv, execArgs("sh", "-c", "exit "+strconv.Itoa(want))...))
			if code != want {
				t.Errorf("got exit code %d, want %d; stderr %q", code, want, stderr)
			}
		})
	}
}

func TestExecStrict(t *testing.T) {
	srv := startFake(t, ozfake.ExecFailedStrict(
		&scopev1.UnresolvedReference{SecretName: "DB_URL", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND},
		&scopev1.UnresolvedReference{SecretName: "DEPLOY_KEY", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED},
	))
	marker := filepath.Join(t.TempDir(), "started")
	args := []string{"exec", "--team", "acme", "--trigger", "api", "--user", "alice", "--secret", "DB_URL", "--secret", "DEPLOY_KEY", "--strict", "--", "touch", marker}
	_, stderr, code := run(t, ozCommand(t, srv, args...))
	if code != exitcode.Strict {
		t.Errorf("got exit code %d, want %d", code, exitcode.Strict)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran (stat %s: %v)", marker, err)
	}
	for _, want := range []string{"oz: unresolved DB_URL: not found\n", "oz: unresolved DEPLOY_KEY: restricted to other agent identities\n", "strict run"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("got stderr %q, want it to hold %q", stderr, want)
		}
	}
	req := srv.CallsTo("ResolveRun")[0].Req.(*scopev1.ResolveRunRequest)
	if !req.GetContext().GetStrict() {
		t.Error("got strict false in the request, want true")
	}
}

// A response oz cannot open stops it before the command starts.
func TestExecRefusesUnopenableValues(t *testing.T) {
	tests := []struct {
		name string
		edit func(*scopev1.ResolveRunResponse)
	}{
		{"Tampered", func(r *scopev1.ResolveRunResponse) { r.Sealed.Ciphertext[len(r.Sealed.Ciphertext)-1] ^= 1 }},
		{"OtherRun", func(r *scopev1.ResolveRunResponse) { r.Run.Name = "teams/acme/runs/other" }},
		{"WrongAEAD", func(r *scopev1.ResolveRunResponse) { r.Sealed.AeadId = 3 }},
		{"Missing", func(r *scopev1.ResolveRunResponse) { r.Sealed = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resolved := ozfake.ExecResolved(runVars)
			srv := startFake(t, func(ctx context.Context, r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
				resp, err := resolved(ctx, r)
				if err == nil {
					tt.edit(resp)
				}
				return resp, err
			})
			marker := filepath.Join(t.TempDir(), "started")
			_, stderr, code := run(t, ozCommand(t, srv, execArgs("touch", marker)...))
			if code != exitcode.Error {
				t.Errorf("got exit code %d, want %d", code, exitcode.Error)
			}
			if !strings.Contains(stderr, "cannot open the run's sealed values") {
				t.Errorf("got stderr %q, want it to say the values could not be opened", stderr)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command ran (stat %s: %v)", marker, err)
			}
		})
	}
}

// syncBuffer collects output from a process while the test reads it.
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

// startOz starts oz with the child and waits until the child wrote its
// pid into a file; it returns the command, its output and the child's pid.
func startOz(t *testing.T, srv *ozfake.Server, script string) (*exec.Cmd, *syncBuffer, *syncBuffer, int) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := ozCommand(t, srv, execArgs("sh", "-c", `echo $$ > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"; `+script)...)
	cmd.Env = append(cmd.Env, "PIDFILE="+pidFile)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var pid int
	waitFor(t, "the child's pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return cmd, &out, &errOut, pid
}

func TestExecForwardsSignals(t *testing.T) {
	srv := startDefault(t)
	tests := []struct {
		name     string
		script   string
		sig      syscall.Signal
		wantCode int
		wantOut  string
	}{
		{"Trapped", `trap 'echo "got TERM $API_KEY"; exit 0' TERM; echo ready; while :; do sleep 0.05; done`, syscall.SIGTERM, 0, "got TERM ***\n"},
		{"Killed", `echo ready; while :; do sleep 0.05; done`, syscall.SIGTERM, 128 + 15, ""},
		{"Interrupt", `trap 'echo got INT; exit 9' INT; echo ready; while :; do sleep 0.05; done`, syscall.SIGINT, 9, "got INT\n"},
		{"Hangup", `trap 'echo got HUP; exit 0' HUP; echo ready; while :; do sleep 0.05; done`, syscall.SIGHUP, 0, "got HUP\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, out, errOut, _ := startOz(t, srv, tt.script)
			waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			code := exitCode(t, cmd.Wait())
			if code != tt.wantCode {
				t.Errorf("got exit code %d, want %d; stderr %q", code, tt.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("got stdout %q, want it to hold %q", out.String(), tt.wantOut)
			}
			wantNoLeak(t, "stdout", out.String())
			wantNoLeak(t, "stderr", errOut.String())
		})
	}
}

// No value is on the command line of oz or of the child, nor in oz's own
// environment, while they run.
func TestExecKeepsValuesOffCommandLines(t *testing.T) {
	srv := startDefault(t)
	cmd, out, errOut, childPid := startOz(t, srv, `echo ready; while :; do sleep 0.05; done`)
	waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
	for _, f := range []string{
		fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid),
		fmt.Sprintf("/proc/%d/cmdline", childPid),
		fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{apiKey, password, shadow, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a value", f)
			}
		}
	}
	// The child's environment does hold them: that is the point.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", childPid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env, []byte("API_KEY="+apiKey+"\x00")) {
		t.Error("the child's environment lacks API_KEY")
	}
	if bytes.Contains(env, []byte("OZ_TOKEN=")) {
		t.Error("the child's environment holds OZ_TOKEN")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd.Wait()); code != 128+15 {
		t.Errorf("got exit code %d, want %d", code, 128+15)
	}
	wantNoLeak(t, "stderr", errOut.String())
}

func TestMaskCommand(t *testing.T) {
	srv := startDefault(t) // unused by oz mask, but gives ozCommand its settings
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	in := "token " + apiKey + "\nb64 " + base64.StdEncoding.EncodeToString([]byte(apiKey)) + "\n" + pem + "pw " + password + " pin 123\n"
	cmd := ozCommand(t, srv, "mask", "--from-env", "API_KEY", "--from-env", "PW", "--from-env", "PIN", "--from-file", file)
	cmd.Env = append(cmd.Env, "API_KEY="+apiKey, "PW="+password, "PIN=123")
	cmd.Stdin = strings.NewReader(in)
	stdout, stderr, code := run(t, cmd)
	if code != 0 {
		t.Fatalf("got exit code %d, want 0; stderr %q", code, stderr)
	}
	// The whole file, final newline included, is one value.
	if want := "token ***\nb64 ***\n***pw *** pin 123\n"; stdout != want {
		t.Errorf("got %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "not masked (shorter than 4 bytes): $PIN") {
		t.Errorf("got stderr %q, want it to name $PIN", stderr)
	}
}
