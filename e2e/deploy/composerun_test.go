package deploy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ozsecrets/oz/e2e/harness"
)

// The compose file, run without Docker: the PKI script writes the pki
// "volume" (a folder) as the pki service would, then each service's binary
// starts with exactly the environment compose gives it — paths mapped to
// folders standing in for its volumes, service names to loopback ports — and
// the system must come up and answer through the gateway over mutual TLS.
// This proves the variables, the certificates and the keyring fit together;
// what it cannot prove is Docker itself (images, networks, subpath mounts).
func TestComposeServicesRunFromTheirEnvironment(t *testing.T) {
	for _, tool := range []string{"sh", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	// The first `docker compose up`, as deploy/README.md has it.
	p, err := loadCompose(composeFile(), "OZ_INIT=true")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	volume := func(name string) string { return filepath.Join(work, "volumes", name) }

	// The pki service: its script, with ozsecretstored on PATH as in its image.
	pkiSvc := p.Services["pki"]
	pkiEnv := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
	for k, v := range envOf(pkiSvc) {
		pkiEnv = append(pkiEnv, k+"="+v)
	}
	runPKI := func() {
		cmd := exec.Command(deployPath("pki", "oz-dev-pki.sh"), volume("pki"))
		cmd.Env = pkiEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("oz-dev-pki.sh: %v\n%s", err, out)
		}
	}
	runPKI()
	caFile := filepath.Join(volume("pki"), "ca", "ca.crt")
	before := readFile(t, filepath.Join(volume("pki"), "gateway", "tls.crt"))
	runPKI() // as at every `docker compose up`: nothing changes
	if !bytes.Equal(before, readFile(t, filepath.Join(volume("pki"), "gateway", "tls.crt"))) {
		t.Fatal("oz-dev-pki.sh replaced an existing certificate")
	}
	checkPKI(t, volume("pki"))

	// One loopback port per service.
	ports := map[string]string{}
	for name := range services {
		addr, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = addr
	}
	hostPath := func(s types.ServiceConfig, path string) string {
		m, ok := composeMountOf(s, path)
		if !ok {
			t.Fatalf("%s: %s is on no volume", s.Name, path)
		}
		dir := volume(m.Source)
		if m.Volume != nil && m.Volume.Subpath != "" {
			dir = filepath.Join(dir, m.Volume.Subpath)
		}
		return filepath.Join(dir, strings.TrimPrefix(path, m.Target))
	}
	addrRE := regexp.MustCompile(`^([a-z]*):(\d+)$`)
	translate := func(s types.ServiceConfig, v string) string {
		switch {
		case strings.HasPrefix(v, "/"):
			return hostPath(s, v)
		case strings.HasPrefix(v, "bolt:/"):
			return "bolt:" + hostPath(s, strings.TrimPrefix(v, "bolt:"))
		}
		if m := addrRE.FindStringSubmatch(v); m != nil {
			if m[1] == "" {
				return ports[s.Name]
			}
			if a, ok := ports[m[1]]; ok {
				return a
			}
		}
		return v
	}

	for _, name := range []string{"resolver", "audit", "secretstore", "gateway"} {
		s := p.Services[name]
		var env []string
		for k, v := range envOf(s) {
			env = append(env, k+"="+translate(s, v))
		}
		for _, v := range s.Volumes {
			if v.Source != "pki" {
				if err := os.MkdirAll(volume(v.Source), 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
		startProcess(t, filepath.Join(work, name+".log"), filepath.Join(binDir, services[name].bin), env, append([]string{}, s.Command...)...)
	}

	// Up: the gateway's /healthz, and each service's gRPC health over mutual TLS.
	gwCert := filepath.Join(volume("pki"), "gateway")
	clientTLS := loadClientTLS(t, filepath.Join(gwCert, "tls.crt"), filepath.Join(gwCert, "tls.key"), caFile)
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	gw := "https://" + ports["gateway"]
	waitFor(t, work, "the gateway's /healthz", func() error {
		resp, err := httpc.Get(gw + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
	for _, name := range []string{"resolver", "secretstore", "audit"} {
		waitFor(t, work, name+"'s gRPC health", func() error { return grpcHealth(ports[name], clientTLS) })
	}

	// The bootstrap token the resolver wrote on its volume works through the
	// gateway, for the resolver and for the secretstore (which authenticates
	// it through the resolver, by mutual TLS, and has loaded the keyring).
	tokenFile := hostPath(p.Services["resolver"], envOf(p.Services["resolver"])["OZ_BOOTSTRAP_TOKEN_FILE"])
	var token string
	waitFor(t, work, "the bootstrap token", func() error {
		b, err := os.ReadFile(tokenFile)
		token = strings.TrimSpace(string(b))
		return err
	})
	// The services start in any order, as compose starts them: one that
	// came up before the resolver reconnects to it within its backoff
	// (about a second), and meanwhile answers 503 "retry", as clients are
	// told to (the CLI retries it). So a 503 is retried here, for a while;
	// any other answer counts at once.
	for _, route := range []string{"/v1/caller", "/v1/secrets"} {
		var status string
		var body any
		waitFor(t, work, "GET "+route+" as the bootstrap admin, through the gateway", func() error {
			req, _ := http.NewRequest(http.MethodGet, gw+route, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := httpc.Do(req)
			if err != nil {
				return err
			}
			body = nil
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			status = resp.Status
			if resp.StatusCode == http.StatusServiceUnavailable {
				return fmt.Errorf("%s %v", resp.Status, body)
			}
			return nil
		})
		if status != "200 OK" {
			t.Errorf("GET %s as the bootstrap admin: %s %v\n%s", route, status, body, logs(work))
		} else {
			t.Logf("GET %s as the bootstrap admin, through the gateway: %s", route, status)
		}
	}
}

// checkPKI verifies what oz-dev-pki.sh wrote as the services will use it:
// each certificate chains to the CA, names its service, serves and
// authenticates clients, and matches its key; keys are private.
func checkPKI(t *testing.T, dir string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(dir, "ca", "ca.crt"))) {
		t.Fatal("ca.crt: no certificate")
	}
	for name := range services {
		d := filepath.Join(dir, name)
		pair, err := tls.LoadX509KeyPair(filepath.Join(d, "tls.crt"), filepath.Join(d, "tls.key"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if cert.Subject.CommonName != name {
			t.Errorf("%s: CN %q", name, cert.Subject.CommonName)
		}
		for _, host := range []string{name, name + ".oz.svc", "localhost", "127.0.0.1"} {
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s as %s: %v", name, host, err)
			}
		}
		if !bytes.Equal(readFile(t, filepath.Join(d, "ca.crt")), readFile(t, filepath.Join(dir, "ca", "ca.crt"))) {
			t.Errorf("%s/ca.crt is not the CA", name)
		}
		if fi, err := os.Stat(filepath.Join(d, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s/tls.key: want mode 0600 (%v)", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "keyring", "keyring.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring.json: want mode 0600 (%v)", err)
	}
}

func startProcess(t *testing.T, logPath, bin string, env []string, args ...string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func waitFor(t *testing.T, work, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v\n%s", what, err, logs(work))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logs(work string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(work, "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(f), data)
	}
	return b.String()
}

func loadClientTLS(t *testing.T, cert, key, ca string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, ca))
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13}
}

func grpcHealth(addr string, cfg *tls.Config) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s", resp.GetStatus())
	}
	return nil
}
