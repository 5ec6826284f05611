package egress_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ozsecrets/oz/cli/internal/egress"
)

// checkSubstituted checks that the upstream got the value in the
// Authorization header and that the agent got only the placeholder back.
func (e *env) checkSubstituted(t *testing.T, agentOutput string) {
	t.Helper()
	got := e.up.last(t)
	if want := "Bearer " + canary; got.Header.Get("Authorization") != want {
		t.Errorf("upstream Authorization = %q, want %q", got.Header.Get("Authorization"), want)
	}
	if strings.Contains(agentOutput, canary) {
		t.Errorf("the agent saw the value: %q", agentOutput)
	}
	if !strings.Contains(agentOutput, "auth=Bearer "+e.ph) {
		t.Errorf("agent output = %q, want the echoed header with the placeholder", agentOutput)
	}
}

func TestGoClient(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, "GET", "https://api.example.test/v1/models", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	status, body, h := e.do(t, req)
	if status != 200 {
		t.Fatalf("status = %d, want 200; body %q", status, body)
	}
	e.checkSubstituted(t, body)
	if got, want := h.Get("X-Echo-Auth"), "Bearer "+e.ph; got != want {
		t.Errorf("response header X-Echo-Auth = %q, want %q", got, want)
	}
	if got := e.proxy.Stats()["api.example.test"]; got.Substitutions != 1 || got.Denials != 0 {
		t.Errorf("stats = %+v, want 1 substitution, 0 denials", got)
	}
}

func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	e := newEnv(t, nil)
	cmd := exec.Command(curl, "-sS", "--max-time", "20", "-H", "Authorization: Bearer "+e.ph,
		"https://api.example.test/v1/chat")
	cmd.Env = append(os.Environ(), "HTTPS_PROXY="+e.proxy.URL(), "CURL_CA_BUNDLE="+e.caFile, "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	e.checkSubstituted(t, string(out))
}

func TestPythonURLLib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	e := newEnv(t, nil)
	script := `
import os, urllib.request
req = urllib.request.Request("https://api.example.test/v1/chat",
    headers={"Authorization": "Bearer " + os.environ["OPENAI_KEY"]})
print(urllib.request.urlopen(req, timeout=20).read().decode())
`
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "HTTPS_PROXY="+e.proxy.URL(), "SSL_CERT_FILE="+e.caFile,
		"OPENAI_KEY="+e.ph, "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v: %s", err, out)
	}
	e.checkSubstituted(t, string(out))
}

func TestPythonRequests(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	if exec.Command(py, "-c", "import requests").Run() != nil {
		t.Skip("the python3 requests package is not installed")
	}
	e := newEnv(t, nil)
	script := `
import os, requests
r = requests.get("https://api.example.test/v1/chat", timeout=20,
    headers={"Authorization": "Bearer " + os.environ["OPENAI_KEY"]})
print(r.status_code, r.text)
`
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "HTTPS_PROXY="+e.proxy.URL(), "REQUESTS_CA_BUNDLE="+e.caFile,
		"OPENAI_KEY="+e.ph, "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 requests: %v: %s", err, out)
	}
	e.checkSubstituted(t, string(out))
}

// TestWhereSubstituted covers each place a placeholder can sit in a
// request to a bound host, with and without the binding's permission.
func TestWhereSubstituted(t *testing.T) {
	type tc struct {
		name       string
		allowQuery bool
		allowBody  bool
		value      string // instead of canary
		build      func(ph string) *http.Request
		wantStatus int
		check      func(t *testing.T, got seen)
	}
	mk := func(method, u, body string, hdr ...string) *http.Request {
		r, _ := http.NewRequest(method, u, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	cases := []tc{
		{name: "CustomHeader", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test/", "", "X-Api-Key", ph)
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if got.Header.Get("X-Api-Key") != canary {
				t.Errorf("X-Api-Key = %q, want the value", got.Header.Get("X-Api-Key"))
			}
		}},
		{name: "BasicAuthUserinfo", build: func(ph string) *http.Request {
			return mk("GET", "https://user:"+ph+"@api.example.test/", "")
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+canary))
			if got.Header.Get("Authorization") != want {
				t.Errorf("Authorization = %q, want %q", got.Header.Get("Authorization"), want)
			}
		}},
		{name: "WildcardHost", build: func(ph string) *http.Request {
			return mk("GET", "https://x.y.metabase.example.test/", "", "X-Api-Key", ph)
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if got.Header.Get("X-Api-Key") != canary {
				t.Errorf("X-Api-Key = %q, want the value", got.Header.Get("X-Api-Key"))
			}
		}},
		{name: "UpperCaseHost", build: func(ph string) *http.Request {
			return mk("GET", "https://API.EXAMPLE.TEST/", "", "X-Api-Key", ph)
		}, wantStatus: 200},
		{name: "QueryAllowed", allowQuery: true, build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test/?key="+ph, "")
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if got.RawQuery != "key="+canary {
				t.Errorf("query = %q, want the value", got.RawQuery)
			}
		}},
		{name: "QueryValueEscaped", allowQuery: true, value: "tok&admin=1#frag", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test/?key="+ph+"&x=1", "")
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if want := "key=tok%26admin%3D1%23frag&x=1"; got.RawQuery != want {
				t.Errorf("query = %q, want %q", got.RawQuery, want)
			}
		}},
		{name: "BodyAllowed", allowBody: true, build: func(ph string) *http.Request {
			return mk("POST", "https://api.example.test/", `{"key":"`+ph+`"}`)
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if got.Body != `{"key":"`+canary+`"}` {
				t.Errorf("body = %q, want the value", got.Body)
			}
		}},
		{name: "QueryNotAllowed", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test/?key="+ph, "")
		}, wantStatus: 403},
		{name: "BodyNotAllowed", build: func(ph string) *http.Request {
			return mk("POST", "https://api.example.test/", "key="+ph)
		}, wantStatus: 403},
		{name: "Path", allowQuery: true, allowBody: true, build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test/keys/"+ph, "")
		}, wantStatus: 403},
		{name: "UnboundHost", build: func(ph string) *http.Request {
			return mk("GET", "https://other.example.test/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "WildcardApex", build: func(ph string) *http.Request {
			return mk("GET", "https://metabase.example.test/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "SuffixTrick", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test.evil.test/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "TrailingDot", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test./", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "IPLiteral", build: func(ph string) *http.Request {
			return mk("GET", "https://127.0.0.1/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "OtherPort", build: func(ph string) *http.Request {
			return mk("GET", "https://api.example.test:8443/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "PlainHTTPBoundHost", build: func(ph string) *http.Request {
			return mk("GET", "http://api.example.test/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		{name: "PlainHTTPBoundHostNoPlaceholder", build: func(ph string) *http.Request {
			return mk("GET", "http://api.example.test/", "")
		}, wantStatus: 403},
		{name: "PlainHTTPUnboundHost", build: func(ph string) *http.Request {
			return mk("GET", "http://other.example.test/", "", "Authorization", "Bearer "+ph)
		}, wantStatus: 403},
		// Header names are canonicalised on the way in ("X-Oz-Ph-…"), so a
		// placeholder never survives in one, and is never substituted.
		{name: "HeaderName", build: func(ph string) *http.Request {
			r := mk("GET", "https://api.example.test/", "")
			r.Header["X-"+ph] = []string{"1"}
			return r
		}, wantStatus: 200, check: func(t *testing.T, got seen) {
			if s := fmt.Sprint(got.Header); strings.Contains(s, canary) {
				t.Errorf("upstream headers hold the value: %s", s)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *egress.Config) {
				cfg.Bindings[0].AllowQuery = c.allowQuery
				cfg.Bindings[0].AllowBody = c.allowBody
				if c.value != "" {
					cfg.Bindings[0].Value = []byte(c.value)
				}
			})
			status, body, _ := e.do(t, c.build(e.ph))
			if status != c.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", status, c.wantStatus, body)
			}
			if strings.Contains(body, canary) || c.value != "" && strings.Contains(body, url.QueryEscape(c.value)) {
				t.Errorf("the agent saw the value: %q", body)
			}
			if c.wantStatus == 403 {
				if n := e.up.count(); n != 0 {
					t.Errorf("upstream received %d requests, want 0", n)
				}
				d := e.lastDenial(t)
				if d.secret != "OPENAI_KEY" {
					t.Errorf("OnDenied secret = %q, want OPENAI_KEY", d.secret)
				}
				if !strings.Contains(body, "OPENAI_KEY") || !strings.Contains(body, d.host) {
					t.Errorf("403 body %q should name the secret and the host %q", body, d.host)
				}
				t.Logf("refused: %s", strings.TrimSpace(body))
				return
			}
			got := e.up.last(t)
			if c.check != nil {
				c.check(t, got)
			}
		})
	}
}

func TestUnboundHostWithoutPlaceholderPassesUnchanged(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, "POST", "https://other.example.test/p/a%2Fb?q=1&r=oz-ph-notours", "hello")
	req.Header.Set("Authorization", "Bearer other-token")
	req.Header.Set("Accept-Encoding", "gzip")
	status, body, _ := e.do(t, req)
	if status != 200 {
		t.Fatalf("status = %d, want 200: %q", status, body)
	}
	got := e.up.last(t)
	if got.Path != "/p/a/b" || got.RawQuery != "q=1&r=oz-ph-notours" || got.Body != "hello" ||
		got.Header.Get("Authorization") != "Bearer other-token" || got.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("upstream got %+v, want the request unchanged", got)
	}
	if e.denialCount() != 0 {
		t.Errorf("denials = %d, want 0", e.denialCount())
	}
}

func TestPlainHTTPUnboundHostPasses(t *testing.T) {
	e := newEnv(t, nil)
	status, body, _ := e.do(t, newReq(t, "GET", "http://other.example.test/hello", ""))
	if status != 200 || e.up.last(t).Path != "/hello" {
		t.Fatalf("status = %d, body %q; want 200 from upstream", status, body)
	}
}

// TestEncodedPlaceholders: only the literal placeholder is recognised; a
// percent-encoded, upper-cased or split one is ordinary text and the
// upstream receives it as such, never the value.
func TestEncodedPlaceholders(t *testing.T) {
	e := newEnv(t, func(cfg *egress.Config) { cfg.Bindings[0].AllowQuery = true })
	rest := strings.TrimPrefix(e.ph, egress.PlaceholderPrefix)
	for name, v := range map[string]string{
		"Percent": "%6Fz-ph-" + rest,
		"Upper":   strings.ToUpper(e.ph),
		"Split":   e.ph[:10] + " " + e.ph[10:],
		"Base64":  base64.StdEncoding.EncodeToString([]byte(e.ph)),
	} {
		t.Run(name, func(t *testing.T) {
			req := newReq(t, "GET", "https://api.example.test/", "")
			req.Header.Set("X-Api-Key", v)
			status, body, _ := e.do(t, req)
			if status != 200 {
				t.Fatalf("status = %d, want 200: %q", status, body)
			}
			if got := e.up.last(t).Header.Get("X-Api-Key"); got != v {
				t.Errorf("upstream X-Api-Key = %q, want %q unchanged", got, v)
			}
		})
	}
}

// TestHostHeaderMismatch: a request is judged by the CONNECT target, and
// one whose Host names another server is refused even without a
// placeholder (domain fronting).
func TestHostHeaderMismatch(t *testing.T) {
	e := newEnv(t, nil)
	for name, host := range map[string]string{"Unbound": "other.example.test", "Bound": "api.example.test"} {
		t.Run(name, func(t *testing.T) {
			target := "other.example.test"
			if host == target {
				target = "api.example.test"
			}
			req := newReq(t, "GET", "https://"+target+"/", "")
			req.Host = host
			req.Header.Set("Authorization", "Bearer "+e.ph)
			before := e.up.count()
			status, body, _ := e.do(t, req)
			if status != 403 {
				t.Fatalf("status = %d, want 403: %q", status, body)
			}
			if e.up.count() != before {
				t.Errorf("upstream received the request")
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, "GET", "https://api.example.test/redirect", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	status, _, h := e.do(t, req)
	if status != http.StatusFound || h.Get("Location") != "https://other.example.test/landing" {
		t.Fatalf("status = %d, Location %q; want the redirect relayed", status, h.Get("Location"))
	}
	n := e.up.count()
	// The agent following it with the same header is judged on its own.
	req = newReq(t, "GET", h.Get("Location"), "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	if status, _, _ := e.do(t, req); status != 403 {
		t.Errorf("follow-up to other host: status = %d, want 403", status)
	}
	if e.up.count() != n {
		t.Errorf("upstream received the follow-up")
	}
}

func TestAllowlist(t *testing.T) {
	e := newEnv(t, func(cfg *egress.Config) { cfg.Allow = []string{"*.metabase.example.test"} })
	// A CONNECT to an unlisted host is refused with 403, which Go's
	// client reports as an error.
	if _, err := e.client().Get("https://other.example.test/"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("unlisted host over CONNECT: err = %v, want Forbidden", err)
	}
	if status, _, _ := e.do(t, newReq(t, "GET", "http://other.example.test/", "")); status != 403 {
		t.Errorf("unlisted host over plain HTTP: status = %d, want 403", status)
	}
	if d := e.lastDenial(t); d.secret != "" || d.host != "other.example.test" {
		t.Errorf("denial = %+v, want no secret and host other.example.test", d)
	}
	if status, _, _ := e.do(t, newReq(t, "GET", "https://a.metabase.example.test/", "")); status != 200 {
		t.Errorf("listed host: status = %d, want 200", status)
	}
	if status, _, _ := e.do(t, newReq(t, "GET", "https://api.example.test/", "")); status != 200 {
		t.Errorf("bound host (allowed implicitly): status = %d, want 200", status)
	}
	if got := e.proxy.Stats()["other.example.test"].Denials; got != 2 {
		t.Errorf("denials for other.example.test = %d, want 2", got)
	}
}

func TestLargeBody(t *testing.T) {
	const max = 1 << 10
	big := strings.Repeat("x", 2*max)
	t.Run("PassesUnchanged", func(t *testing.T) {
		e := newEnv(t, func(cfg *egress.Config) { cfg.MaxBody = max })
		status, _, _ := e.do(t, newReq(t, "POST", "https://other.example.test/", big))
		if status != 200 || e.up.last(t).Body != big {
			t.Errorf("status = %d; want 200 and the body intact", status)
		}
	})
	t.Run("PlaceholderInPrefixToUnboundHost", func(t *testing.T) {
		e := newEnv(t, func(cfg *egress.Config) { cfg.MaxBody = max })
		status, _, _ := e.do(t, newReq(t, "POST", "https://other.example.test/", e.ph+big))
		if status != 403 {
			t.Errorf("status = %d, want 403", status)
		}
	})
	t.Run("SubstitutionNeedsWholeBody", func(t *testing.T) {
		e := newEnv(t, func(cfg *egress.Config) { cfg.MaxBody = max; cfg.Bindings[0].AllowBody = true })
		status, body, _ := e.do(t, newReq(t, "POST", "https://api.example.test/", e.ph+big))
		if status != http.StatusRequestEntityTooLarge || e.up.count() != 0 {
			t.Errorf("status = %d (%q), upstream got %d; want 413 and nothing sent", status, body, e.up.count())
		}
	})
}

// TestResponseMasking: a value in a response from a bound host comes back
// as the placeholder, however the body is chunked.
func TestResponseMaskingStreamed(t *testing.T) {
	e := newEnv(t, func(cfg *egress.Config) { cfg.Bindings[0].AllowBody = true })
	// The echo server writes the substituted body back; a long body
	// holding the value many times crosses many write boundaries.
	var sb strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&sb, "line %d %s|", i, e.ph)
	}
	status, body, _ := e.do(t, newReq(t, "POST", "https://api.example.test/", sb.String()))
	if status != 200 {
		t.Fatalf("status = %d", status)
	}
	if strings.Contains(body, canary) {
		t.Fatal("the value came back to the agent")
	}
	if got, want := strings.Count(body, e.ph), 2000; got != want {
		t.Errorf("placeholders in the response = %d, want %d", got, want)
	}
	if got := e.proxy.Stats()["api.example.test"].Substitutions; got != 2000 {
		t.Errorf("substitutions = %d, want 2000", got)
	}
}

func TestNewRejects(t *testing.T) {
	ph := egress.NewPlaceholder()
	ok := egress.Binding{Name: "K", Placeholder: ph, Value: []byte(canary), Hosts: []string{"api.example.test"}}
	for name, mutate := range map[string]func(*egress.Config){
		"NoName":         func(c *egress.Config) { c.Bindings[0].Name = "" },
		"BadPlaceholder": func(c *egress.Config) { c.Bindings[0].Placeholder = "oz-ph-short" },
		"ShortValue":     func(c *egress.Config) { c.Bindings[0].Value = []byte("abc") },
		"NoHosts":        func(c *egress.Config) { c.Bindings[0].Hosts = nil },
		"PortInPattern":  func(c *egress.Config) { c.Bindings[0].Hosts = []string{"api.example.test:443"} },
		"IPPattern":      func(c *egress.Config) { c.Bindings[0].Hosts = []string{"10.0.0.1"} },
		"BareWildcard":   func(c *egress.Config) { c.Bindings[0].Hosts = []string{"*.com"} },
		"InnerWildcard":  func(c *egress.Config) { c.Bindings[0].Hosts = []string{"api.*.com"} },
		"DupPlaceholder": func(c *egress.Config) { c.Bindings = append(c.Bindings, c.Bindings[0]) },
		"BadAllow":       func(c *egress.Config) { c.Allow = []string{"*"} },
		"NewlineInValue": func(c *egress.Config) { c.Bindings[0].Value = []byte(canary + "\r\nX-Evil: 1") },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := egress.Config{Bindings: []egress.Binding{ok}}
			mutate(&cfg)
			_, err := egress.New(cfg)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the value: %v", err)
			}
		})
	}
}

func TestBindingNeverPrintsValue(t *testing.T) {
	b := egress.Binding{Name: "K", Placeholder: egress.NewPlaceholder(), Value: []byte(canary), Hosts: []string{"a.example"}}
	for _, s := range []string{fmt.Sprint(b), fmt.Sprintf("%v %+v %#v %s", b, b, b, b)} {
		if strings.Contains(s, canary) || !strings.Contains(s, "K") {
			t.Errorf("printed binding = %q, want the name and no value", s)
		}
	}
}

// TestUpstreamErrorIsScrubbed: when the upstream cannot be reached after a
// substitution, the error (which holds the URL, with the value in its
// query) reaches the agent and the log with the placeholder instead.
func TestUpstreamErrorIsScrubbed(t *testing.T) {
	e := newEnv(t, func(cfg *egress.Config) {
		cfg.Bindings[0].AllowQuery = true
		cfg.DialContext = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no route to host")
		}
	})
	status, body, _ := e.do(t, newReq(t, "GET", "https://api.example.test/?key="+e.ph, ""))
	if status != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502: %q", status, body)
	}
	if strings.Contains(body, canary) || !strings.Contains(body, e.ph) {
		t.Errorf("502 body = %q, want the placeholder in place of the value", body)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "no route to host") {
		t.Errorf("logs = %q, want the upstream failure", logs)
	}
	// newEnv's cleanup checks the logs for the value.
}

func TestCloseLeaksNothing(t *testing.T) {
	up := newUpstream(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := &env{up: up}
	p, err := egress.New(egress.Config{
		Bindings: []egress.Binding{{Name: "K", Placeholder: egress.NewPlaceholder(), Value: []byte(canary),
			Hosts: []string{"api.example.test"}}},
		RootCAs: up.roots, DialContext: up.dial,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	e.proxy = p
	c := e.client()
	resp, err := c.Get("https://api.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The agent's keep-alive tunnel is still open: Close must end it.
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	c.CloseIdleConnections()
	up.tlsSrv.CloseClientConnections()
}

// TestEncodedResponseRefused: a bound host that answers with a content
// coding the proxy did not ask for cannot be masked, so it is not relayed.
func TestEncodedResponseRefused(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, "GET", "https://api.example.test/gzip", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	req.Header.Set("Accept-Encoding", "gzip")
	status, body, _ := e.do(t, req)
	if status != http.StatusBadGateway || !strings.Contains(body, "Content-Encoding") {
		t.Errorf("status = %d, body %q; want 502 naming Content-Encoding", status, body)
	}
	if got := e.up.last(t).Header.Get("Accept-Encoding"); got != "identity" {
		t.Errorf("upstream Accept-Encoding = %q, want identity", got)
	}
}

// TestStreamedResponse: an event stream reaches the agent event by event,
// masked, without waiting for the response to end.
func TestStreamedResponse(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, "GET", "https://api.example.test/sse", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	resp, err := e.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		got <- line
	}()
	var line string
	select { // the server holds the response open for 10 s
	case line = <-got:
	case <-time.After(5 * time.Second):
		e.up.release <- struct{}{}
		t.Fatal("the first event did not arrive while the response was still open")
	}
	if want := "data: Bearer " + e.ph + "\n"; line != want {
		t.Errorf("first event = %q, want %q", line, want)
	}
	e.up.release <- struct{}{}
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "data: done") {
		t.Errorf("rest = %q, want the second event", rest)
	}
}

// TestProxyCredentials: only a client holding the proxy's credentials (the
// agent, from its HTTPS_PROXY) gets through; another process that finds
// the port gets 407 and reaches nothing, and is neither counted nor
// reported.
func TestProxyCredentials(t *testing.T) {
	e := newEnv(t, nil)
	u, err := url.Parse(e.proxy.URL())
	if err != nil || u.User.Username() != "oz" {
		t.Fatalf("URL() = %q, want credentials in it", e.proxy.URL())
	}
	for name, proxy := range map[string]*url.URL{
		"no credentials":   {Scheme: "http", Host: e.proxy.Addr()},
		"another password": {Scheme: "http", Host: e.proxy.Addr(), User: url.UserPassword("oz", "guessed")},
	} {
		for _, target := range []string{"https://api.example.test/v1/models", "http://api.example.test/v1/models"} {
			c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 10 * time.Second}
			req := newReq(t, "GET", target, "")
			req.Header.Set("Authorization", "Bearer "+e.ph)
			resp, err := c.Do(req)
			switch {
			case err == nil:
				resp.Body.Close()
				if resp.StatusCode != http.StatusProxyAuthRequired {
					t.Errorf("%s, %s: status %d, want 407", name, target, resp.StatusCode)
				}
			case !strings.Contains(err.Error(), "Proxy Authentication Required"):
				t.Errorf("%s, %s: %v, want 407", name, target, err)
			}
		}
	}
	if n := e.up.count(); n != 0 {
		t.Errorf("upstream received %d requests from clients without the proxy's credentials", n)
	}
	if n := e.denialCount(); n != 0 || len(e.proxy.Stats()) != 0 {
		t.Errorf("407s were counted or reported: %d denials, stats %v", n, e.proxy.Stats())
	}
}

// A bound host that reflects the value into a header's name: the header
// is dropped (read in canonical case, the name holds the value in a form
// masking would miss).
func TestResponseHeaderNameMasked(t *testing.T) {
	e := newEnv(t, nil)
	e.up.handle("/name", func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header()["X-"+auth] = []string{"1"} // as written, not canonicalised
	})
	req := newReq(t, http.MethodGet, "https://api.example.test/name", "")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	code, _, h := e.do(t, req)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for k := range h {
		if strings.Contains(strings.ToLower(k), strings.ToLower(canary)) {
			t.Errorf("header name %q holds the value", k)
		}
	}
	if h.Get("Date") == "" {
		t.Errorf("the other headers were dropped too: %v", h)
	}
}
