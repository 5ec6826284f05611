// Package egress is the runner's egress proxy for host-bound secrets.
//
// The agent of a run never holds a host-bound secret's value: its
// variable holds a placeholder (NewPlaceholder), and the agent's HTTP
// clients go through a Proxy (HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point
// at Proxy.Addr; SSL_CERT_FILE and friends at a file holding
// Proxy.CACertPEM). The proxy terminates each CONNECT tunnel with a
// certificate for the tunnel's target signed by a per-run CA that lives
// only in its memory, reads the HTTP/1.1 or HTTP/2 requests inside, and
// forwards each over a fresh TLS connection verified against
// Config.RootCAs.
//
// On the way out, a placeholder is replaced by its value only where its
// Binding allows: a request over TLS to port 443 of a host matching one
// of the binding's patterns (hostbind.Match, judged by the CONNECT target,
// never by a Host header), in a header value (and in the query string or
// the body when the binding says so). A placeholder anywhere else refuses
// the whole request with 403 and a plain-text reason, and Config.OnDenied
// hears of it. A request without placeholders passes unchanged (unless
// Config.Allow restricts egress). On the way back, a response from a
// bound host has every occurrence of the values bound to it replaced by
// their placeholders, in headers and body, before the agent reads it.
// A WebSocket's handshake is judged like any request, and its messages
// from a bound host are masked the same way (websocket.go); so are a gRPC
// call's metadata and messages (grpc.go).
//
// Only the literal placeholder is recognised (and, in an Authorization
// header of scheme Basic, the literal placeholder inside the decoded
// credentials): a percent-encoded, base64-encoded, case-changed or split
// placeholder is ordinary text, forwarded as is and never substituted.
//
// Values never appear in a log line, an error or a response to the
// agent: everything the proxy logs or returns passes through a scrubber
// that turns values back into placeholders.
//
// The runner wires it like this:
//
//	ph := egress.NewPlaceholder() // the agent's OPENAI_API_KEY
//	p, err := egress.New(egress.Config{
//		Bindings: []egress.Binding{{Name: "OPENAI_API_KEY", Placeholder: ph, Value: value,
//			Hosts: []string{"api.openai.com"}}},
//		Allow:    egressAllow, // --egress-allow, may be empty
//		OnDenied: func(secret, host, reason string) { /* audit run.egress_denied */ },
//	})
//	// handle err (it names the binding and the rule), then:
//	p.Start()
//	defer p.Close()
//	// agent env: HTTP(S)_PROXY/ALL_PROXY=p.URL(), SSL_CERT_FILE & co = a file of p.CACertPEM()
//	// when the run ends: p.Stats() for the run record
package egress

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
)

// Defaults for the zero values of Config fields.
const (
	DefaultMaxBody    = 1 << 20
	DefaultCAValidity = 24 * time.Hour
)

// Config configures a Proxy. Only Bindings is usually set; the rest have
// safe defaults.
type Config struct {
	// Bindings are the run's host-bound secrets. Their placeholders must be
	// distinct.
	Bindings []Binding

	// Allow, when not empty, restricts all egress to hosts matching one of
	// these patterns (see hostbind.ValidatePattern) on any port; every other
	// request is refused with 403, placeholder or not. The hosts of
	// Bindings are allowed implicitly.
	Allow []string

	// RootCAs verifies upstream servers. Nil means the system roots, which
	// on Linux include SSL_CERT_FILE and SSL_CERT_DIR of the runner's own
	// environment.
	RootCAs *x509.CertPool

	// OnDenied, if set, is called for every refused request with the
	// secret's name (empty when the refusal is not about a secret: the
	// allowlist, a mismatched Host header), the target host and the
	// reason. It never receives a value. It runs on the request's
	// goroutine and may be called concurrently.
	OnDenied func(secret, host, reason string)

	// Logger receives denials and upstream failures, never a value. Nil
	// discards.
	Logger *slog.Logger

	// MaxBody is how many bytes of a request body the proxy reads and
	// scans before forwarding (default DefaultMaxBody, 1 MiB). A longer
	// body is forwarded unchanged: its first MaxBody bytes are scanned and
	// a placeholder there that the request may not carry refuses it, one
	// that a binding would substitute in the body refuses it with 413
	// (substitution needs the whole body); bytes after MaxBody are not
	// scanned and never substituted.
	MaxBody int64

	// CAValidity is how long the run CA and its leaves are valid (default
	// DefaultCAValidity, 24 hours).
	CAValidity time.Duration

	// DialContext opens upstream connections (default a net.Dialer). Tests
	// point bound names at a local server with it; TLS is still verified
	// against the name the agent asked for.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// UpstreamProxy, if set, names the proxy through which the egress
	// proxy reaches a request's host, or nil for direct, as
	// http.Transport.Proxy does (an http:// or https:// proxy gets CONNECT
	// for https, socks5:// is supported too). Nil: always direct. It sees
	// where requests go, never a value: a value travels only inside TLS
	// verified against RootCAs for the bound host.
	UpstreamProxy func(*http.Request) (*url.URL, error)
}

// HostStats counts what the proxy did for one host.
type HostStats struct {
	Substitutions int // placeholders replaced by values in forwarded requests
	Denials       int // requests refused
}

// Proxy is the egress proxy of one run. Create it with New, then Start;
// Close it when the run ends. Its methods are safe for concurrent use.
type Proxy struct {
	cfg      Config
	bindings []*binding
	ca       *runCA
	log      *slog.Logger
	// user and password are the proxy's credentials, in URL: only the
	// agent, whose environment holds them, may use the proxy. Another
	// process on the machine (another run's agent) reaches the port but
	// not past it: neither its allowlist nor its substitutions.
	user, password string

	transport *http.Transport
	outer     *http.Server
	inner     *http.Server
	tunnels   *chanListener
	ln        net.Listener

	scrubMasks []maskPair // every binding's (scrub)

	mu       sync.Mutex
	stats    map[string]*HostStats
	upgraded map[net.Conn]struct{} // WebSocket connections taken over, closed by Close
	closed   bool
}

// binding is a validated Binding, copied so the caller's slices can change.
type binding struct {
	Binding
}

func (b *binding) matches(host string) bool {
	for _, p := range b.Hosts {
		if hostbind.Match(p, host) {
			return true
		}
	}
	return false
}

// New validates cfg and creates the run CA. It returns an error naming the
// binding and the rule for an invalid binding or pattern; the error never
// holds a value.
func New(cfg Config) (*Proxy, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.CAValidity <= 0 {
		cfg.CAValidity = DefaultCAValidity
	}
	if cfg.DialContext == nil {
		cfg.DialContext = (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	}
	p := &Proxy{cfg: cfg, stats: map[string]*HostStats{}, log: cfg.Logger, user: "oz", password: randomToken()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]string{}
	for _, b := range cfg.Bindings {
		if err := b.validate(); err != nil {
			return nil, err
		}
		if other, dup := seen[b.Placeholder]; dup {
			return nil, fmt.Errorf("binding %q: placeholder already used by binding %q", b.Name, other)
		}
		seen[b.Placeholder] = b.Name
		b.Value = append([]byte(nil), b.Value...)
		b.Hosts = append([]string(nil), b.Hosts...)
		p.bindings = append(p.bindings, &binding{b})
		p.scrubMasks = append(p.scrubMasks, p.bindings[len(p.bindings)-1].masks()...)
	}
	for _, a := range cfg.Allow {
		if err := hostbind.ValidatePattern(a); err != nil {
			return nil, fmt.Errorf("allow: %w", err)
		}
	}
	for _, b := range p.bindings {
		for _, v := range p.bindings {
			if b != v && strings.Contains(string(b.Value), v.Placeholder) {
				return nil, fmt.Errorf("binding %q: value must not contain the placeholder of binding %q", b.Name, v.Name)
			}
		}
	}
	ca, err := newRunCA(time.Now(), cfg.CAValidity)
	if err != nil {
		return nil, err
	}
	p.ca = ca
	p.transport = &http.Transport{
		Proxy:               cfg.UpstreamProxy, // never read from the environment here
		DialContext:         cfg.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		DisableCompression:  true, // pass Accept-Encoding through as the agent wrote it
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	errLog := log.New(scrubWriter{p}, "", 0)
	p.outer = &http.Server{Handler: http.HandlerFunc(p.serveOuter), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	p.inner = &http.Server{
		Handler:           http.HandlerFunc(p.serveTunnel),
		ErrorLog:          errLog,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				if t, ok := tc.NetConn().(*tunnelConn); ok {
					return context.WithValue(ctx, targetKey{}, t.target)
				}
			}
			return ctx
		},
	}
	return p, nil
}

// Start listens on a random port of 127.0.0.1 and serves in the
// background until Close.
func (p *Proxy) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for egress proxy: %w", err)
	}
	p.ln = ln
	p.tunnels = newChanListener(ln.Addr())
	go p.outer.Serve(ln)        //nolint:errcheck // returns ErrServerClosed on Close
	go p.inner.Serve(p.tunnels) //nolint:errcheck // likewise
	return nil
}

// Addr is the proxy's address (host:port) once started; the agent's
// HTTP_PROXY is "http://" + Addr().
func (p *Proxy) Addr() string {
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// URL is the value for the agent's HTTP_PROXY, HTTPS_PROXY and ALL_PROXY:
// the address with the proxy's credentials, which HTTP clients send as
// Proxy-Authorization (Basic). A request without them gets 407.
func (p *Proxy) URL() string { return "http://" + p.user + ":" + p.password + "@" + p.Addr() }

// CACertPEM is the run CA's certificate, PEM-encoded, for the agent's
// trust store (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE,
// CURL_CA_BUNDLE). The CA's private key is never exported.
func (p *Proxy) CACertPEM() []byte { return p.ca.certPEM() }

// Stats returns the counts per host (lower-cased, without port) so far.
func (p *Proxy) Stats() map[string]HostStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]HostStats, len(p.stats))
	for h, s := range p.stats {
		out[h] = *s
	}
	return out
}

// Close stops the proxy and closes every connection, tunnels included.
func (p *Proxy) Close() error {
	var errs []error
	if p.ln != nil {
		errs = append(errs, p.outer.Close(), p.tunnels.Close())
	}
	errs = append(errs, p.inner.Close())
	p.closeUpgraded()
	p.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

func (p *Proxy) count(host string, subs, denials int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats[host]
	if s == nil {
		s = &HostStats{}
		p.stats[host] = s
	}
	s.Substitutions += subs
	s.Denials += denials
}

// scrub replaces every value in s by its placeholder. Everything the
// proxy logs or sends to the agent about an upstream goes through it.
func (p *Proxy) scrub(s string) string {
	return maskString(p.scrubMasks, s)
}

type scrubWriter struct{ p *Proxy }

func (w scrubWriter) Write(b []byte) (int, error) {
	w.p.log.Warn(strings.TrimSpace(w.p.scrub(string(b))))
	return len(b), nil
}

// target is where a request goes: the CONNECT target for a tunnel, the
// URL's host for plain HTTP.
type target struct {
	host string // as the agent wrote it
	port string
	tls  bool
}

type targetKey struct{}

// serveOuter handles what the agent sends to the proxy's port: CONNECT,
// or a plain-HTTP request in absolute form.
func (p *Proxy) serveOuter(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(r) {
		// Not counted or reported: whoever sent it is not the run's agent,
		// and could otherwise fill the run's audit.
		p.log.Info("egress proxy: request without the proxy's credentials", "method", r.Method)
		w.Header().Set("Proxy-Authenticate", `Basic realm="oz egress proxy"`)
		http.Error(w, "oz egress proxy: proxy credentials required: use the proxy URL of HTTPS_PROXY as given, user and password included", http.StatusProxyAuthRequired)
		return
	}
	switch {
	case r.Method == http.MethodConnect:
		p.connect(w, r)
	case r.URL.IsAbs() && strings.EqualFold(r.URL.Scheme, "http"):
		port := r.URL.Port()
		if port == "" {
			port = "80"
		}
		p.forward(w, r, target{host: r.URL.Hostname(), port: port})
	default:
		http.Error(w, "oz egress proxy: send an absolute http:// URL, or CONNECT for https", http.StatusBadRequest)
	}
}

// authorized reports whether r carries the proxy's credentials.
func (p *Proxy) authorized(r *http.Request) bool {
	scheme, creds, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creds))
	if err != nil {
		return false
	}
	want := p.user + ":" + p.password
	return subtle.ConstantTimeCompare(raw, []byte(want)) == 1
}

// randomToken is 32 random characters of the placeholder alphabet (160
// bits): URL-safe as a password.
func randomToken() string {
	return strings.TrimPrefix(NewPlaceholder(), PlaceholderPrefix)
}

// connect checks a CONNECT request, then hands the connection, wrapped in
// TLS with a leaf for the target, to the inner server.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || host == "" || port == "" {
		http.Error(w, "oz egress proxy: CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	t := target{host: host, port: port, tls: true}
	lhost := strings.ToLower(host)
	if !p.allowed(lhost) {
		p.deny(w, lhost, "", "host is not in the egress allowlist")
		return
	}
	// A placeholder in the CONNECT request itself goes nowhere useful.
	j := &judge{p: p, t: t, host: lhost}
	if _, d := j.sub("CONNECT request", r.Host+" "+headerText(r.Header), never); d != nil {
		p.deny(w, lhost, d.secret, d.reason)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "oz egress proxy: cannot take over the connection", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	tc := &tunnelConn{Conn: conn, r: rw.Reader, target: t}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}, // HTTP/2 for gRPC and clients that prefer it
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// The request is judged by the CONNECT target; a client that
			// names another server in SNI is confused or probing.
			// Clients drop a trailing dot from SNI, and so does the leaf.
			name := strings.TrimSuffix(lhost, ".")
			if hello.ServerName != "" && !strings.EqualFold(hello.ServerName, name) {
				return nil, fmt.Errorf("TLS server name %q differs from CONNECT target %q", hello.ServerName, host)
			}
			return p.ca.leaf(name)
		},
	}
	if !p.tunnels.push(tls.Server(tc, cfg)) {
		conn.Close()
	}
}

// headerText joins header names and values for scanning.
func headerText(h http.Header) string {
	var b strings.Builder
	for k, vs := range h {
		b.WriteString(k)
		for _, v := range vs {
			b.WriteByte(' ')
			b.WriteString(v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// serveTunnel handles a request read inside a CONNECT tunnel.
func (p *Proxy) serveTunnel(w http.ResponseWriter, r *http.Request) {
	t, ok := r.Context().Value(targetKey{}).(target)
	if !ok {
		http.Error(w, "oz egress proxy: no tunnel target", http.StatusInternalServerError)
		return
	}
	p.forward(w, r, t)
}

func (p *Proxy) allowed(host string) bool {
	if len(p.cfg.Allow) == 0 {
		return true
	}
	for _, a := range p.cfg.Allow {
		if hostbind.Match(a, host) {
			return true
		}
	}
	for _, b := range p.bindings {
		if b.matches(host) {
			return true
		}
	}
	return false
}

// deny refuses a request with 403 and a reason for the agent, counts it,
// logs it and tells OnDenied.
func (p *Proxy) deny(w http.ResponseWriter, host, secret, reason string) {
	p.refused(host, secret, reason)
	msg := fmt.Sprintf("oz egress proxy: refused request to %s: %s\n", host, reason)
	if secret != "" {
		msg = fmt.Sprintf("oz egress proxy: refused request to %s: secret %q: %s\n", host, secret, reason)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, msg) //nolint:errcheck // the agent may be gone
}

// refused counts a refusal, logs it and tells OnDenied.
func (p *Proxy) refused(host, secret, reason string) {
	p.count(host, 0, 1)
	p.log.Info("egress denied", "secret", secret, "host", host, "reason", reason)
	if p.cfg.OnDenied != nil {
		p.cfg.OnDenied(secret, host, reason)
	}
}

// tunnelConn is a hijacked CONNECT connection: bytes the server already
// buffered come first, and it remembers the tunnel's target.
type tunnelConn struct {
	net.Conn
	r      *bufio.Reader
	target target
}

func (c *tunnelConn) Read(b []byte) (int, error) {
	if c.r != nil && c.r.Buffered() > 0 {
		return c.r.Read(b)
	}
	return c.Conn.Read(b)
}

// chanListener is a net.Listener fed with tunnel connections.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
