package egress

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
)

// PlaceholderPrefix starts every placeholder, so the proxy (and a person
// reading an agent's output) can tell one from any other string.
const PlaceholderPrefix = "oz-ph-"

// placeholderAlphabet holds only characters that no URL, header or JSON
// encoder escapes, so a placeholder travels literally wherever the agent
// puts it; the proxy recognises nothing but the literal form.
const placeholderAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

const (
	placeholderRandLen = 32 // 160 random bits
	minPlaceholderRand = 16
	// MinValueLen is the shortest value a binding may hold. Responses from
	// a bound host have every occurrence of the value replaced by the
	// placeholder; a shorter value would rewrite ordinary text.
	MinValueLen = 8
)

// NewPlaceholder returns a fresh placeholder: PlaceholderPrefix and 32
// random characters. It is never derived from a value; the runner makes
// one per run and secret.
func NewPlaceholder() string {
	b := make([]byte, placeholderRandLen)
	if _, err := rand.Read(b); err != nil {
		panic("egress: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = placeholderAlphabet[b[i]%32]
	}
	return PlaceholderPrefix + string(b)
}

// Binding is one host-bound secret as the proxy sees it.
//
// The agent holds Placeholder; the proxy holds Value and writes it into a
// request only when the request goes over TLS to port 443 of a host that
// matches one of Hosts (see MatchHost). By default only header values are
// rewritten (Authorization and any other header, including the user and
// password of a Basic Authorization header, which is what an HTTP client
// sends for a URL of the form https://user:placeholder@host/). AllowQuery
// and AllowBody extend this to the query string and the request body.
//
// Binding never prints its Value: String, GoString and LogValue leave it
// out, so a Binding can be logged or wrapped in an error safely.
type Binding struct {
	Name        string   // the secret's name, used in denials and stats
	Placeholder string   // what the agent holds, from NewPlaceholder
	Value       []byte   // the secret value; never logged
	Hosts       []string // host patterns, see MatchHost
	AllowQuery  bool     // substitute in the query string too
	AllowBody   bool     // substitute in the request body too
}

func (b Binding) String() string {
	return fmt.Sprintf("egress.Binding{Name:%q Placeholder:%q Hosts:%q AllowQuery:%t AllowBody:%t}",
		b.Name, b.Placeholder, b.Hosts, b.AllowQuery, b.AllowBody)
}

// GoString keeps %#v from printing Value.
func (b Binding) GoString() string { return b.String() }

// LogValue keeps slog from printing Value.
func (b Binding) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", b.Name), slog.Any("hosts", b.Hosts))
}

// validate checks one binding. Errors name the field and the rule and
// never hold the value.
func (b Binding) validate() error {
	if b.Name == "" {
		return fmt.Errorf("binding: name is required")
	}
	if !validPlaceholder(b.Placeholder) {
		return fmt.Errorf("binding %q: placeholder must be %q followed by at least %d characters of [a-z2-7]",
			b.Name, PlaceholderPrefix, minPlaceholderRand)
	}
	if len(b.Value) < MinValueLen {
		return fmt.Errorf("binding %q: value must be at least %d bytes", b.Name, MinValueLen)
	}
	if strings.ContainsAny(string(b.Value), "\r\n\x00") {
		// It could not travel in a header, and would split one.
		return fmt.Errorf("binding %q: value must not contain CR, LF or NUL", b.Name)
	}
	if strings.Contains(string(b.Value), PlaceholderPrefix) {
		return fmt.Errorf("binding %q: value must not contain %q", b.Name, PlaceholderPrefix)
	}
	if len(b.Hosts) == 0 {
		return fmt.Errorf("binding %q: at least one host pattern is required", b.Name)
	}
	for _, h := range b.Hosts {
		if err := ValidatePattern(h); err != nil {
			return fmt.Errorf("binding %q: %w", b.Name, err)
		}
	}
	return nil
}

func validPlaceholder(p string) bool {
	rest, ok := strings.CutPrefix(p, PlaceholderPrefix)
	if !ok || len(rest) < minPlaceholderRand {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(placeholderAlphabet, rune(rest[i])) {
			return false
		}
	}
	return true
}

// ValidatePattern reports whether p is a valid host pattern:
//
//   - an exact host name of two or more labels ("api.openai.com"), or
//   - "*." followed by such a name ("*.metabase.example.com"), which
//     matches one or more labels before that suffix and never the suffix
//     alone.
//
// Labels are 1–63 characters of letters, digits, '-' and '_' (ASCII; use
// the punycode form of an internationalised name); the last label is not
// all digits. A pattern holds no
// port, no trailing dot, no IP literal and no other '*'.
func ValidatePattern(p string) error {
	name, wild := strings.CutPrefix(p, "*.")
	switch {
	case p == "":
		return fmt.Errorf("host pattern: must not be empty")
	case strings.Contains(p, ":") || strings.HasPrefix(p, "["):
		return fmt.Errorf("host pattern %q: must not hold a port or an IPv6 literal", p)
	case strings.Contains(name, "*"):
		return fmt.Errorf("host pattern %q: '*' is allowed only as the whole first label, as in *.example.com", p)
	case isIPLiteral(name):
		return fmt.Errorf("host pattern %q: must be a host name, not an IP address", p)
	case strings.HasSuffix(name, "."):
		return fmt.Errorf("host pattern %q: must not end with a dot", p)
	case !validHostName(name):
		return fmt.Errorf("host pattern %q: labels must be 1-63 characters of letters, digits, '-' and '_', the last not all digits", p)
	case !strings.Contains(name, "."):
		if wild {
			return fmt.Errorf("host pattern %q: the suffix after *. must have at least two labels", p)
		}
		return fmt.Errorf("host pattern %q: must have at least two labels", p)
	}
	return nil
}

// MatchHost reports whether host matches pattern. host is a bare host
// name as it arrived (no port). Matching ignores ASCII case. A host that
// is an IP literal, ends with a dot, or is not a valid host name matches
// nothing, and so does an invalid pattern. "*.example.com" matches
// "a.example.com" and "a.b.example.com", never "example.com".
//
// MatchHost says nothing about ports or schemes: the proxy substitutes
// only on TLS connections to port 443 (see Proxy).
func MatchHost(pattern, host string) bool {
	if ValidatePattern(pattern) != nil || isIPLiteral(host) || !validHostName(host) {
		return false
	}
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	suffix, wild := strings.CutPrefix(pattern, "*")
	if !wild {
		return host == pattern
	}
	// suffix is ".example.com"; what precedes it is one or more labels,
	// already known valid since host is.
	return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
}

func isIPLiteral(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	_, err := netip.ParseAddr(h)
	return err == nil
}

// validHostName reports whether h is dot-separated labels of 1–63
// characters from [A-Za-z0-9_-], 253 characters at most, no trailing dot,
// and a last label that is not all digits (no top-level domain is, and
// resolvers read "127.1" or "2130706433" as IPv4 addresses).
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	last := h[strings.LastIndexByte(h, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}
