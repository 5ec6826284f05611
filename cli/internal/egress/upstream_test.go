package egress_test

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/egress"
)

// corpProxy is a plain forward proxy, as a runner's network may require:
// CONNECT is spliced to the upstream's TLS server, an absolute-form
// request goes to its plain server. It records what it was asked and
// every byte that went through it.
type corpProxy struct {
	srv *httptest.Server
	up  *upstream

	mu     sync.Mutex
	asked  []string // "METHOD target auth"
	passed strings.Builder
}

func newCorpProxy(t *testing.T, up *upstream) *corpProxy {
	c := &corpProxy{up: up}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *corpProxy) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.asked = append(c.asked, r.Method+" "+r.Host+" "+r.Header.Get("Proxy-Authorization"))
	c.mu.Unlock()
	if r.Method != http.MethodConnect {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Host = c.up.plainSrv.Listener.Addr().String()
		out.Header.Del("Proxy-Authorization")
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	to, err := net.Dial("tcp", c.up.tlsSrv.Listener.Addr().String())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer to.Close()
	from, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer from.Close()
	io.WriteString(from, "HTTP/1.1 200 OK\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(to, io.TeeReader(from, c)); done <- struct{}{} }()
	go func() { io.Copy(from, io.TeeReader(to, c)); done <- struct{}{} }()
	<-done
}

// Write records bytes that passed through a tunnel.
func (c *corpProxy) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passed.Write(b)
}

// With an upstream proxy, the egress proxy reaches hosts through it: the
// upstream proxy is asked to CONNECT to the bound host, with its own
// credentials, and sees only TLS; the value still reaches the host.
func TestUpstreamProxy(t *testing.T) {
	var corp *corpProxy
	e := newEnv(t, func(c *egress.Config) {
		corp = newCorpProxy(t, newUpstream(t))
		c.DialContext = nil // the corporate proxy is on loopback; it maps the names
		c.RootCAs = corp.up.roots
		u, _ := url.Parse(corp.srv.URL)
		u.User = url.UserPassword("runner", "corp-pw")
		c.UpstreamProxy = http.ProxyURL(u)
	})
	up := corp.up // behind the corporate proxy (e.up is never reached)
	req := newReq(t, http.MethodGet, "https://api.example.test/v1/models", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	code, body, _ := e.do(t, req)
	if code != http.StatusOK || up.last(t).Header.Get("Authorization") != "Bearer "+canary {
		t.Fatalf("through the upstream proxy: %d %q; the host got %q", code, body, up.last(t).Header.Get("Authorization"))
	}
	if !strings.Contains(body, "auth=Bearer "+e.ph) {
		t.Errorf("echo not masked: %q", body)
	}
	code, _, _ = e.do(t, newReq(t, http.MethodGet, "http://other.example.test/plain", ""))
	if code != http.StatusOK || up.last(t).Path != "/plain" {
		t.Errorf("plain HTTP through the upstream proxy: %d", code)
	}

	corp.mu.Lock()
	defer corp.mu.Unlock()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("runner:corp-pw"))
	want := []string{"CONNECT api.example.test:443 " + auth, "GET other.example.test " + auth}
	if len(corp.asked) != 2 || corp.asked[0] != want[0] || corp.asked[1] != want[1] {
		t.Errorf("the upstream proxy was asked %q, want %q", corp.asked, want)
	}
	if strings.Contains(corp.passed.String(), canary) {
		t.Error("the value passed the upstream proxy in clear")
	}
	if corp.passed.Len() == 0 {
		t.Error("nothing passed through the upstream proxy's tunnel")
	}
}
