package runner

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/ozsecrets/oz/lib/hostbind"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/egress"
)

// A run's egress (DESIGN §5.6): when a run has host-bound secrets, or the
// runner restricts egress (--egress-allow), the agent talks to the world
// through the runner's egress proxy (package egress), which lives in this
// process, so that bound values exist only in the runner's memory. The
// agent gets placeholders in their place, the proxy's address in its proxy
// variables, and the run CA's certificate in its trust variables.

// EgressConfig configures StartEgress.
type EgressConfig struct {
	// Allow, when not empty, restricts all egress through the proxy to
	// hosts matching these patterns (the bound hosts are allowed too).
	Allow []string
	// Report records denials in the audit (RunService.ReportEgressDenials
	// for the run); nil: not recorded. It is called from one goroutine
	// with 1 to MaxDenialsPerReport denials at a time.
	Report func(ctx context.Context, denials []*scopev1.EgressDenial) error
	// OnDenied tells a person of a denial, the first of each (secret,
	// host, reason) of the run; nil: nobody. It never receives a value.
	OnDenied func(secret, host, reason string)
	// OnReportError is told once when a report fails; nil: ignored.
	OnReportError func(error)
	// Dir is where the directory of the CA files is made (os.TempDir
	// when empty). It must be searchable by the agent's user.
	Dir string
	// AgentUID and AgentGID own the CA files' directory when the agent
	// runs as another user; -1: unchanged.
	AgentUID, AgentGID int
	// RootCAs verify the upstream servers; nil: the system roots (with
	// the runner's own SSL_CERT_FILE and SSL_CERT_DIR).
	RootCAs *x509.CertPool
	// DialContext opens upstream connections; nil: a net.Dialer. Tests
	// point names at loopback servers with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// UpstreamProxy is the proxy the egress proxy itself goes through
	// (see UpstreamProxy); nil: direct.
	UpstreamProxy func(*http.Request) (*url.URL, error)
}

// Bounds of what a run reports of its egress.
const (
	// MaxDenialsPerReport is the most denials in one ReportEgressDenials.
	MaxDenialsPerReport = 100
	// maxDistinctDenials bounds the denials reported for a run: the first
	// of each (secret, host, reason), up to this many. An agent probing
	// hosts in a loop cannot grow the audit log without bound; the run
	// record's counts (EndRun) still count every denial of the hosts it
	// lists.
	maxDistinctDenials = 1000
	// MaxEgressHosts is the most hosts whose counts the run's end reports
	// (the most active; the resolver's bound, which keeps a run record
	// small).
	MaxEgressHosts = 100
	maxReasonLen   = 200
)

// NeedsEgress reports whether a run needs the egress proxy: it has a
// host-bound secret, or egress is restricted.
func NeedsEgress(vars []Var, allow []string) bool {
	return len(allow) > 0 || slices.ContainsFunc(vars, func(v Var) bool { return v.Binding != nil })
}

// Egress is a run's egress proxy, started, with what the agent needs to use
// it.
type Egress struct {
	proxy  *egress.Proxy
	dir    string
	vars   []Var
	env    []string
	report *denialReporter
}

// StartEgress starts the egress proxy for vars: each host-bound var is
// replaced by a placeholder (Vars), and the proxy holds its value. The
// agent's proxy and trust variables are in Env. Close it when the run
// ends.
func StartEgress(vars []Var, cfg EgressConfig) (*Egress, error) {
	e := &Egress{}
	var bindings []egress.Binding
	for _, v := range vars {
		if v.Binding == nil {
			e.vars = append(e.vars, v)
			continue
		}
		ph := egress.NewPlaceholder()
		bindings = append(bindings, egress.Binding{
			Name: v.Name, Placeholder: ph, Value: v.Value,
			Hosts: v.Binding.Hosts, AllowQuery: v.Binding.AllowQuery, AllowBody: v.Binding.AllowBody,
		})
		e.vars = append(e.vars, Var{Name: v.Name, Value: []byte(ph)})
	}
	e.report = newDenialReporter(cfg)
	p, err := egress.New(egress.Config{
		Bindings:      bindings,
		Allow:         cfg.Allow,
		RootCAs:       cfg.RootCAs,
		DialContext:   cfg.DialContext,
		UpstreamProxy: cfg.UpstreamProxy,
		OnDenied:      e.report.denied,
	})
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	e.proxy = p
	if err := e.writeCA(cfg); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.Start(); err != nil {
		e.removeCA()
		p.Close()
		return nil, err
	}
	go e.report.loop()
	url := p.URL()
	bundle, caOnly := filepath.Join(e.dir, "ca-bundle.pem"), filepath.Join(e.dir, "run-ca.pem")
	e.env = []string{
		"HTTP_PROXY=" + url, "HTTPS_PROXY=" + url, "ALL_PROXY=" + url,
		"http_proxy=" + url, "https_proxy=" + url, "all_proxy=" + url,
		"SSL_CERT_FILE=" + bundle, "REQUESTS_CA_BUNDLE=" + bundle, "CURL_CA_BUNDLE=" + bundle,
		"GIT_SSL_CAINFO=" + bundle,
		// Node adds these to its own roots, so the run CA alone.
		"NODE_EXTRA_CA_CERTS=" + caOnly,
		// Node 22.21 / 24 and later: fetch and https follow the proxy
		// variables only when asked to.
		"NODE_USE_ENV_PROXY=1",
	}
	return e, nil
}

// egressEnvDrop are inherited variables the agent must not keep: a
// NO_PROXY of the runner's would send requests around the proxy, where a
// placeholder is useless and --egress-allow does not hold.
var egressEnvDrop = []string{"NO_PROXY", "no_proxy"}

// Vars are the run's variables for the agent: the unbound ones as they
// came, each host-bound one with its placeholder as the value.
func (e *Egress) Vars() []Var { return e.vars }

// Apply returns env with the agent's proxy and trust variables set,
// replacing inherited ones of the same names, and NO_PROXY dropped.
func (e *Egress) Apply(env []string) []string {
	set := map[string]bool{}
	for _, kv := range e.env {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	out := make([]string, 0, len(env)+len(e.env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] && !slices.Contains(egressEnvDrop, name) {
			out = append(out, kv)
		}
	}
	return append(out, e.env...)
}

// Addr is the proxy's address (without its credentials), for people.
func (e *Egress) Addr() string { return e.proxy.Addr() }

// Close stops the proxy, reports the denials still pending (within ctx),
// removes the CA files, and returns what the proxy did per host, for the
// run's end.
func (e *Egress) Close(ctx context.Context) []*scopev1.EgressCount {
	e.proxy.Close()
	e.report.close(ctx)
	e.removeCA()
	return egressCounts(e.proxy.Stats())
}

// writeCA writes the run CA's certificate for the agent: alone (for
// NODE_EXTRA_CA_CERTS, which adds to Node's roots) and followed by the
// system's roots (for the variables that replace a client's roots, so
// that a client that does not use the proxy still verifies the servers it
// reaches directly). The CA's key never leaves the process.
func (e *Egress) writeCA(cfg EgressConfig) error {
	dir, err := os.MkdirTemp(cfg.Dir, "oz-egress-")
	if err != nil {
		return fmt.Errorf("egress proxy: %w", err)
	}
	e.dir = dir
	ca := e.proxy.CACertPEM()
	bundle := append(slices.Clip(ca), systemRoots()...)
	err = errors.Join(
		os.WriteFile(filepath.Join(dir, "run-ca.pem"), ca, 0o644),
		os.WriteFile(filepath.Join(dir, "ca-bundle.pem"), bundle, 0o644),
		// Readable by the agent's user: certificates are public.
		os.Chmod(dir, 0o755),
	)
	if err == nil && (cfg.AgentUID >= 0 || cfg.AgentGID >= 0) {
		err = os.Chown(dir, cfg.AgentUID, cfg.AgentGID)
		if err == nil {
			err = searchableBy(filepath.Dir(dir), cfg.AgentUID, cfg.AgentGID)
		}
	}
	if err != nil {
		e.removeCA()
		return fmt.Errorf("egress proxy: write the run CA's certificate: %w", err)
	}
	return nil
}

// searchableBy returns an error naming the first directory from dir up
// to the root that uid (in gid) cannot pass through: the agent could not
// read the run CA's certificate, and every TLS request through the proxy
// would fail. (A runner's TMPDIR of 0700 is the usual cause.)
func searchableBy(dir string, uid, gid int) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			// The owner's bits, else the group's, else the others', decide.
			mode, bit := fi.Mode().Perm(), os.FileMode(0o001)
			switch {
			case uid >= 0 && int(st.Uid) == uid:
				bit = 0o100
			case gid >= 0 && int(st.Gid) == gid:
				bit = 0o010
			}
			if mode&bit == 0 {
				return fmt.Errorf("the agent's user %d cannot pass through %s: set the runner's TMPDIR to a directory it can, such as /tmp", uid, d)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (e *Egress) removeCA() {
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// systemCABundles are where Linux distributions keep their roots, as Go's
// crypto/x509 looks for them.
var systemCABundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

func systemRoots() []byte {
	for _, f := range systemCABundles {
		if b, err := os.ReadFile(f); err == nil {
			return append([]byte("\n"), b...)
		}
	}
	return nil
}

// egressCounts are the proxy's counts as the run's end reports them: hosts
// the resolver accepts, the most active first, at most MaxEgressHosts.
func egressCounts(stats map[string]egress.HostStats) []*scopev1.EgressCount {
	var out []*scopev1.EgressCount
	for host, s := range stats {
		if hostbind.IsRequestHost(host) {
			out = append(out, &scopev1.EgressCount{Host: host, Substitutions: int64(s.Substitutions), Denials: int64(s.Denials)})
		}
	}
	slices.SortFunc(out, func(a, b *scopev1.EgressCount) int {
		return cmp.Or(
			cmp.Compare(b.Substitutions+b.Denials, a.Substitutions+a.Denials),
			strings.Compare(a.Host, b.Host))
	})
	if len(out) > MaxEgressHosts {
		out = out[:MaxEgressHosts]
	}
	return out
}

// cleanReason makes a denial's reason fit the audit: printable, at most
// maxReasonLen characters. (Some reasons quote what the agent sent, such
// as a Host header.)
func cleanReason(reason string) string {
	var b strings.Builder
	n := 0
	for _, r := range reason {
		if n == maxReasonLen {
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// denialReporter reports the first of each distinct denial of a run, in
// batches, off the request's path: a proxy request never waits for the
// audit.
type denialReporter struct {
	cfg  EgressConfig
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	seen    map[[3]string]bool
	pending []*scopev1.EgressDenial
	closed  bool
	failed  bool
}

func newDenialReporter(cfg EgressConfig) *denialReporter {
	return &denialReporter{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}), seen: map[[3]string]bool{}}
}

// denied is the proxy's OnDenied: it may run on many goroutines.
func (d *denialReporter) denied(secret, host, reason string) {
	reason = cleanReason(reason)
	k := [3]string{secret, host, reason}
	d.mu.Lock()
	if d.seen[k] || len(d.seen) >= maxDistinctDenials {
		d.mu.Unlock()
		return
	}
	d.seen[k] = true
	if hostbind.IsRequestHost(host) && !d.closed {
		d.pending = append(d.pending, &scopev1.EgressDenial{Host: host, SecretName: secret, Reason: reason})
		// Under the lock: close closes wake under it too.
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
	if d.cfg.OnDenied != nil {
		d.cfg.OnDenied(secret, host, reason)
	}
}

// reportTimeout bounds one ReportEgressDenials.
const reportTimeout = 10 * time.Second

func (d *denialReporter) loop() {
	defer close(d.done)
	for range d.wake {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		d.flush(ctx)
		cancel()
	}
}

// flush reports what is pending, in batches; a batch that fails is
// dropped (and said once): the run must not stall on the audit.
func (d *denialReporter) flush(ctx context.Context) {
	for {
		d.mu.Lock()
		n := min(len(d.pending), MaxDenialsPerReport)
		batch := d.pending[:n:n]
		d.pending = d.pending[n:]
		d.mu.Unlock()
		if n == 0 || d.cfg.Report == nil {
			return
		}
		if err := d.cfg.Report(ctx, batch); err != nil {
			d.mu.Lock()
			first := !d.failed
			d.failed = true
			d.mu.Unlock()
			if first && d.cfg.OnReportError != nil {
				d.cfg.OnReportError(err)
			}
		}
	}
}

// close stops the loop and reports what is still pending within ctx.
func (d *denialReporter) close(ctx context.Context) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.wake)
	d.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return
	}
	d.flush(ctx)
}
