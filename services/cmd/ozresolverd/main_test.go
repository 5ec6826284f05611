package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/lib/flagenv"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

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

// daemon is ozresolverd running in-process.
type daemon struct {
	addr    string
	metrics string // http://…/metrics when --metrics-listen is set
	logs    *syncBuffer
	stop    func()
}

// start runs ozresolverd with args and env until the test ends (or stop),
// and waits for it to serve.
func start(t *testing.T, env map[string]string, args ...string) *daemon {
	t.Helper()
	d := &daemon{logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(d.logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		getenv := func(k string) string { return env[k] }
		done <- run(ctx, withInit(args, getenv), getenv, &syncBuffer{}, d.logs, log)
	}()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ozresolverd: %v", err)
			}
		})
	}
	t.Cleanup(d.stop)
	deadline := time.Now().Add(10 * time.Second)
	for d.addr == "" {
		select {
		case err := <-done:
			done <- nil // stop must not wait for it again
			t.Fatalf("ozresolverd exited: %v\nlogs:\n%s", err, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ozresolverd did not start; logs:\n%s", d.logs)
		}
		for _, line := range strings.Split(d.logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				d.addr = rec.Addr
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics" {
				d.metrics = rec.Addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// caller asks the daemon who token is, over mutual TLS as the gateway.
func caller(t *testing.T, dataDir string, d *daemon, token string) (*scopev1.Principal, error) {
	t.Helper()
	return callerWith(t, pki.Dir(filepath.Join(dataDir, "pki")), d, token)
}

// callerWith is caller with the gateway's certificate from dir.
func callerWith(t *testing.T, dir pki.Dir, d *daemon, token string) (*scopev1.Principal, error) {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(d.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	resp, err := scopev1.NewDirectoryServiceClient(conn).GetCaller(ctx, &scopev1.GetCallerRequest{})
	return resp.GetPrincipal(), err
}

func newDataDir(t *testing.T) string {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := pki.EnsureDev(pki.Dir(filepath.Join(dataDir, "pki"))); err != nil {
		t.Fatal(err)
	}
	return dataDir
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s: mode %v, want 0600", filepath.Base(path), got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := strings.CutSuffix(string(b), "\n")
	if !ok || !strings.HasPrefix(tok, "oz_") || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token file: got %d bytes, want one oz_… token and a newline", len(b))
	}
	return tok
}

// TestBootstrapAndRestart: the first start writes a working system-admin
// token (mode 0600); a restart keeps the data, and leaves the file alone.
func TestBootstrapAndRestart(t *testing.T) {
	dataDir := newDataDir(t)
	tokenFile := filepath.Join(dataDir, "bootstrap-token")
	// Flags for the first start, environment variables for the second.
	d := start(t, nil, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-token-file", tokenFile)
	admin := readToken(t, tokenFile)
	p, err := caller(t, dataDir, d, admin)
	if err != nil {
		t.Fatalf("GetCaller: %v", err)
	}
	if !p.GetSystemAdmin() || p.GetName() != "users/admin" {
		t.Errorf("bootstrap principal: got %v, want the system admin users/admin", p)
	}
	d.stop()
	logs := d.logs.String()

	// Someone replaced the file: a restart must leave it as it is.
	if err := os.WriteFile(tokenFile, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d = start(t, map[string]string{
		"OZ_RESOLVER_LISTEN":      "127.0.0.1:0",
		"OZ_DATA_DIR":             dataDir,
		"OZ_BOOTSTRAP_TOKEN_FILE": tokenFile,
	})
	if b, _ := os.ReadFile(tokenFile); string(b) != "kept\n" {
		t.Errorf("token file after restart: got %q, want it left as %q", b, "kept\n")
	}
	if p, err := caller(t, dataDir, d, admin); err != nil || !p.GetSystemAdmin() {
		t.Errorf("bootstrap token after restart: got %v, %v, want a system admin", p, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "resolver.db")); err != nil {
		t.Errorf("database not at <data-dir>/resolver.db: %v", err)
	}
	d.stop()
	logs += d.logs.String()
	if strings.Contains(logs, admin) || strings.Contains(logs, admin[20:]) {
		t.Errorf("logs hold the bootstrap token")
	}
	if !strings.Contains(logs, `"bootstrap: created system admin"`) {
		t.Errorf("logs do not say the admin was created:\n%s", logs)
	}
	entries, _ := os.ReadDir(dataDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".bootstrap-token-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestBootstrapCommand: `ozresolverd bootstrap` prints a new system-admin
// token for a user, which the server then accepts.
func TestBootstrapCommand(t *testing.T) {
	dataDir := newDataDir(t)
	var stdout, stderr syncBuffer
	log := slog.New(slog.NewJSONHandler(&stderr, nil))
	err := run(context.Background(), []string{"bootstrap", "--data-dir", dataDir, "--user", "rescue"},
		func(string) string { return "" }, &stdout, &stderr, log)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr.String())
	}
	tok, ok := strings.CutSuffix(stdout.String(), "\n")
	if !ok || !strings.HasPrefix(tok, "oz_") {
		t.Fatalf("stdout: got %d bytes, want one token and a newline", stdout.buf.Len())
	}
	if strings.Contains(stderr.String(), tok) {
		t.Errorf("stderr holds the token")
	}

	tokenFile := filepath.Join(dataDir, "bootstrap-token")
	d := start(t, nil, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-token-file", tokenFile)
	if p, err := caller(t, dataDir, d, tok); err != nil || !p.GetSystemAdmin() || p.GetName() != "users/rescue" {
		t.Errorf("recovery token: got %v, %v, want the system admin users/rescue", p, err)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("bootstrap token file: got %v, want none (a system admin existed)", err)
	}
}

func TestUsage(t *testing.T) {
	tests := map[string][]string{
		"UnknownFlag":      {"--nope"},
		"StrayArgument":    {"serve"},
		"BootstrapNoUser":  {"bootstrap"},
		"BootstrapBadFlag": {"bootstrap", "--nope"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out syncBuffer
			err := run(context.Background(), args, func(string) string { return "" }, &out, &out, slog.New(slog.NewJSONHandler(&out, nil)))
			if !flagenv.IsUsage(err) {
				t.Errorf("got %v, want a usage error", err)
			}
		})
	}
}
