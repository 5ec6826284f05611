// Command ozdev runs the whole system locally (`make run`): it prepares the
// data directory (development CA and certificates, key-encryption key,
// bootstrap system-admin token), starts resolver, secretstore, audit and
// gateway as separate processes on loopback, writes dev.env, and stops them
// all on Ctrl-C or SIGTERM. Started again, it finds its data intact.
//
// It is a small supervisor: the services die with it (even when it is
// killed), a service that exits is restarted with backoff up to a limit, and
// a start refuses while an earlier system still holds the ports or stores.
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
	"path/filepath"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeid"
)

type config struct {
	dataDir     string
	binDir      string
	gatewayAddr string
	resolver    string
	secretstore string
	audit       string
	policy      restartPolicy
	metrics     bool
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
--bin-dir, writes <data-dir>/dev.env, and stops them all on Ctrl-C or SIGTERM.
A service that exits is restarted (with a growing wait, up to --max-restarts
times); the services die with ozdev. A start refuses while another process
holds one of the addresses or a store of the data directory.`,
	}, getenv, stderr)
	set.String(&c.dataDir, "data-dir", "OZ_DATA_DIR", ".oz", "data directory")
	set.String(&c.binDir, "bin-dir", "", filepath.Dir(exe), "directory holding the service binaries")
	set.String(&c.gatewayAddr, "gateway-addr", "OZ_GATEWAY_ADDR", "127.0.0.1:7443", "public gateway address")
	set.String(&c.resolver, "resolver-addr", "OZ_RESOLVER_LISTEN", server.DefaultAddr("resolver"), "resolver address")
	set.String(&c.secretstore, "secretstore-addr", "OZ_SECRETSTORE_LISTEN", server.DefaultAddr("secretstore"), "secretstore address")
	set.String(&c.audit, "audit-addr", "OZ_AUDIT_LISTEN", server.DefaultAddr("audit"), "audit address")
	set.Int(&c.policy.limit, "max-restarts", "OZ_DEV_MAX_RESTARTS", 5,
		"restarts of one service, without a stable minute in between, before ozdev gives up and stops everything")
	set.Duration(&c.policy.base, "restart-backoff", "OZ_DEV_RESTART_BACKOFF", time.Second,
		"wait before the first restart of a service; doubled each time up to 30s")
	set.Bool(&c.metrics, "metrics", "OZ_METRICS", false,
		"serve each process's Prometheus metrics on loopback, at its port + "+fmt.Sprint(metricsPortOffset)+
			" (resolver 127.0.0.1:9451/metrics…), list them, and write <data-dir>/prometheus.yml to scrape them")
	c.policy.max, c.policy.stable = 30*time.Second, time.Minute
	if err := set.Parse(args); err != nil {
		return c, err
	}
	if c.policy.limit < 0 {
		return c, set.Usagef("--max-restarts must be 0 or more, got %d", c.policy.limit)
	}
	if c.policy.base <= 0 {
		return c, set.Usagef("--restart-backoff must be positive, got %s", c.policy.base)
	}
	// Two services told to listen on one address: the second would fail
	// to bind, or a health check would reach the first and call it the
	// second. Say so before starting anything.
	seen := map[string]string{}
	for _, a := range []struct{ flag, addr string }{
		{"--gateway-addr", c.gatewayAddr}, {"--resolver-addr", c.resolver},
		{"--secretstore-addr", c.secretstore}, {"--audit-addr", c.audit},
	} {
		if other, ok := seen[a.addr]; ok {
			return c, set.Usagef("%s and %s must differ, both are %s", other, a.flag, a.addr)
		}
		seen[a.addr] = a.flag
	}
	return c, nil
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
	var metricsText string
	if c.metrics {
		if metricsText, err = withMetrics(procs, dataDir); err != nil {
			return err
		}
	}
	stores := storeFiles(dataDir)
	// Refuse before touching anything when an earlier system still runs.
	if err := checkFree(procs, stores); err != nil {
		return err
	}
	if err := pki.EnsureDev(dir); err != nil {
		return fmt.Errorf("development PKI: %w", err)
	}
	first := emptyDataDir(dataDir)
	term := &lockedWriter{w: os.Stderr}
	for _, p := range procs {
		p.logPath = filepath.Join(dataDir, "logs", p.name+".log")
		p.term, p.log = term, log
		if first && p.name != "gateway" {
			p.initArgs = []string{"--init"}
		}
	}
	clientTLS, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		return err
	}

	sp := newSpawner()
	// Room for every exit a run can produce, so no waiter blocks on a send.
	exited := make(chan exit, len(procs)*(c.policy.limit+2))
	defer func() {
		// Stop in reverse order: the gateway first, the resolver last.
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(log)
		}
	}()
	for _, p := range procs {
		if err := p.start(sp, c.binDir, first, exited); err != nil {
			return err
		}
		if err := p.ready(ctx, clientTLS); err != nil {
			return fmt.Errorf("%s did not become healthy (see %s): %w", p.name, p.logPath, err)
		}
		log.Info("started", "service", p.name, "addr", p.addr, "pid", p.pid())
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

%s
Ctrl-C stops everything; data is kept for the next start.
`, c.gatewayAddr, c.gatewayAddr, dataDir, filepath.Join(dataDir, "logs"), envFile, metricsText)

	err = supervise(ctx, log, sp, c.binDir, clientTLS, c.policy, exited)
	if err == nil {
		fmt.Fprintln(os.Stderr, "\nstopping…")
	}
	return err
}

// storeFiles are the bbolt files the services keep in a data directory.
func storeFiles(dataDir string) []string {
	return []string{
		filepath.Join(dataDir, "secretstore.db"),
		filepath.Join(dataDir, "resolver.db"),
		filepath.Join(dataDir, "audit.db"),
	}
}

// emptyDataDir reports whether dataDir has never held a store: no store file
// and no manifest. Only then is a start a first start (--init); a data
// directory that lost a store must stop the service, not start it empty.
func emptyDataDir(dataDir string) bool {
	for _, f := range storeFiles(dataDir) {
		if !storeid.Fresh(dataDir, f) {
			return false
		}
	}
	return true
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
