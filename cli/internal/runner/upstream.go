package runner

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// UpstreamNone is the --egress-upstream-proxy value for going direct
// whatever the runner's environment says.
const UpstreamNone = "none"

// UpstreamProxy says how a run's egress proxy reaches the world. With flag
// empty, the way the runner itself does: its own HTTPS_PROXY, HTTP_PROXY
// and NO_PROXY (or their lower-case forms, as curl and Go read them), so
// that a runner on a network whose egress goes through a proxy keeps its
// agents working when they get the egress proxy in front. With flag
// UpstreamNone, direct. Otherwise flag is the proxy's URL
// (http://[user:password@]host:port, https:// or socks5://) for every
// request.
//
// It returns nil when direct, and a line for people that names the proxy
// without its password ("" when direct).
func UpstreamProxy(flag string, getenv func(string) string) (func(*http.Request) (*url.URL, error), string, error) {
	switch flag {
	case UpstreamNone:
		return nil, "", nil
	case "":
		first := func(names ...string) (string, string) {
			for _, n := range names {
				if v := getenv(n); v != "" {
					return n, v
				}
			}
			return "", ""
		}
		httpsName, httpsVal := first("HTTPS_PROXY", "https_proxy")
		httpName, httpVal := first("HTTP_PROXY", "http_proxy")
		_, noProxy := first("NO_PROXY", "no_proxy")
		if httpsVal == "" && httpVal == "" {
			return nil, "", nil
		}
		var said []string
		for _, nv := range [][2]string{{httpsName, httpsVal}, {httpName, httpVal}} {
			if nv[1] == "" {
				continue
			}
			u, err := parseUpstream(nv[1])
			if err != nil {
				return nil, "", fmt.Errorf("the runner's %s: %w (or choose with --egress-upstream-proxy URL, or %s)", nv[0], err, UpstreamNone)
			}
			said = append(said, nv[0]+" "+u.Redacted())
		}
		if noProxy != "" {
			said = append(said, "NO_PROXY "+noProxy)
		}
		pf := (&httpproxy.Config{HTTPProxy: httpVal, HTTPSProxy: httpsVal, NoProxy: noProxy}).ProxyFunc()
		return func(r *http.Request) (*url.URL, error) { return pf(r.URL) },
			"the runner's own " + strings.Join(said, ", "), nil
	}
	u, err := parseUpstream(flag)
	if err != nil {
		return nil, "", fmt.Errorf("--egress-upstream-proxy: %w", err)
	}
	return http.ProxyURL(u), u.Redacted(), nil
}

// parseUpstream checks a proxy URL. Its errors never repeat the URL: it
// may hold a password.
func parseUpstream(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s // as curl and Go read proxy.example.com:3128
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL; want http://[user:password@]host:port")
	}
	switch u.Scheme {
	case "http", "https", "socks5":
	default:
		return nil, fmt.Errorf("scheme must be http, https or socks5, got %q; want http://[user:password@]host:port", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("no host; want %s://[user:password@]host:port", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("a proxy URL has no path, query or fragment; want %s://[user:password@]host:port", u.Scheme)
	}
	return u, nil
}
