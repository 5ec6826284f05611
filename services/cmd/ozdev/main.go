// Command ozdev runs the whole system locally (`make run`): it prepares the
// data directory (development CA and certificates, key-encryption key,
// bootstrap system-admin token), starts resolver, secretstore, audit and
// gateway as separate processes on loopback, writes dev.env, and stops them
// all on Ctrl-C or SIGTERM. Started again, it finds its data intact.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

type config struct {
	dataDir     string
	binDir      string
	gatewayAddr string
	resolver    string
	secretstore string
	audit       string
}

func main() {
	flagenv.Main("ozdev", nil, func(ctx context.Context) error {
		c, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
		if err != nil {
			return err
		}
		return run(ctx, c, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	})
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	exe, _ := os.Executable()
	set := flagenv.New("ozdev", flagenv.Help{
		Usage: []string{"ozdev [flags]   run the whole system on loopback until Ctrl-C"},
		About: `Prepares the data directory (development CA and certificates, keyring,
bootstrap token), starts the resolver, audit, secretstore and gateway from
--bin-dir, writes <data-dir>/dev.env, and stops them all on Ctrl-C or SIGTERM.`,
	}, getenv, stderr)
	set.String(&c.dataDir, "data-dir", "OZ_DATA_DIR", ".oz", "data directory")
	set.String(&c.binDir, "bin-dir", "", filepath.Dir(exe), "directory holding the service binaries")
	set.String(&c.gatewayAddr, "gateway-addr", "OZ_GATEWAY_ADDR", "127.0.0.1:7443", "public gateway address")
	set.String(&c.resolver, "resolver-addr", "OZ_RESOLVER_LISTEN", server.DefaultAddr("resolver"), "resolver address")
	set.String(&c.secretstore, "secretstore-addr", "OZ_SECRETSTORE_LISTEN", server.DefaultAddr("secretstore"), "secretstore address")
	set.String(&c.audit, "audit-addr", "OZ_AUDIT_LISTEN", server.DefaultAddr("audit"), "audit address")
	return c, set.Parse(args)
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	dataDir, err := filepath.Abs(c.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "logs"), 0o700); err != nil {
		return err
	}
	dir := pki.Dir(filepath.Join(dataDir, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		return fmt.Errorf("development PKI: %w", err)
	}
	bootstrap := filepath.Join(dataDir, "bootstrap-token")

	procs := []*proc{
		{name: "resolver", bin: "ozresolverd", addr: c.resolver, args: []string{
			"--listen", c.resolver, "--data-dir", dataDir, "--bootstrap-token-file", bootstrap,
			"--secretstore-addr", c.secretstore, "--audit-addr", c.audit}},
		{name: "audit", bin: "ozauditd", addr: c.audit, args: []string{
			"--listen", c.audit, "--data-dir", dataDir, "--resolver-addr", c.resolver,
			"--secretstore-addr", c.secretstore}},
		{name: "secretstore", bin: "ozsecretstored", addr: c.secretstore, args: []string{
			"--listen", c.secretstore, "--data-dir", dataDir, "--resolver-addr", c.resolver, "--audit-addr", c.audit, "--dev"}},
		{name: "gateway", bin: "ozgateway", addr: c.gatewayAddr, http: true, args: []string{
			"--listen", c.gatewayAddr,
			"--tls-cert", dir.For("gateway").Cert, "--tls-key", dir.For("gateway").Key, "--tls-ca", dir.CA(),
			"--secretstore-addr", c.secretstore, "--resolver-addr", c.resolver, "--audit-addr", c.audit}},
	}
	clientTLS, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		return err
	}

	exited := make(chan *proc, len(procs))
	var started []*proc
	defer func() {
		// Stop in reverse order: the gateway first, the resolver last.
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop(log)
		}
	}()
	for _, p := range procs {
		if err := p.start(c.binDir, dataDir, exited); err != nil {
			return err
		}
		started = append(started, p)
		if err := waitHealthy(ctx, p, clientTLS, exited); err != nil {
			return fmt.Errorf("%s did not become healthy (see %s): %w", p.name, p.logPath, err)
		}
		log.Info("started", "service", p.name, "addr", p.addr, "pid", p.cmd.Process.Pid)
	}

	token, err := os.ReadFile(bootstrap)
	if err != nil {
		return fmt.Errorf("read bootstrap token: %w", err)
	}
	envFile := filepath.Join(dataDir, "dev.env")
	envText := fmt.Sprintf("export OZ_ADDR=%s\nexport OZ_CA_FILE=%s\nexport OZ_TOKEN=%s\n",
		c.gatewayAddr, dir.CA(), strings.TrimSpace(string(token)))
	if err := os.WriteFile(envFile, []byte(envText), 0o600); err != nil {
		return fmt.Errorf("write dev.env: %w", err)
	}
	fmt.Fprintf(os.Stderr, `
oz secrets is running.
  gateway (gRPC + REST): https://%s   OpenAPI: https://%s/openapi.json
  data:                  %s   (logs in %s)

In another shell:
  source %s      # OZ_ADDR, OZ_CA_FILE and a system-admin OZ_TOKEN
  bin/oz whoami

Ctrl-C stops everything; data is kept for the next start.
`, c.gatewayAddr, c.gatewayAddr, dataDir, filepath.Join(dataDir, "logs"), envFile)

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "\nstopping…")
		return nil
	case p := <-exited:
		return fmt.Errorf("%s exited unexpectedly (%v); see %s", p.name, p.err, p.logPath)
	}
}

type proc struct {
	name, bin, addr string
	http            bool
	args            []string
	cmd             *exec.Cmd
	logPath         string
	done            chan struct{}
	err             error
}

func (p *proc) start(binDir, dataDir string, exited chan<- *proc) error {
	p.logPath = filepath.Join(dataDir, "logs", p.name+".log")
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(filepath.Join(binDir, p.bin), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches only ozdev, which
	// then stops the services in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
		exited <- p
	}()
	return nil
}

func (p *proc) stop(log *slog.Logger) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	log.Info("stopped", "service", p.name)
}

func waitHealthy(ctx context.Context, p *proc, tlsCfg *tls.Config, exited <-chan *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		if last = probe(ctx, p, tlsCfg); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func probe(ctx context.Context, p *proc, tlsCfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if p.http {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.addr+"/healthz", nil)
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
	conn, err := server.Dial(p.addr, tlsCfg)
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
