package secretstore

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Plaintext is a decrypted secret value. It prints, logs and marshals as
// "[REDACTED]", so that it cannot reach a log line, an error or a JSON
// document by accident; Bytes returns the value itself.
type Plaintext struct{ b []byte }

// Bytes returns the value. Never log it, never return it to a person.
func (p Plaintext) Bytes() []byte { return p.b }

// Len returns the value's length in bytes.
func (p Plaintext) Len() int { return len(p.b) }

// String implements fmt.Stringer: "[REDACTED]".
func (p Plaintext) String() string { return redacted }

// GoString implements fmt.GoStringer: "[REDACTED]".
func (p Plaintext) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb prints "[REDACTED]".
func (p Plaintext) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer: "[REDACTED]".
func (p Plaintext) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler: "[REDACTED]".
func (p Plaintext) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler: "[REDACTED]".
func (p Plaintext) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// wipe overwrites the value with zeros, in place. It is best effort: Go's
// collector does not move objects, but copies made before (by whoever
// serialized or sealed the value) are out of its reach, and freed memory
// keeps its bytes until reused.
func (p Plaintext) wipe() { clear(p.b) }
