// Package hostbind holds the rules of a secret's binding to hosts
// (DESIGN §5.6), shared by the secretstore, which validates a binding when
// it is stored, and the runner's egress proxy, which enforces it: what a
// host pattern is, which hosts it matches, and which values can be bound.
package hostbind

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// PlaceholderPrefix starts every placeholder an agent holds in place of a
// bound value.
const PlaceholderPrefix = "oz-ph-"

const (
	// MaxHosts bounds the patterns of one binding.
	MaxHosts = 20
	// MinValueLen is the shortest value a binding may hold. Responses from
	// a bound host have every occurrence of the value replaced by the
	// placeholder; a shorter value would rewrite ordinary text.
	MinValueLen = 8
)

// ValidateValue reports whether value can be bound to hosts: at least
// MinValueLen bytes, no CR, LF or NUL (it travels in headers, and would
// split one), and no PlaceholderPrefix (the proxy would read it as a
// placeholder). Errors never hold the value.
func ValidateValue(value []byte) error {
	switch {
	case len(value) < MinValueLen:
		return fmt.Errorf("must be at least %d bytes for a secret bound to hosts", MinValueLen)
	case strings.ContainsAny(string(value), "\r\n\x00"):
		return fmt.Errorf("must not contain CR, LF or NUL for a secret bound to hosts (it is sent in HTTP headers)")
	case strings.Contains(string(value), PlaceholderPrefix):
		return fmt.Errorf("must not contain %q for a secret bound to hosts", PlaceholderPrefix)
	}
	return nil
}

// Normalize validates hosts as the patterns of one binding and returns
// them lower-cased, in the order given, without duplicates. It refuses an
// empty list and more than MaxHosts patterns.
func Normalize(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("at least one host pattern is required")
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if err := ValidatePattern(h); err != nil {
			return nil, err
		}
		h = strings.ToLower(h)
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) > MaxHosts {
		return nil, fmt.Errorf("at most %d host patterns, got %d", MaxHosts, len(out))
	}
	return out, nil
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

// Match reports whether host matches pattern. host is a bare host
// name as it arrived (no port). Matching ignores ASCII case. A host that
// is an IP literal, ends with a dot, or is not a valid host name matches
// nothing, and so does an invalid pattern. "*.example.com" matches
// "a.example.com" and "a.b.example.com", never "example.com".
//
// MatchHost says nothing about ports or schemes: the proxy substitutes
// only on TLS connections to port 443 (see the egress proxy).
func Match(pattern, host string) bool {
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

// RequestHostRule is what IsRequestHost admits, for errors.
const RequestHostRule = "must be a host name of at most 253 characters of [a-z0-9._-] (lower-case, no port) or an IP address"

// IsRequestHost reports whether h is a host as an egress proxy reports it
// (a run's counts, a denial): the host a request went to, lower-cased,
// without port. Looser than ValidatePattern (a request may go to any name,
// or to an IP address), it admits nothing that could pass for more than a
// host in a record or an audit event. The runner drops what the resolver
// would refuse by this same rule.
func IsRequestHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == "" && strings.ToLower(h) == h
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Binding is a secret's binding to hosts, as the services pass it around
// (oz.secrets.v1.HostBinding on the wire). A nil *Binding is "not bound".
type Binding struct {
	Hosts      []string // normalised patterns (Normalize)
	AllowQuery bool     // substitute in the query string too
	AllowBody  bool     // substitute in the request body too
}

// Equal reports whether b and o bind the same way; two nils are equal.
func (b *Binding) Equal(o *Binding) bool {
	if b == nil || o == nil {
		return b == nil && o == nil
	}
	return slices.Equal(b.Hosts, o.Hosts) && b.AllowQuery == o.AllowQuery && b.AllowBody == o.AllowBody
}

// FromProto is the binding p says: nil when p is nil or has no hosts (not
// bound). It does not validate: use Normalize on input from callers.
func FromProto(p *secretsv1.HostBinding) *Binding {
	if len(p.GetHosts()) == 0 {
		return nil
	}
	return &Binding{Hosts: slices.Clone(p.GetHosts()), AllowQuery: p.GetAllowQuery(), AllowBody: p.GetAllowBody()}
}

// Proto is b on the wire; nil when b is nil.
func (b *Binding) Proto() *secretsv1.HostBinding {
	if b == nil {
		return nil
	}
	return &secretsv1.HostBinding{Hosts: slices.Clone(b.Hosts), AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}
}
