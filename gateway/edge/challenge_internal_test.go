package edge

import (
	"regexp"
	"strings"
	"testing"
)

// validDescription is RFC 6750's error_description: %x20-21 / %x23-5B /
// %x5D-7E.
var validDescription = regexp.MustCompile(`^[\x20\x21\x23-\x5b\x5d-\x7e]*$`)

func TestErrorDescription(t *testing.T) {
	tests := []struct{ name, msg, want string }{
		{"ASCII", "token expired", "token expired"},
		{"Ellipsis", "Bearer oz_…", "Bearer oz_..."},
		{"Quotes", `token "x" refused`, "token 'x' refused"},
		{"Backslash", `a\b`, "a/b"},
		{"ControlCharacters", "a\r\nWWW-Authenticate: x\x00", "a WWW-Authenticate: x?"},
		{"OtherNonASCII", "clé ✓", "cl? ?"},
		{"Long", strings.Repeat("x", 500), strings.Repeat("x", maxErrorDescription-3) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorDescription(tt.msg)
			if got != tt.want {
				t.Errorf("errorDescription(%q): got %q, want %q", tt.msg, got, tt.want)
			}
			if !validDescription.MatchString(got) {
				t.Errorf("errorDescription(%q) = %q: not a valid error_description", tt.msg, got)
			}
		})
	}
}

func FuzzErrorDescription(f *testing.F) {
	f.Add("missing bearer token (authorization: Bearer oz_…)")
	f.Add("\"\\\xff\u2028")
	f.Fuzz(func(t *testing.T, msg string) {
		if got := errorDescription(msg); !validDescription.MatchString(got) || len(got) > maxErrorDescription {
			t.Errorf("errorDescription(%q) = %q: not a valid error_description of at most %d bytes", msg, got, maxErrorDescription)
		}
	})
}
