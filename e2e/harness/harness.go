// Package harness builds the real binaries and runs the whole system the way
// `make run` does (ozdev starting every service as its own process on
// loopback), for end-to-end tests and for the benchmark command.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Binaries are the programs Build produces, by name.
var Binaries = map[string]string{
	"oz":             "./cli/cmd/oz",
	"ozgateway":      "./gateway/cmd/ozgateway",
	"ozsecretstored": "./services/cmd/ozsecretstored",
	"ozresolverd":    "./services/cmd/ozresolverd",
	"ozauditd":       "./services/cmd/ozauditd",
	"ozdev":          "./services/cmd/ozdev",
}

// RepoRoot finds the workspace root (the folder holding go.work).
func RepoRoot() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above " + file)
		}
		dir = parent
	}
}

// Build compiles every binary into binDir.
func Build(binDir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	var pkgs []string
	for _, p := range Binaries {
		pkgs = append(pkgs, p)
	}
	// As `make build`: the commit stamped for --version (in a workspace
	// only when asked), when there is a checkout to take it from.
	vcs := "-buildvcs=false"
	if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
		vcs = "-buildvcs=true"
	}
	cmd := exec.Command("go", append([]string{"build", vcs, "-o", binDir + "/"}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// System is a running ozdev with all its services.
type System struct {
	BinDir, DataDir string
	Addr            string // gateway host:port
	Ports           map[string]string
	CAFile          string
	AdminToken      string

	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

// handedOut is every address FreePort returned in this process. The kernel
// may give a port it just freed to the next listen on port 0, so four picks
// in a row (or a pick after a stopped ozdev released its own) could repeat
// one: two services told to listen on the same port, and the second fails.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// FreePort returns a loopback address nothing listens on right now, and
// never one it returned before in this process.
func FreePort() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr, nil
		}
	}
}

// Start runs ozdev from binDir with data in dataDir on free ports, and waits
// until it wrote dev.env (every service healthy).
//
// A port free when picked can be taken by another process (a test binary
// running in parallel, a client's outgoing connection) before ozdev's
// service binds it; when ozdev says so, Start tries again on fresh ports.
func Start(binDir, dataDir string) (*System, error) {
	var err error
	for range 3 {
		ports := map[string]string{}
		for _, name := range []string{"gateway", "resolver", "secretstore", "audit"} {
			p, perr := FreePort()
			if perr != nil {
				return nil, perr
			}
			ports[name] = p
		}
		var s *System
		s, err = StartWith(binDir, dataDir, ports)
		if err == nil || !portTaken(err) {
			return s, err
		}
	}
	return nil, err
}

// portTaken reports whether ozdev failed because one of its addresses was
// held by another process (ozdev's own words for it).
func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "is answered by")
}

// StartWith is Start on given ports (to restart on the same addresses).
func StartWith(binDir, dataDir string, ports map[string]string) (*System, error) {
	s := &System{BinDir: binDir, DataDir: dataDir, Addr: ports["gateway"], Ports: ports, stderr: &syncBuffer{}}
	envFile := filepath.Join(dataDir, "dev.env")
	_ = os.Remove(envFile)
	s.cmd = exec.Command(filepath.Join(binDir, "ozdev"))
	s.cmd.Env = append(os.Environ(),
		"OZ_DATA_DIR="+dataDir,
		"OZ_GATEWAY_ADDR="+ports["gateway"],
		"OZ_RESOLVER_LISTEN="+ports["resolver"],
		"OZ_SECRETSTORE_LISTEN="+ports["secretstore"],
		"OZ_AUDIT_LISTEN="+ports["audit"],
	)
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if env, err := ParseEnvFile(envFile); err == nil && env["OZ_TOKEN"] != "" {
			s.CAFile = env["OZ_CA_FILE"]
			s.AdminToken = env["OZ_TOKEN"]
			if env["OZ_ADDR"] != s.Addr {
				s.Stop()
				return nil, fmt.Errorf("dev.env OZ_ADDR=%q, want %q", env["OZ_ADDR"], s.Addr)
			}
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("ozdev exited: %v\n%s", err, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("ozdev did not become ready\n%s", s.stderr.String())
		}
	}
}

// Output is what ozdev printed so far.
func (s *System) Output() string { return s.stderr.String() }

// Stop sends SIGTERM to ozdev and waits for it (and so every service).
func (s *System) Stop() error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return errors.New("ozdev did not stop within 30s")
	}
}

// ParseEnvFile reads `export K=V` lines.
func ParseEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out, sc.Err()
}

// CAPool is the development CA.
func (s *System) CAPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool, nil
}

// HTTPClient is an HTTPS client trusting the development CA.
func (s *System) HTTPClient() (*http.Client, error) {
	pool, err := s.CAPool()
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 128,
	}}, nil
}

// Dial connects to the gateway over TLS, as the CLI does.
func (s *System) Dial() (*grpc.ClientConn, error) {
	pool, err := s.CAPool()
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("passthrough:///"+s.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
}

// DialService connects straight to one service's port presenting the
// certificate of the given service identity (mutual TLS).
func (s *System) DialService(service, as string) (*grpc.ClientConn, error) {
	pool, err := s.CAPool()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.DataDir, "pki")
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, as+".pem"), filepath.Join(dir, as+"-key.pem"))
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("passthrough:///"+s.Ports[service],
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}})))
}

// WithToken returns ctx sending token as a bearer token.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// CLIResult is the outcome of one oz command.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

// OZ runs the oz CLI with the given token and standard input, isolated from
// the user's config (HOME and XDG_CONFIG_HOME point at an empty folder).
func (s *System) OZ(token string, stdin []byte, extraEnv []string, args ...string) (CLIResult, error) {
	return s.OZBinary(filepath.Join(s.BinDir, "oz"), token, stdin, extraEnv, args...)
}

// OZBinary is OZ with another build of the CLI, at bin (one built with a
// test tag).
func (s *System) OZBinary(bin, token string, stdin []byte, extraEnv []string, args ...string) (CLIResult, error) {
	home := filepath.Join(s.DataDir, "clihome")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return CLIResult{}, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"OZ_ADDR=" + s.Addr,
		"OZ_CA_FILE=" + s.CAFile,
		"OZ_TOKEN=" + token,
	}, extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := CLIResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
		err = nil
	}
	return res, err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
