// Package termtext is the rule for free text that people write and other
// people read on a terminal: descriptions of secrets, agent identities,
// environments, tokens and integrations. Such text must not act on the
// terminal that shows it: an escape sequence can clear a teammate's
// screen or recolour it, a carriage return or a newline can overwrite or
// fake a row of a table, and a bidirectional override can reorder what is
// shown. The services refuse it on write (HasUnsafe); the CLI escapes it
// on output (Escape), for text stored before the rule.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe reports whether r acts on a terminal rather than printing: a
// control character (C0, DEL, C1: including ESC, CR, LF, TAB and NUL), a
// line or paragraph separator, or a bidirectional formatting character.
func Unsafe(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f', // bidi marks
		'\u202a' <= r && r <= '\u202e', // embeddings and overrides
		'\u2066' <= r && r <= '\u2069': // isolates
		return true
	}
	return false
}

// Rule is the rule HasUnsafe checks, worded for an error about a field.
const Rule = "must be one line of printable text: no control characters (escape, carriage return, newline, tab, NUL…) and no bidirectional formatting characters"

// FirstUnsafe returns the position (in characters, from 0) and the rune of
// the first unsafe character of s, or -1. Invalid UTF-8 counts as unsafe
// (utf8.RuneError).
func FirstUnsafe(s string) (int, rune) {
	for i, pos := 0, 0; pos < len(s); i++ {
		r, n := utf8.DecodeRuneInString(s[pos:])
		if Unsafe(r) || r == utf8.RuneError && n <= 1 {
			return i, r
		}
		pos += n
	}
	return -1, 0
}

// HasUnsafe reports whether s holds a character that Unsafe refuses, or
// is not valid UTF-8.
func HasUnsafe(s string) bool {
	i, _ := FirstUnsafe(s)
	return i >= 0
}

// Explain says where s breaks the rule ("character 5 is U+001B"), for an
// error message; "" when it does not. It never quotes s.
func Explain(s string) string {
	i, r := FirstUnsafe(s)
	if i < 0 {
		return ""
	}
	return fmt.Sprintf("character %d is %U", i+1, r)
}

// Escape returns s with every unsafe character, and every byte that is
// not valid UTF-8, written as a Go escape (\x1b, \r, \n, \t, \x00,
// \u202e), so that it prints as one harmless line.
func Escape(s string) string {
	if !HasUnsafe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case Unsafe(r):
			q := strings.Trim(fmt.Sprintf("%+q", string(r)), `"`)
			b.WriteString(q)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
