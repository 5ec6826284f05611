package browser_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ozsecrets/oz/e2e/harness"
	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/web"
)

// env is what every test of the package shares: one running system with a
// bootstrapped team, the recording gateway in front of it, and one browser.
type env struct {
	sys *harness.System
	gw  *recordingGateway

	teams atomic.Int32 // teams made by newTeam

	// gatewayCert is the certificate the test gateways serve (the system's
	// gateway certificate; Chromium accepts it by its key's hash).
	gatewayCert tls.Certificate

	browser context.Context // the browser's first tab; NewContext of it opens more
}

var shared struct {
	once     sync.Once
	env      *env
	err      error
	cleanups []func()
}

// setup starts the shared environment on first use, and fails the test if
// it could not be started.
func setup(t *testing.T) *env {
	t.Helper()
	shared.once.Do(func() { shared.env, shared.err = start() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

// shutdown stops what setup started, last first.
func shutdown() {
	for i := len(shared.cleanups) - 1; i >= 0; i-- {
		shared.cleanups[i]()
	}
}

func onShutdown(f func()) { shared.cleanups = append(shared.cleanups, f) }

// chromiumPath is Debian's Chromium, or $OZ_CHROMIUM.
func chromiumPath() (string, error) {
	path := "/usr/bin/chromium"
	if p := os.Getenv("OZ_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no Chromium at %s (%v): the browser tests need Debian's chromium: "+
			"install it with `apt-get install -y chromium` (.ci/run does), or set OZ_CHROMIUM to a Chromium binary", path, err)
	}
	return path, nil
}

func start() (*env, error) {
	chromium, err := chromiumPath()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "oz-browser-")
	if err != nil {
		return nil, err
	}
	onShutdown(func() { os.RemoveAll(tmp) })

	sys, err := harness.Start(binDir, filepath.Join(tmp, "data"))
	if err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	onShutdown(func() { _ = sys.Stop() })
	e := &env{sys: sys}

	pki := filepath.Join(sys.DataDir, "pki")
	e.gatewayCert, err = tls.LoadX509KeyPair(filepath.Join(pki, "gateway.pem"), filepath.Join(pki, "gateway-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("gateway certificate: %w", err)
	}
	if e.gw, err = startRecordingGateway(sys, e.gatewayCert); err != nil {
		return nil, err
	}
	onShutdown(e.gw.stop)

	if e.browser, err = startBrowser(chromium, filepath.Join(tmp, "profile"), e.gatewayCert); err != nil {
		return nil, err
	}
	return e, nil
}

// team is a team with an admin and a member, for one test.
type team struct {
	id               string // "acme", then "acme-2"… (so that -count=N works on one system)
	alice, bob       string // user ids: the admin and the member
	aliceTok, bobTok string // their bearer tokens
	suffix           string // "", "-2"…: for other names that must be unique
}

// newTeam makes a team of its own for the calling test: acme, with alice
// (admin) and bob (member), the first time; acme-2 with alice-2 and bob-2
// the next, and so on.
func (e *env) newTeam(t *testing.T) team {
	t.Helper()
	suffix := ""
	if n := e.teams.Add(1); n > 1 {
		suffix = fmt.Sprintf("-%d", n)
	}
	tm := team{id: "acme" + suffix, alice: "alice" + suffix, bob: "bob" + suffix, suffix: suffix}
	e.ozOK(t, e.sys.AdminToken, "", "admin", "team", "create", tm.id)
	e.ozOK(t, e.sys.AdminToken, "", "admin", "user", "create", tm.alice, "--team", tm.id, "--role", "admin")
	e.ozOK(t, e.sys.AdminToken, "", "admin", "user", "create", tm.bob, "--team", tm.id, "--role", "member")
	tm.aliceTok = strings.TrimSpace(e.ozOK(t, e.sys.AdminToken, "", "admin", "token", "create", "--user", tm.alice))
	tm.bobTok = strings.TrimSpace(e.ozOK(t, e.sys.AdminToken, "", "admin", "token", "create", "--user", tm.bob))
	return tm
}

// oz runs the CLI and returns its standard output, or an error with its
// standard error when it exits non-zero.
func (e *env) oz(token, stdin string, extraEnv []string, args ...string) (string, error) {
	res, err := e.sys.OZ(token, []byte(stdin), extraEnv, args...)
	if err != nil {
		return "", fmt.Errorf("oz %v: %w", args, err)
	}
	if res.Code != 0 {
		return res.Stdout, fmt.Errorf("oz %v: exit %d: %s", args, res.Code, res.Stderr)
	}
	return res.Stdout, nil
}

// ozOK is oz, failing the test on error.
func (e *env) ozOK(t *testing.T, token, stdin string, args ...string) string {
	t.Helper()
	out, err := e.oz(token, stdin, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startBrowser runs Chromium headless with a fresh profile, accepting the
// gateway's certificate by the hash of its public key (and nothing else it
// could not verify).
func startBrowser(path, profile string, cert tls.Certificate) (context.Context, error) {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	var output bytes.Buffer
	var mu sync.Mutex
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return output.Write(p)
		})),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	onShutdown(func() { cancel(); allocCancel() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("start chromium %s: %w\n%s", path, err, output.String())
	}
	return ctx, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// observed is one REST request as the gateway received it.
type observed struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// recordingGateway is the gateway, built in-process with edge.New and
// pointed at the system's backends, with a request observer: the tests
// read what reached it.
type recordingGateway struct {
	URL  string
	stop func()

	mu   sync.Mutex
	seen []observed
}

func startRecordingGateway(sys *harness.System, cert tls.Certificate) (*recordingGateway, error) {
	cas, err := sys.CAPool()
	if err != nil {
		return nil, err
	}
	app, err := web.New()
	if err != nil {
		return nil, err
	}
	g := &recordingGateway{}
	srv, err := edge.New(edge.Config{
		Certificate: cert,
		BackendCAs:  cas,
		Backends: map[string]string{
			edge.SecretStore: sys.Ports["secretstore"],
			edge.Resolver:    sys.Ports["resolver"],
			edge.Audit:       sys.Ports["audit"],
		},
		WebApp: app,
		ObserveREST: func(r *http.Request, body []byte) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.seen = append(g.seen, observed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		},
	})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	g.URL = "https://" + l.Addr().String()
	g.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
		srv.Close()
	}
	return g, nil
}

// requests returns the observed requests with that method and path.
func (g *recordingGateway) requests(method, path string) []observed {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []observed
	for _, o := range g.seen {
		if o.Method == method && o.Path == path {
			out = append(out, o)
		}
	}
	return out
}

// all returns every observed request.
func (g *recordingGateway) all() []observed {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]observed(nil), g.seen...)
}

var errNoRequest = errors.New("no such request reached the gateway")
