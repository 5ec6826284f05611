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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/mask"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// ozBin is oz (cmd/oz), built for these tests: they run exec and mask as
// real processes, hardened as the real one is.
var ozBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oz-exec-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ozBin = filepath.Join(dir, "oz")
	build := exec.Command("go", "build", "-o", ozBin, "github.com/ozsecrets/oz/cli/cmd/oz")
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
	apiKey   = "sk_live_4f9a8b7c6d5e3f2a"
	password = "p@ss w0rd/+<&>"
	shadow   = "shadow-secret-value"
	pin      = "123"
	// ticket is the run's start ticket, in RUN_TICKET.
	ticket = "ozt_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
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
var longValues = []string{apiKey, password, shadow, pem, ozfake.Token, ticket}

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
// with SHADOWED, KEEP and RUN_TICKET in its environment.
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
		"RUN_TICKET=" + ticket,
	}, srv.Env()...)
	return cmd
}

func execArgs(child ...string) []string {
	return append([]string{"exec", "--ticket-env", "RUN_TICKET", "--"}, child...)
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
	lower := strings.ToLower(b) // the masker ignores ASCII case
	for _, v := range longValues {
		for _, p := range mask.Patterns([]byte(v)) {
			if strings.Contains(lower, strings.ToLower(string(p))) {
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
		{name: "Ticket", child: []string{"sh", "-c", "echo " + ticket}, wantStdout: []string{"***\n"}},
		{name: "Hex", child: []string{"sh", "-c", `printf %s "$API_KEY" | od -An -tx1 | tr -d ' \n'; echo`}, wantStdout: []string{"***\n"}},
		{name: "HexUpper", child: []string{"sh", "-c", `printf %s "$API_KEY" | od -An -tx1 | tr -d ' \n' | tr a-f A-F; echo`}, wantStdout: []string{"***\n"}},
		{name: "Upper", child: []string{"sh", "-c", `printf %s "$API_KEY" | tr a-z A-Z; echo`}, wantStdout: []string{"***\n"}},
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
	for _, name := range []string{"OZ_TOKEN", "RUN_TICKET"} {
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
		env   map[string]string
		want  *scopev1.ResolveRunRequest
	}{
		{
			// The ticket fixes the run: nothing else is sent.
			name:  "TicketOnly",
			flags: []string{"--ticket-env", "RUN_TICKET"},
			want:  &scopev1.ResolveRunRequest{Parent: "teams/-", Ticket: ticket},
		},
		{
			name: "DefaultVariable",
			env:  map[string]string{"OZ_TICKET": ticket},
			want: &scopev1.ResolveRunRequest{Parent: "teams/-", Ticket: ticket},
		},
		{
			name:  "TicketFile",
			flags: []string{"--ticket-file", "TICKET_FILE"},
			want:  &scopev1.ResolveRunRequest{Parent: "teams/-", Ticket: ticket},
		},
		{
			// What the runner restates, the server checks against the
			// ticket.
			name:  "Restated",
			flags: []string{"--ticket-env", "RUN_TICKET", "--team", "acme", "--trigger", "slack", "--user", "alice", "--agent", "deployer", "--environment", "prod", "--secret", "A", "--secret", "B", "--run-id", "r42"},
			want: &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, RunId: "r42", Context: &scopev1.RunContext{
				Trigger: scopev1.Trigger_TRIGGER_SLACK, User: "users/alice", Agent: "deployer", Environment: "prod",
				Secrets: &scopev1.SecretNameList{Names: []string{"A", "B"}},
			}},
		},
		{
			name:  "NarrowedToNothing",
			flags: []string{"--ticket-env", "RUN_TICKET", "--no-secrets", "--strict"},
			want: &scopev1.ResolveRunRequest{Parent: "teams/-", Ticket: ticket, Context: &scopev1.RunContext{
				Secrets: &scopev1.SecretNameList{}, Strict: true,
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, ozfake.ExecResolved(nil))
			flags := slices.Clone(tt.flags)
			if i := slices.Index(flags, "TICKET_FILE"); i >= 0 {
				flags[i] = filepath.Join(t.TempDir(), "ticket")
				if err := os.WriteFile(flags[i], []byte(ticket+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := ozCommand(t, srv, append(append([]string{"exec"}, flags...), "--", "true")...)
			for k, v := range tt.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			_, stderr, code := run(t, cmd)
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

// TestExecReportsEnd: when the command ends, oz reports the run's end with
// its exit status and how long it ran, with the runner's token.
func TestExecReportsEnd(t *testing.T) {
	srv := startDefault(t)
	_, stderr, code := run(t, ozCommand(t, srv, execArgs("sh", "-c", "sleep 0.2; exit 5")...))
	if code != 5 {
		t.Fatalf("got exit code %d, want 5; stderr %q", code, stderr)
	}
	calls := srv.CallsTo("EndRun")
	if len(calls) != 1 {
		t.Fatalf("got %d EndRun calls, want 1", len(calls))
	}
	end := calls[0].Req.(*scopev1.EndRunRequest)
	if end.GetName() != "teams/acme/runs/run-0001" || end.GetExitCode() != 5 || end.GetSignal() != 0 ||
		end.GetDuration().AsDuration() < 200*time.Millisecond || end.GetDuration().AsDuration() > 30*time.Second {
		t.Errorf("EndRun request: %v", end)
	}
	if md := calls[0].MD.Get("authorization"); !slices.Equal(md, []string{"Bearer " + ozfake.Token}) {
		t.Errorf("got authorization %q, want the runner token", md)
	}

	// A failed report is said, and changes nothing else.
	failing := ozfake.StartExec(t, &ozfake.ExecRunService{
		ResolveRunFunc: ozfake.ExecResolved(runVars),
		EndRunFunc: func(context.Context, *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error) {
			return nil, status.Error(codes.Unavailable, "resolver down")
		},
	})
	_, stderr, code = run(t, ozCommand(t, failing, execArgs("true")...))
	if code != 0 || !strings.Contains(stderr, "the run's end could not be reported") {
		t.Errorf("got exit code %d and stderr %q; want 0 and the failed report said", code, stderr)
	}
}

func TestExecUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"NoTicket", []string{"exec", "--", "true"}, "no start ticket: $OZ_TICKET is not set"},
		{"UnsetTicketEnv", []string{"exec", "--ticket-env", "NOPE", "--", "true"}, "$NOPE is not set"},
		{"TicketEnvAndFile", []string{"exec", "--ticket-env", "RUN_TICKET", "--ticket-file", "/x", "--", "true"}, "cannot be used together"},
		{"MissingTicketFile", []string{"exec", "--ticket-file", "/nonexistent/ticket", "--", "true"}, "--ticket-file"},
		{"BadTrigger", []string{"exec", "--ticket-env", "RUN_TICKET", "--trigger", "cron", "--", "true"}, `--trigger: must be one of`},
		{"NoCommand", []string{"exec", "--ticket-env", "RUN_TICKET"}, "missing COMMAND"},
		{"SecretAndNoSecrets", []string{"exec", "--ticket-env", "RUN_TICKET", "--secret", "A", "--no-secrets", "--", "true"}, "cannot be used together"},
		{"StartTokenGone", []string{"exec", "--start-token-env", "X", "--", "true"}, "--start-token-env is no longer supported"},
		{"AsRoot", []string{"exec", "--ticket-env", "RUN_TICKET", "--as-user", "0", "--", "true"}, "--as-user"},
		{"CommandNotFound", []string{"exec", "--ticket-env", "RUN_TICKET", "--", "no-such-command-xyz"}, "cannot run no-such-command-xyz: executable file not found"},
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
	args := []string{"exec", "--ticket-env", "RUN_TICKET", "--secret", "DB_URL", "--secret", "DEPLOY_KEY", "--strict", "--", "touch", marker}
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
		if errors.Is(err, os.ErrPermission) && strings.HasSuffix(f, "environ") {
			continue // oz is non-dumpable: unreadable unless we are root
		}
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

// TestExecAsUser: with --as-user, the command runs as another uid and can
// read neither oz's environment and memory nor the runner's token file;
// a token file that uid could read stops oz before anything is resolved.
// It needs root (the runner's deployment with --as-user).
func TestExecAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--as-user needs the runner to run as root; this test runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	srv := startDefault(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "runner-token")
	if err := os.WriteFile(tokenFile, []byte(ozfake.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	probe := `id -u; id -G; ` +
		`cat /proc/$PPID/environ >/dev/null 2>&1 && echo ENVIRON-READ; ` +
		`head -c 64 /proc/$PPID/mem >/dev/null 2>&1 && echo MEM-READ; ` +
		`cat "$TOKEN_FILE" >/dev/null 2>&1 && echo TOKEN-READ; ` +
		`env | grep -q '^OZ_TOKEN' && echo TOKEN-IN-ENV; printenv API_KEY; true`
	cmd := ozCommand(t, srv, "--token-file", tokenFile, "exec", "--ticket-env", "RUN_TICKET", "--as-user", "65534", "--", "sh", "-c", probe)
	cmd.Env = append(slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "OZ_TOKEN=") }), "TOKEN_FILE="+tokenFile)
	cmd.Dir = "/"
	stdout, stderr, code := run(t, cmd)
	if code != 0 {
		t.Fatalf("got exit code %d, want 0; stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 3 || lines[0] != "65534" || lines[1] != "65534" {
		t.Errorf("the command ran as %q, want uid 65534 with only group 65534", lines)
	}
	for _, leak := range []string{"ENVIRON-READ", "MEM-READ", "TOKEN-READ", "TOKEN-IN-ENV"} {
		if strings.Contains(stdout, leak) {
			t.Errorf("the command could do %s: %q", leak, stdout)
		}
	}
	if !strings.Contains(stdout, "***") {
		t.Errorf("the command did not get its secret: %q", stdout)
	}

	// A token file the agent's user could read: refused, nothing resolved.
	if err := os.Chmod(tokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(srv.CallsTo("ResolveRun"))
	cmd = ozCommand(t, srv, "--token-file", tokenFile, "exec", "--ticket-env", "RUN_TICKET", "--as-user", "65534", "--", "true")
	cmd.Dir = "/"
	_, stderr, code = run(t, cmd)
	if code != exitcode.Usage || !strings.Contains(stderr, tokenFile) {
		t.Errorf("got exit code %d and stderr %q; want a usage error naming the token file", code, stderr)
	}
	if got := len(srv.CallsTo("ResolveRun")); got != before {
		t.Errorf("the run was resolved although the agent could read the token")
	}
}
