package secretstore

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/lib/termtext"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Limits bounds what a secret may hold (DESIGN §4). The zero value of a
// field means its default.
type Limits struct {
	MaxNameLen          int // characters of a name; default 255
	MaxValueBytes       int // bytes of a value; default 65536 (64 KiB)
	MaxDescriptionChars int // characters (Unicode code points) of a description; default 1024
}

// Defaults of Limits.
const (
	DefaultMaxNameLen          = 255
	DefaultMaxValueBytes       = 64 << 10
	DefaultMaxDescriptionChars = 1024
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxNameLen:          DefaultMaxNameLen,
		MaxValueBytes:       DefaultMaxValueBytes,
		MaxDescriptionChars: DefaultMaxDescriptionChars,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = d.MaxNameLen
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	if l.MaxDescriptionChars <= 0 {
		l.MaxDescriptionChars = d.MaxDescriptionChars
	}
	return l
}

// maxLookupNameLen bounds names in lookups, whatever the configured limit.
const maxLookupNameLen = 4096

// ValidateName checks a new secret's name: syntax, length and the reserved
// names. The error is an errs.Field error for field.
func (l Limits) ValidateName(field, name string) error {
	l = l.withDefaults()
	if rule, ok := envname.Syntax(name, l.MaxNameLen); !ok {
		return errs.Field(field, "%s", rule)
	}
	// The reserved names (envname.Reserved): setting them would subvert
	// the agent's process.
	if r, ok := envname.Check(name); ok {
		return errs.Field(field, "%s (the reserved names are listed in the README's Rules)", r.Explain(name))
	}
	return nil
}

// ValidateValue checks a value: non-empty, at most MaxValueBytes, no NUL
// byte. Errors never contain the value.
func (l Limits) ValidateValue(field string, v []byte) error {
	l = l.withDefaults()
	switch {
	case len(v) == 0:
		return errs.Field(field, "is required (a non-empty value)")
	case len(v) > l.MaxValueBytes:
		return errs.Field(field, "must be at most %d bytes (got %d)", l.MaxValueBytes, len(v))
	case bytes.IndexByte(v, 0) >= 0:
		return errs.Field(field, "must not contain a NUL byte (values become environment variables)")
	}
	return nil
}

// ValidateDescription checks a description: valid UTF-8, at most
// MaxDescriptionChars characters, one line of printable text (termtext).
func (l Limits) ValidateDescription(field, d string) error {
	l = l.withDefaults()
	if !utf8.ValidString(d) {
		return errs.Field(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(d); n > l.MaxDescriptionChars {
		return errs.Field(field, "must be at most %d characters (got %d)", l.MaxDescriptionChars, n)
	}
	if termtext.HasUnsafe(d) {
		// Teammates read it on their terminals.
		return errs.Field(field, "%s (%s)", termtext.Rule, termtext.Explain(d))
	}
	return nil
}

// maxPatternLen bounds one host pattern as sent, before hostbind reads it:
// a host name has at most 253 characters, "*." two more. A longer one is
// refused without being quoted back.
const maxPatternLen = 255

// maxSentHosts bounds the host patterns a binding may be sent with,
// duplicates included (hostbind.Normalize drops them, then allows
// hostbind.MaxHosts), so that a request cannot make the check itself
// costly.
const maxSentHosts = 4 * hostbind.MaxHosts

// ValidateBinding checks a binding to hosts as a caller sent it (field
// names it: "binding") and returns it normalised (hostbind.Normalize):
// nil when b is nil or has no hosts and no flag (not bound). allow_query
// or allow_body without hosts is refused rather than read as "not bound":
// the caller meant a binding. Errors are errs.Field errors for
// field+".hosts". It does not look at the value: a bound secret's value
// must also meet hostbind.ValidateValue, which the Service checks.
func ValidateBinding(field string, b *hostbind.Binding) (*hostbind.Binding, error) {
	field += ".hosts"
	switch {
	case b == nil:
		return nil, nil
	case len(b.Hosts) == 0 && (b.AllowQuery || b.AllowBody):
		return nil, errs.Field(field, "is required with allow_query or allow_body: name the hosts the secret is bound to (none: not bound)")
	case len(b.Hosts) == 0:
		return nil, nil
	case len(b.Hosts) > maxSentHosts:
		return nil, errs.Field(field, "must list at most %d host patterns (got %d)", hostbind.MaxHosts, len(b.Hosts))
	}
	for i, h := range b.Hosts {
		if len(h) > maxPatternLen {
			return nil, errs.Field(field, "entry %d: a host pattern is at most %d characters (got %d)", i, maxPatternLen, len(h))
		}
	}
	hosts, err := hostbind.Normalize(b.Hosts)
	if err != nil {
		return nil, errs.Field(field, "%s", err)
	}
	return &hostbind.Binding{Hosts: hosts, AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}, nil
}

// ParseName parses a secret's resource name,
// "teams/{team}/secrets/{secret}" or "users/{user}/secrets/{secret}",
// keeping "users/me" as is. The secret part must be a well-formed name (not
// necessarily an unreserved one: a secret created before a name became
// reserved can still be read and deleted). Errors are errs.Field errors for
// field.
func ParseName(field, name string) (Owner, string, error) {
	const shape = "must be teams/{team}/secrets/{secret} or users/{user}/secrets/{secret}"
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[2] != "secrets" {
		return Owner{}, "", errs.Field(field, shape)
	}
	o, err := ParseOwner(parts[0] + "/" + parts[1])
	if err != nil {
		return Owner{}, "", errs.Field(field, "%s", err.(*errs.Error).Message)
	}
	// Only the syntax is checked here, with a generous length bound: a
	// longer name is simply not found.
	if rule, ok := envname.Syntax(parts[3], maxLookupNameLen); !ok {
		return Owner{}, "", errs.Field(field, "the secret id %s", rule)
	}
	return o, parts[3], nil
}
