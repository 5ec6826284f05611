package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Services is the whole system with every service started by the harness
// itself, with the arguments ozdev gives them, rather than by ozdev (which
// stops everything when one service exits). A test can then stop, kill and
// restart one service while the others keep running. The embedded System
// gives the addresses, the CA, the bootstrap token and the clients; stop
// everything with Services.Stop, not System.Stop.
type Services struct {
	*System
	// Metrics is each stateful service's Prometheus endpoint
	// ("http://127.0.0.1:PORT/metrics"), by name.
	Metrics map[string]string
	procs   map[string]*Proc
	order   []string // start order
}

// Proc is one service process of Services.
type Proc struct {
	Name    string // "resolver", "audit", "secretstore", "gateway"
	LogPath string // <data-dir>/logs/<name>.log, appended to by every start

	s    *Services
	bin  string
	args []string
	http bool
	// firstArgs are added to args at the first start only: --init, for a
	// store the process creates (an empty etcd namespace).
	firstArgs []string
	started   bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // cmd.Wait's result, once done is closed
}

// StartServices prepares dataDir by starting ozdev once in it (the
// development PKI, the keyring, the bootstrap admin and its token), stops
// it, and starts the four services itself on the same ports, in ozdev's
// order, each once healthy.
func StartServices(binDir, dataDir string) (*Services, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	prep, err := Start(binDir, dataDir)
	if err != nil {
		return nil, fmt.Errorf("prepare the data directory with ozdev: %w", err)
	}
	if err := prep.Stop(); err != nil {
		return nil, fmt.Errorf("stop ozdev: %w", err)
	}
	sys := &System{
		BinDir: binDir, DataDir: dataDir, Addr: prep.Addr, Ports: prep.Ports,
		CAFile: prep.CAFile, AdminToken: prep.AdminToken, stderr: &syncBuffer{},
	}
	s := &Services{System: sys, procs: map[string]*Proc{}, Metrics: map[string]string{}}
	p := sys.Ports
	metrics := map[string]string{}
	for _, name := range []string{"resolver", "audit", "secretstore"} {
		addr, err := FreePort()
		if err != nil {
			return nil, err
		}
		metrics[name] = addr
		s.Metrics[name] = "http://" + addr + "/metrics"
	}
	pki := filepath.Join(dataDir, "pki")
	bootstrap := filepath.Join(dataDir, "bootstrap-token")
	for _, pr := range []*Proc{
		{Name: "resolver", bin: "ozresolverd", args: []string{
			"--listen", p["resolver"], "--data-dir", dataDir, "--bootstrap-token-file", bootstrap,
			"--secretstore-addr", p["secretstore"], "--audit-addr", p["audit"], "--metrics-listen", metrics["resolver"]}},
		{Name: "audit", bin: "ozauditd", args: []string{
			"--listen", p["audit"], "--data-dir", dataDir, "--resolver-addr", p["resolver"],
			"--secretstore-addr", p["secretstore"], "--metrics-listen", metrics["audit"]}},
		{Name: "secretstore", bin: "ozsecretstored", args: []string{
			"--listen", p["secretstore"], "--data-dir", dataDir, "--resolver-addr", p["resolver"],
			"--audit-addr", p["audit"], "--dev", "--metrics-listen", metrics["secretstore"]}},
		{Name: "gateway", bin: "ozgateway", http: true, args: []string{
			"--listen", p["gateway"],
			"--tls-cert", filepath.Join(pki, "gateway.pem"), "--tls-key", filepath.Join(pki, "gateway-key.pem"),
			"--tls-ca", filepath.Join(pki, "ca.pem"),
			"--secretstore-addr", p["secretstore"], "--resolver-addr", p["resolver"], "--audit-addr", p["audit"],
			// The load tests send deliberately unauthenticated calls from
			// loopback among their others, and count on each reaching a
			// backend; the limit itself is tested in edge_test.go.
			"--auth-fail-per-minute", "0"}},
	} {
		pr.s = s
		pr.LogPath = filepath.Join(dataDir, "logs", pr.Name+".log")
		s.procs[pr.Name] = pr
		s.order = append(s.order, pr.Name)
		if err := pr.Start(); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// Proc returns the service called name ("resolver", "audit",
// "secretstore", "gateway"); it panics on any other name.
func (s *Services) Proc(name string) *Proc {
	p, ok := s.procs[name]
	if !ok {
		panic("harness: no service " + name)
	}
	return p
}

// Stop stops every running service, in the reverse of the start order
// (the gateway first, the resolver last), and returns the first error.
func (s *Services) Stop() error {
	var first error
	for i := len(s.order) - 1; i >= 0; i-- {
		if err := s.procs[s.order[i]].Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Start starts the service (again) with its arguments and waits until it
// is healthy. It is an error to start a running service.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exited() {
		return fmt.Errorf("%s is running already", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := p.args
	if !p.started {
		args = append(append([]string{}, args...), p.firstArgs...)
		p.started = true
	}
	cmd := exec.Command(filepath.Join(p.s.BinDir, p.bin), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.err = err
		close(done)
	}()

	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited at start: %v (see %s)", p.Name, p.err, p.LogPath)
		}
		if last = p.probe(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("%s did not become healthy: %v (see %s)", p.Name, last, p.LogPath)
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 30
// seconds). Stopping a stopped service does nothing.
func (p *Proc) Stop() error {
	return p.signal(syscall.SIGTERM)
}

// Kill sends SIGKILL and waits for the process to be gone: it gets no
// chance to finish anything, as in a crash.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL)
}

// Pid is the process id of the running service, 0 when it is not running.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 30s", p.Name)
	}
	if sig == syscall.SIGKILL {
		return nil // the wait status says "killed", as it should
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s: %v (see %s)", p.Name, p.err, p.LogPath)
	}
	return p.err
}

// exited reports whether the current process has exited; p.mu is held.
func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// probe checks the service's health once: gRPC health checking over
// mutual TLS (as the gateway), or the gateway's /healthz.
func (p *Proc) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if p.http {
		client, err := p.s.HTTPClient()
		if err != nil {
			return err
		}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.s.Ports[p.Name]+"/healthz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	}
	conn, err := p.s.DialService(p.Name, "gateway")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New(resp.GetStatus().String())
	}
	return nil
}
