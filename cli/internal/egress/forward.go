package egress

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// hopHeaders are connection-level headers that a proxy does not forward.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// call is one request being forwarded, with what forward learns of it.
type call struct {
	r       *http.Request
	t       target
	host    string // lower-cased
	j       *judge
	upgrade string     // "" or "websocket"
	grpc    bool       // a gRPC call: its body streams (grpc.go)
	masks   []maskPair // what to mask in the host's answer
	scan    *scanBody  // a gRPC call's body, scanned as it passes
}

// forward judges one request to t, rewrites it and relays it and its
// response.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, t target) {
	c := &call{r: r, t: t, host: strings.ToLower(t.host)}
	host := c.host
	if !p.allowed(host) {
		p.deny(w, host, "", "host is not in the egress allowlist")
		return
	}
	if t.tls && !sameAuthority(r.Host, t) || t.tls && r.URL.Host != "" && !sameAuthority(r.URL.Host, t) {
		// Judged by the CONNECT target, and a mismatched Host would let a
		// shared front end route the request elsewhere (domain fronting).
		p.deny(w, host, "", fmt.Sprintf("Host %q differs from the CONNECT target %q", r.Host, net.JoinHostPort(t.host, t.port)))
		return
	}
	c.j = &judge{p: p, t: t, host: host}
	if !t.tls {
		for _, b := range p.bindings {
			if b.matches(host) {
				p.deny(w, host, b.Name, "plain HTTP to a host bound to a secret is refused; use https")
				return
			}
		}
	}
	c.upgrade = upgradeKind(r.Header)
	if c.upgrade != "" && c.upgrade != "websocket" {
		http.Error(w, fmt.Sprintf("oz egress proxy: upgrades to %q are not supported, only to WebSocket", c.upgrade), http.StatusNotImplemented)
		return
	}

	c.grpc = isGRPC(r.Header)
	var body []byte
	whole := true
	if !c.grpc { // a gRPC call's messages stream: see grpc.go
		var err error
		if body, whole, err = readPrefix(r.Body, p.cfg.MaxBody); err != nil {
			http.Error(w, "oz egress proxy: read request body: "+p.scrub(err.Error()), http.StatusBadRequest)
			return
		}
	}
	out, d := c.j.rewriteRequest(r, body, whole)
	if d != nil {
		if d.tooLarge {
			http.Error(w, "oz egress proxy: "+d.reason, http.StatusRequestEntityTooLarge)
			return
		}
		p.deny(w, host, d.secret, d.reason)
		return
	}
	outReq, err := p.outgoing(c, out, body, whole)
	if err != nil {
		http.Error(w, "oz egress proxy: "+p.scrub(err.Error()), http.StatusBadRequest)
		return
	}

	resp, err := p.transport.RoundTrip(outReq)
	if d := c.scan.refused(); d != nil {
		if err == nil {
			resp.Body.Close()
		}
		p.deny(w, host, d.secret, d.reason)
		return
	}
	if err != nil {
		// The URL sent may hold a value in its query: scrub turns it back
		// into the placeholder the agent wrote.
		msg := p.scrub(fmt.Sprintf("%s %s: %v", r.Method, outReq.URL.Redacted(), err))
		p.log.Warn("egress upstream failed", "host", host, "err", msg)
		http.Error(w, "oz egress proxy: upstream request failed: "+msg, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	p.count(host, c.j.subs, 0)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if c.upgrade == "" || upgradeKind(resp.Header) != "websocket" {
			http.Error(w, fmt.Sprintf("oz egress proxy: %s switched to %q, not the WebSocket the request asked for", host, resp.Header.Get("Upgrade")), http.StatusBadGateway)
			return
		}
		p.relayUpgraded(w, resp, c.masks, host)
		return
	}
	p.respond(w, c, resp)
}

// outgoing is the request forwarded for c: to the target's URL, with the
// rewritten query, headers and body, and asking the host for what masking
// its answer needs. It sets c.masks and c.scan.
func (p *Proxy) outgoing(c *call, out rewritten, body []byte, whole bool) (*http.Request, error) {
	r, t := c.r, c.t
	u := &url.URL{Scheme: "http", Host: bracket(t.host), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: out.query}
	if t.tls {
		u.Scheme = "https"
	}
	if !(t.tls && t.port == "443" || !t.tls && t.port == "80") {
		u.Host = net.JoinHostPort(t.host, t.port)
	}
	outReq, err := http.NewRequestWithContext(r.Context(), r.Method, "/", nil)
	if err != nil {
		return nil, err
	}
	outReq.URL = u // set, not parsed: a value is never re-read as URL syntax
	outReq.Header = out.header
	if c.j.subs > 0 {
		// A partial response could return part of a value, which masking
		// (whole values only) would not recognise.
		outReq.Header.Del("Range")
		outReq.Header.Del("If-Range")
	}
	switch {
	case c.grpc:
		c.scan = newScanBody(r.Body, c.j)
		outReq.Body, outReq.ContentLength = c.scan, r.ContentLength
	case whole && len(out.body) == 0 && r.ContentLength <= 0:
		outReq.Body, outReq.ContentLength = http.NoBody, 0
	case whole:
		outReq.Body, outReq.ContentLength = io.NopCloser(bytes.NewReader(out.body)), int64(len(out.body))
	default:
		outReq.Body, outReq.ContentLength = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body)), r.ContentLength
	}
	// Values bound to this host are masked in its responses, which needs
	// a body the proxy can read: ask for no content coding.
	c.masks = masksFor(p.bindings, c.host)
	if len(c.masks) > 0 {
		outReq.Header.Set("Accept-Encoding", "identity")
		outReq.Header.Del("Grpc-Accept-Encoding") // and no compressed gRPC messages
	}
	if httpguts.HeaderValuesContainsToken(r.Header.Values("Te"), "trailers") {
		// Hop-by-hop, but gRPC servers want to know trailers are read.
		outReq.Header.Set("Te", "trailers")
	}
	if c.upgrade != "" {
		// Hop-by-hop, so removed above; asked for again of the host.
		outReq.Header.Set("Connection", "Upgrade")
		outReq.Header.Set("Upgrade", "websocket")
		if len(c.masks) > 0 {
			// permessage-deflate would hide a value from masking.
			outReq.Header.Del("Sec-WebSocket-Extensions")
		}
	}
	return outReq, nil
}

// respond relays the host's response to c: headers, body and trailers,
// each value bound to the host masked.
func (p *Proxy) respond(w http.ResponseWriter, c *call, resp *http.Response) {
	masks, host := c.masks, c.host
	if len(masks) > 0 {
		for _, h := range []string{"Content-Encoding", "Grpc-Encoding"} {
			if ce := resp.Header.Get(h); ce != "" && !strings.EqualFold(ce, "identity") {
				http.Error(w, fmt.Sprintf("oz egress proxy: %s answered with %s %q although asked for identity; the proxy must read a bound host's responses to mask values", host, h, ce),
					http.StatusBadGateway)
				return
			}
		}
	}
	removeHopHeaders(resp.Header)
	for k, vs := range maskHeader(resp.Header, masks) {
		w.Header()[k] = vs
	}
	if len(masks) > 0 && c.r.Method != http.MethodHead {
		w.Header().Del("Content-Length") // masking may change it
	}
	w.WriteHeader(resp.StatusCode)
	err := p.relayBody(flushWriter{w}, resp.Body, masks, c.grpc && resp.StatusCode == http.StatusOK)
	if d := c.scan.refused(); d != nil {
		// Found once the response had begun: the call is cut (or had
		// ended, the host having read no further).
		p.refused(host, d.secret, d.reason)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		p.log.Warn("egress response relay failed", "host", host, "err", p.scrub(err.Error()))
		if c.grpc {
			// No clean end, no trailers: the agent's call fails.
			panic(http.ErrAbortHandler)
		}
		return
	}
	// Trailers (gRPC's status) come after the body, masked like headers.
	for k, vs := range maskHeader(resp.Trailer, masks) {
		w.Header()[http.TrailerPrefix+k] = vs
	}
}

// relayBody copies a response body to the agent, masking a bound host's
// values: a gRPC call's message by message, anything else as a stream.
func (p *Proxy) relayBody(dst io.Writer, src io.Reader, masks []maskPair, grpc bool) error {
	if len(masks) > 0 && grpc {
		return maskGRPC(dst, src, masks)
	}
	var m *maskWriter
	if len(masks) > 0 {
		m = newMaskWriter(dst, masks)
		dst = m
	}
	buf := relayBuffers.Get().(*[]byte)
	defer func() {
		clear(*buf) // what a bound host sent, before masking
		relayBuffers.Put(buf)
	}()
	if _, err := io.CopyBuffer(dst, src, *buf); err != nil {
		return err
	}
	if m != nil {
		return m.Close()
	}
	return nil
}

// relayBuffers are the buffers responses are relayed through. A profile
// of BenchmarkProxy showed io.Copy's own 32 KiB buffer, one per
// response, as 55% of the proxy's allocations.
var relayBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// bracket puts an IPv6 literal in brackets for a URL.
func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// sameAuthority reports whether a Host header (or absolute URL host) names
// the tunnel target: same host ignoring ASCII case, same port (443 when
// absent).
func sameAuthority(hostport string, t target) bool {
	h, port, err := net.SplitHostPort(hostport)
	if err != nil {
		h, port = hostport, "443"
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.EqualFold(h, t.host) && port == t.port
}

// readPrefix reads up to max bytes of body; whole reports that it read
// all of it.
func readPrefix(body io.Reader, max int64) (prefix []byte, whole bool, err error) {
	if body == nil || body == http.NoBody {
		return nil, true, nil
	}
	prefix, err = io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(prefix)) > max {
		// Keep exactly max bytes scanned; the extra byte goes on with the rest.
		return prefix, false, nil
	}
	return prefix, true, nil
}

// judge decides, for one request, which placeholders may become values.
type judge struct {
	p    *Proxy
	t    target
	host string // lower-cased
	subs int
}

type denial struct {
	secret, reason string
	tooLarge       bool
}

// rule says whether a binding may be substituted in one place: "" if so,
// otherwise why not.
type rule func(b *binding) string

func never(*binding) string { return "placeholders are never substituted there" }

// eligible is the rule common to every place: TLS, port 443, a matching
// host.
func (j *judge) eligible(b *binding) string {
	switch {
	case !b.matches(j.host):
		return fmt.Sprintf("the secret is not bound to host %s", j.host)
	case !j.t.tls:
		return "values are sent only over TLS, not plain HTTP"
	case j.t.port != "443":
		return fmt.Sprintf("values are sent only to port 443, not %s", j.t.port)
	}
	return ""
}

// lookup returns the binding whose placeholder starts s, if any (the
// longest, should one placeholder begin another).
func (j *judge) lookup(s string) *binding {
	var best *binding
	for _, b := range j.p.bindings {
		if strings.HasPrefix(s, b.Placeholder) && (best == nil || len(b.Placeholder) > len(best.Placeholder)) {
			best = b
		}
	}
	return best
}

// sub replaces each placeholder in s that rule and eligibility allow; the
// first that they do not allow refuses the request.
func (j *judge) sub(place, s string, allow rule) (string, *denial) {
	return j.subEncoded(place, s, allow, nil)
}

// subEncoded is sub with each value passed through encode first (nil: as
// is).
func (j *judge) subEncoded(place, s string, allow rule, encode func(string) string) (string, *denial) {
	if !strings.Contains(s, PlaceholderPrefix) {
		return s, nil
	}
	var out strings.Builder
	last := 0
	for i := 0; ; {
		k := strings.Index(s[i:], PlaceholderPrefix)
		if k < 0 {
			break
		}
		k += i
		b := j.lookup(s[k:])
		if b == nil {
			i = k + 1
			continue
		}
		why := j.eligible(b)
		if why == "" {
			why = allow(b)
		}
		if why != "" {
			return "", &denial{secret: b.Name, reason: fmt.Sprintf("placeholder in the %s: %s", place, why)}
		}
		out.WriteString(s[last:k])
		if encode != nil {
			out.WriteString(encode(string(b.Value)))
		} else {
			out.Write(b.Value)
		}
		last = k + len(b.Placeholder)
		i = last
		j.subs++
	}
	out.WriteString(s[last:])
	return out.String(), nil
}

type rewritten struct {
	query  string
	header http.Header
	body   []byte
}

// rewriteRequest judges every place of r where the agent can put bytes
// and returns what to forward.
func (j *judge) rewriteRequest(r *http.Request, body []byte, whole bool) (rewritten, *denial) {
	var out rewritten
	if _, d := j.sub("method", r.Method, never); d != nil {
		return out, d
	}
	if _, d := j.sub("path", r.URL.EscapedPath(), never); d != nil {
		return out, d
	}
	if r.URL.User != nil {
		if _, d := j.sub("URL user info of a plain-HTTP request", r.URL.User.String(), never); d != nil {
			return out, d
		}
	}
	// The placeholder stands for the value, so in a query it becomes the
	// value percent-encoded: a value holding '&' or '#' stays one parameter.
	q, d := j.subEncoded("query string", r.URL.RawQuery, func(b *binding) string {
		if !b.AllowQuery {
			return "the secret does not allow substitution in the query string"
		}
		return ""
	}, url.QueryEscape)
	if d != nil {
		return out, d
	}
	out.query = q

	h := r.Header.Clone()
	removeHopHeaders(h)
	out.header = http.Header{}
	anyHeader := func(*binding) string { return "" }
	for k, vs := range h {
		if _, d := j.sub("header name", k, never); d != nil {
			return out, d
		}
		for _, v := range vs {
			nv, d := j.subHeader(k, v, anyHeader)
			if d != nil {
				return out, d
			}
			out.header.Add(k, nv)
		}
	}

	bodyRule := func(b *binding) string {
		if !b.AllowBody {
			return "the secret does not allow substitution in the body"
		}
		return ""
	}
	if whole {
		nb, d := j.sub("body", string(body), bodyRule)
		if d != nil {
			return out, d
		}
		out.body = []byte(nb)
		return out, nil
	}
	// Only a prefix was read: judge it, but never substitute in part of a
	// body.
	before := j.subs
	if _, d := j.sub("body", string(body[:j.p.cfg.MaxBody]), bodyRule); d != nil {
		return out, d
	}
	if j.subs != before {
		return out, &denial{tooLarge: true, reason: fmt.Sprintf(
			"request body is over %d bytes; placeholders are substituted only in smaller bodies", j.p.cfg.MaxBody)}
	}
	return out, nil
}

// subHeader rewrites one header value. In "Authorization: Basic …" the
// decoded user:password is rewritten too, since that is where an HTTP
// client puts https://user:placeholder@host/ credentials.
func (j *judge) subHeader(name, v string, allow rule) (string, *denial) {
	place := "header " + http.CanonicalHeaderKey(name)
	if strings.EqualFold(name, "Authorization") {
		if scheme, cred, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Basic") {
			if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred)); err == nil {
				nraw, d := j.sub("Basic credentials of the Authorization header", string(raw), allow)
				if d != nil {
					return "", d
				}
				if nraw != string(raw) {
					return scheme + " " + base64.StdEncoding.EncodeToString([]byte(nraw)), nil
				}
			}
		}
	}
	return j.sub(place, v, allow)
}

// maskPair is one form of a value (as is, or as the query string carried
// it) and the placeholder that replaces it in a response.
type maskPair struct{ from, to []byte }

// masksFor lists what to mask in responses from host: each value bound to
// it, and its percent-encoded form where that differs, since the proxy
// itself may have written that form into the query.
func masksFor(bindings []*binding, host string) []maskPair {
	var out []maskPair
	for _, b := range bindings {
		if b.matches(host) {
			out = append(out, b.masks()...)
		}
	}
	return out
}

// masks are the forms of b's value that become its placeholder.
func (b *binding) masks() []maskPair {
	out := []maskPair{{b.Value, []byte(b.Placeholder)}}
	if q := url.QueryEscape(string(b.Value)); q != string(b.Value) {
		out = append(out, maskPair{[]byte(q), []byte(b.Placeholder)})
	}
	return out
}

// maskHeader is a copy of a response's header (or trailer) for the
// agent: every value masked, and a field whose name holds a value, in any
// case, dropped. Go reads header names in canonical case (X-Sk-Abc…),
// which would turn a value reflected there into a form masking misses.
func maskHeader(h http.Header, masks []maskPair) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if nameHoldsValue(masks, k) {
			continue
		}
		masked := make([]string, len(vs))
		for i, v := range vs {
			masked[i] = maskString(masks, v)
		}
		out[k] = masked
	}
	return out
}

// nameHoldsValue reports whether a header name holds a value, ignoring
// case.
func nameHoldsValue(masks []maskPair, name string) bool {
	for _, m := range masks {
		if len(m.from) <= len(name) && strings.Contains(strings.ToLower(name), strings.ToLower(string(m.from))) {
			return true
		}
	}
	return false
}

// maskString replaces every masked form in s by its placeholder, as a
// maskWriter does a stream.
func maskString(masks []maskPair, s string) string {
	if len(masks) == 0 {
		return s
	}
	var b bytes.Buffer
	m := newMaskWriter(&b, masks)
	m.mask([]byte(s), true) //nolint:errcheck // a bytes.Buffer does not fail
	return b.String()
}

// maskWriter replaces values by their placeholders in a stream however it
// is cut into writes, exactly as if it masked the whole stream at once:
// scanning from the left, at each position the longest value that starts
// there. It holds back only a tail that could still begin a value, so a
// streamed response (server-sent events) is not delayed waiting for
// bytes that cannot matter. Close flushes that tail; the writer can then
// be used again for another stream.
type maskWriter struct {
	w      io.Writer
	masks  []maskPair
	maxLen int    // of the longest form
	held   []byte // a tail that may begin a value
	out    []byte // what one Write passes on, reused
}

func newMaskWriter(w io.Writer, masks []maskPair) *maskWriter {
	m := &maskWriter{w: w, masks: masks}
	for _, x := range masks {
		m.maxLen = max(m.maxLen, len(x.from))
	}
	return m
}

func (m *maskWriter) Write(b []byte) (int, error) {
	// A profile of the WebSocket relay showed this function's allocations
	// (a new buffer and a new output per write) as 87% of the relay's:
	// both buffers are kept, and bytes that hold no value and end in no
	// possible beginning of one are passed on without copying.
	data := b
	fromHeld := len(m.held) > 0
	if fromHeld {
		m.held = append(m.held, b...)
		data = m.held
	}
	rest, err := m.mask(data, false)
	if err != nil {
		return 0, err
	}
	if fromHeld {
		m.held = m.held[:copy(m.held, rest)] // a suffix of m.held, moved down
	} else {
		m.held = append(m.held[:0], rest...)
	}
	return len(b), nil
}

// mask writes data with every value replaced by its placeholder, except
// a tail that may still begin a value, which it returns (a part of data;
// none when final, at the end of the stream).
//
// A position is decided when no value could still start there with bytes
// yet to come; the first undecided one, and what follows, is the tail.
// Values are replaced only at decided positions, so a value that begins
// another, longer one never cuts that one short (which would leave the
// rest of the longer value to the agent).
func (m *maskWriter) mask(data []byte, final bool) ([]byte, error) {
	m.out = m.out[:0]
	copied := false // whether the output is in m.out rather than data itself
	for {
		limit := len(data)
		if !final {
			limit -= m.heldTail(data)
		}
		at, mb := -1, maskPair{}
		for _, x := range m.masks {
			if i := bytes.Index(data, x.from); i >= 0 && i < limit && (at < 0 || i < at || i == at && len(x.from) > len(mb.from)) {
				at, mb = i, x
			}
		}
		if at < 0 {
			pass := data[:limit]
			if copied {
				m.out = append(m.out, pass...)
				pass = m.out
			}
			if len(pass) > 0 {
				if _, err := m.w.Write(pass); err != nil {
					return nil, err
				}
			}
			return data[limit:], nil
		}
		m.out = append(m.out, data[:at]...)
		m.out = append(m.out, mb.to...)
		data = data[at+len(mb.from):]
		copied = true
	}
}

// heldTail is the length of the longest end of data that is a proper
// prefix of some value.
func (m *maskWriter) heldTail(data []byte) int {
	for k := min(len(data), m.maxLen-1); k > 0; k-- {
		tail := data[len(data)-k:]
		for _, x := range m.masks {
			if len(x.from) > k && bytes.HasPrefix(x.from, tail) {
				return k
			}
		}
	}
	return 0
}

// Close writes what was held back, masked as the end of the stream.
func (m *maskWriter) Close() error {
	if len(m.held) == 0 {
		return nil
	}
	_, err := m.mask(m.held, true)
	clear(m.held)
	m.held = m.held[:0]
	return err
}

// flushWriter flushes after every write so streamed responses reach the
// agent as they arrive.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
