package egress_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/cli/internal/egress"
)

// canary is the bound value: it must reach the upstream server and never
// the agent, a log line or an error.
const canary = "sk-canary-Zq81xVw3pLr7Tn5Y"

// upstreamNames are the names the upstream test server's certificate
// covers; the test dialer sends every name to that one server.
var upstreamNames = []string{
	"api.example.test", "other.example.test", "metabase.example.test",
	"a.metabase.example.test", "x.y.metabase.example.test",
	"api.example.test.evil.test", "evil.test",
}

// seen is one request as the upstream server received it.
type seen struct {
	Method, Host, Path, RawQuery string
	Header                       http.Header
	Body                         string
}

type upstream struct {
	tlsSrv   *httptest.Server
	plainSrv *httptest.Server
	roots    *x509.CertPool

	release chan struct{} // ends a /sse response

	mu     sync.Mutex
	reqs   []seen
	routes map[string]http.HandlerFunc // see handle
}

// handle serves path with h instead of the echo (after recording the
// request).
func (u *upstream) handle(path string, h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.routes == nil {
		u.routes = map[string]http.HandlerFunc{}
	}
	u.routes[path] = h
}

func (u *upstream) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// echo records the request and answers with what it carried, so a test
// can check that a value coming back is masked.
func (u *upstream) echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{r.Method, r.Host, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
	route := u.routes[r.URL.Path]
	u.mu.Unlock()
	if route != nil {
		route(w, r)
		return
	}
	w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
	switch r.URL.Path {
	case "/redirect":
		http.Redirect(w, r, "https://other.example.test/landing", http.StatusFound)
		return
	case "/gzip": // ignores Accept-Encoding: identity
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprintf(zw, "auth=%s\n", r.Header.Get("Authorization"))
		zw.Close()
		return
	case "/sse": // one event, then wait for the test before ending
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", r.Header.Get("Authorization"))
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: done\n\n")
		return
	}
	fmt.Fprintf(w, "auth=%s\nkey=%s\nquery=%s\nbody=%s\n", r.Header.Get("Authorization"),
		r.Header.Get("X-Api-Key"), r.URL.RawQuery, body)
}

// newUpstream starts an HTTPS server with a certificate from its own CA
// (returned as roots) and a plain-HTTP server.
func newUpstream(t testing.TB) *upstream {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "upstream"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: upstreamNames, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{roots: x509.NewCertPool(), release: make(chan struct{}, 1)}
	u.roots.AddCert(caCert)
	u.tlsSrv = httptest.NewUnstartedServer(http.HandlerFunc(u.echo))
	u.tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	u.tlsSrv.StartTLS()
	t.Cleanup(u.tlsSrv.Close)
	u.plainSrv = httptest.NewServer(http.HandlerFunc(u.echo))
	t.Cleanup(u.plainSrv.Close)
	return u
}

// dial sends port 80 to the plain server and anything else to the TLS
// server, whatever the name: the test's stand-in for DNS.
func (u *upstream) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	to := u.tlsSrv.Listener.Addr().String()
	if strings.HasSuffix(addr, ":80") {
		to = u.plainSrv.Listener.Addr().String()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

type denied struct{ secret, host, reason string }

// env is one started proxy with its upstream, and what it logged and
// denied.
type env struct {
	up      *upstream
	proxy   *egress.Proxy
	ph      string // placeholder of the OPENAI_KEY binding
	caFile  string // the run CA, as the agent gets it
	logs    *syncBuffer
	mu      sync.Mutex
	denials []denied
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) lastDenial(t *testing.T) denied {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.denials) == 0 {
		t.Fatal("OnDenied was not called")
	}
	return e.denials[len(e.denials)-1]
}

func (e *env) denialCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.denials)
}

// newEnv starts a proxy with one binding, OPENAI_KEY (value canary) bound
// to api.example.test and *.metabase.example.test, plus mutate's changes.
func newEnv(t testing.TB, mutate func(*egress.Config)) *env {
	t.Helper()
	e := &env{up: newUpstream(t), ph: egress.NewPlaceholder(), logs: &syncBuffer{}}
	cfg := egress.Config{
		Bindings: []egress.Binding{{
			Name: "OPENAI_KEY", Placeholder: e.ph, Value: []byte(canary),
			Hosts: []string{"api.example.test", "*.metabase.example.test"},
		}},
		RootCAs:     e.up.roots,
		DialContext: e.up.dial,
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnDenied: func(secret, host, reason string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.denials = append(e.denials, denied{secret, host, reason})
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := egress.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		p.Close()
		for _, s := range []string{e.logs.String(), fmt.Sprint(e.denials)} {
			if strings.Contains(s, canary) {
				t.Errorf("the value leaked into logs or denials: %q", s)
			}
		}
	})
	e.proxy = p
	e.caFile = filepath.Join(t.TempDir(), "run-ca.pem")
	if err := os.WriteFile(e.caFile, p.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// client is the agent's Go client: through the proxy, trusting only the
// run CA.
func (e *env) client() *http.Client {
	pool := x509.NewCertPool()
	block, _ := pem.Decode(e.proxy.CACertPEM())
	c, _ := x509.ParseCertificate(block.Bytes)
	pool.AddCert(c)
	pu, _ := url.Parse(e.proxy.URL())
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(pu),
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			MaxIdleConnsPerHost: 64,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
}

// do sends req through the proxy and returns status and body.
func (e *env) do(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := e.client().Do(req)
	if err != nil {
		if strings.Contains(err.Error(), canary) {
			t.Errorf("client error holds the value: %v", err)
		}
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func newReq(t *testing.T, method, u, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
