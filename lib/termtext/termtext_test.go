package termtext_test

import (
	"testing"

	"github.com/ozsecrets/oz/lib/termtext"
)

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"Plain", "deploy key für CI — ok \ufffd", "deploy key für CI — ok \ufffd"},
		{"Escape", "a\x1b[2Jb", `a\x1b[2Jb`},
		{"CRLF", "row\r\nfake", `row\r\nfake`},
		{"NUL", "a\x00b", `a\x00b`},
		{"Tab", "a\tb", `a\tb`},
		{"C1", "a\u009bb", `a\u009bb`},
		{"BidiOverride", "a\u202eb", `a\u202eb`},
		{"LineSeparator", "a\u2028b", `a\u2028b`},
		{"InvalidUTF8", "a\xffb", `a\xffb`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := termtext.Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got, want := termtext.HasUnsafe(tt.in), tt.in != tt.want; got != want {
				t.Errorf("HasUnsafe(%q) = %v, want %v", tt.in, got, want)
			}
			if termtext.HasUnsafe(termtext.Escape(tt.in)) {
				t.Errorf("Escape(%q) is still unsafe", tt.in)
			}
		})
	}
	if got := termtext.Explain("ab\x1b"); got != "character 3 is U+001B" {
		t.Errorf("Explain: got %q", got)
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("a\x1b[2J\r\n\x00\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if termtext.HasUnsafe(termtext.Escape(s)) {
			t.Errorf("Escape(%q) = %q is unsafe", s, termtext.Escape(s))
		}
	})
}
