package runner

import (
	"net/http"
	"strings"
	"testing"
)

func TestUpstreamProxy(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	req := func(u string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		return r
	}
	for _, tt := range []struct {
		name   string
		flag   string
		getenv func(string) string
		// what a request to each URL goes through ("" direct)
		via  map[string]string
		said string
	}{
		{name: "nothing set", getenv: env(), via: map[string]string{"https://api.example.com/": ""}},
		{name: "runner's HTTPS_PROXY and NO_PROXY", getenv: env("HTTPS_PROXY", "http://u:secretpw@proxy.corp:3128", "NO_PROXY", ".internal.example.com"),
			via: map[string]string{
				"https://api.example.com/":          "http://u:secretpw@proxy.corp:3128",
				"https://git.internal.example.com/": "",
				"http://plain.example.com/":         "", // no HTTP_PROXY
			},
			said: "the runner's own HTTPS_PROXY http://u:xxxxx@proxy.corp:3128, NO_PROXY .internal.example.com"},
		{name: "lower case, no scheme", getenv: env("http_proxy", "proxy.corp:8080", "https_proxy", "proxy.corp:8080"),
			via:  map[string]string{"https://api.example.com/": "http://proxy.corp:8080", "http://plain.example.com/": "http://proxy.corp:8080"},
			said: "the runner's own https_proxy http://proxy.corp:8080, http_proxy http://proxy.corp:8080"},
		{name: "none overrides the environment", flag: "none", getenv: env("HTTPS_PROXY", "http://proxy.corp:3128"),
			via: map[string]string{"https://api.example.com/": ""}},
		{name: "flag overrides the environment", flag: "socks5://proxy.corp:1080", getenv: env("HTTPS_PROXY", "http://other:3128", "NO_PROXY", "*"),
			via:  map[string]string{"https://api.example.com/": "socks5://proxy.corp:1080", "http://plain.example.com/": "socks5://proxy.corp:1080"},
			said: "socks5://proxy.corp:1080"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pf, said, err := UpstreamProxy(tt.flag, tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if said != tt.said {
				t.Errorf("said %q, want %q", said, tt.said)
			}
			for u, want := range tt.via {
				got := ""
				if pf != nil {
					pu, err := pf(req(u))
					if err != nil {
						t.Fatal(err)
					}
					if pu != nil {
						got = pu.String()
					}
				}
				if got != want {
					t.Errorf("%s goes through %q, want %q", u, got, want)
				}
			}
		})
	}
}

// Bad URLs are refused, naming the flag or the variable and the rule, and
// never repeating the URL (it may hold a password).
func TestUpstreamProxyRefuses(t *testing.T) {
	for _, tt := range []struct {
		flag, envName, envVal, want string
	}{
		{flag: "ftp://u:pw-canary@proxy:21", want: "--egress-upstream-proxy: scheme must be http, https or socks5"},
		{flag: "http://u:pw-canary@", want: "--egress-upstream-proxy: no host"},
		{flag: "http://u:pw-canary@proxy:3128/path", want: "no path"},
		{flag: "http://u:pw-canary@proxy:3128:x%zz", want: "--egress-upstream-proxy: not a URL"},
		{envName: "HTTPS_PROXY", envVal: "ftp://u:pw-canary@proxy", want: "the runner's HTTPS_PROXY: scheme must be"},
	} {
		_, _, err := UpstreamProxy(tt.flag, func(k string) string {
			if k == tt.envName {
				return tt.envVal
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw-canary") {
			t.Errorf("UpstreamProxy(%q, %s=%q) = %v, want an error with %q and no password", tt.flag, tt.envName, tt.envVal, err, tt.want)
		}
	}
}
