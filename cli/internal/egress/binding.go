package egress

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ozsecrets/oz/lib/hostbind"
)

// PlaceholderPrefix starts every placeholder, so the proxy (and a person
// reading an agent's output) can tell one from any other string.
const PlaceholderPrefix = hostbind.PlaceholderPrefix

// placeholderAlphabet holds only characters that no URL, header or JSON
// encoder escapes, so a placeholder travels literally wherever the agent
// puts it; the proxy recognises nothing but the literal form.
const placeholderAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

const (
	placeholderRandLen = 32 // 160 random bits
	minPlaceholderRand = 16
	// MinValueLen is the shortest value a binding may hold (see
	// hostbind.MinValueLen).
	MinValueLen = hostbind.MinValueLen
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
// matches one of Hosts (see hostbind.Match). By default only header values are
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
	Hosts       []string // host patterns, see hostbind.Match
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
	if err := hostbind.ValidateValue(b.Value); err != nil {
		return fmt.Errorf("binding %q: value %w", b.Name, err)
	}
	if len(b.Hosts) == 0 {
		return fmt.Errorf("binding %q: at least one host pattern is required", b.Name)
	}
	for _, h := range b.Hosts {
		if err := hostbind.ValidatePattern(h); err != nil {
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
