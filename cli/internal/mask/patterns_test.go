package mask_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/cli/internal/mask"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []string // must be among the patterns
		notWant []string
	}{
		{"Short", "abc", nil, []string{"abc", "YWJj"}},
		{"Plain", "hunter22", []string{
			"hunter22",
			"aHVudGVyMjI=", "aHVudGVyMjI", // base64 padded and not
			"h1bnRlcjIy", "odW50ZXIyM", // embedded at offsets 1 and 2
		}, nil},
		{"URLSafe", "\xfb\xff\xfe\xfa", []string{"+//++g==", "-__--g==", "-__--g", "%FB%FF%FE%FA"}, nil},
		{"Percent", "a b/c&d", []string{"a+b%2Fc%26d", "a%20b%2Fc&d"}, nil},
		{"JSON", "<a\"b\\c>\n", []string{`\u003ca\"b\\c\u003e\n`, `<a\"b\\c>\n`, `<a"b\c>`}, nil},
		{"Lines", "line one\r\nline two\nab\n", []string{"line one", "line two", "line one\r\nline two\nab"}, []string{"ab", "line one\r"}},
		{"Trimmed", "  token1234\n", []string{"token1234", "dG9rZW4xMjM0"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mask.Patterns([]byte(tt.value))
			has := func(s string) bool {
				return slices.ContainsFunc(got, func(p []byte) bool { return string(p) == s })
			}
			for _, w := range tt.want {
				if !has(w) {
					t.Errorf("got %q, want it to hold %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if has(w) {
					t.Errorf("got %q, want it not to hold %q", got, w)
				}
			}
			for _, p := range got {
				if len(p) < mask.MinLen {
					t.Errorf("got pattern %q, shorter than %d", p, mask.MinLen)
				}
			}
			if !slices.IsSortedFunc(got, bytes.Compare) || len(slices.CompactFunc(slices.Clone(got), bytes.Equal)) != len(got) {
				t.Errorf("got %q, want sorted and distinct", got)
			}
		})
	}
}

// The listed encodings of a value are what the standard library produces.
func TestPatternsHoldStandardEncodings(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.SliceOfN(rapid.Byte(), mask.MinLen, 64).Draw(t, "value")
		pats := mask.Patterns(v)
		has := func(s string) bool {
			return slices.ContainsFunc(pats, func(p []byte) bool { return string(p) == s })
		}
		js, _ := json.Marshal(string(v))
		for _, want := range []string{
			string(v),
			base64.StdEncoding.EncodeToString(v), base64.RawStdEncoding.EncodeToString(v),
			base64.URLEncoding.EncodeToString(v), base64.RawURLEncoding.EncodeToString(v),
			url.QueryEscape(string(v)), url.PathEscape(string(v)),
			string(js[1 : len(js)-1]),
		} {
			if !has(want) {
				t.Fatalf("Patterns(%q) lacks %q", v, want)
			}
		}
	})
}

// Base64 of a longer string holding the value, at any offset, holds one of
// the value's embedded patterns (when the value is long enough for one to
// be at least MinLen characters).
func TestPatternsFindEmbeddedBase64(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.SliceOfN(rapid.Byte(), 6, 48).Draw(t, "value")
		prefix := rapid.SliceOfN(rapid.Byte(), 0, 10).Draw(t, "prefix")
		suffix := rapid.SliceOfN(rapid.Byte(), 0, 10).Draw(t, "suffix")
		enc := rapid.SampledFrom([]*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding}).Draw(t, "encoding")
		whole := enc.EncodeToString(slices.Concat(prefix, v, suffix))
		for _, p := range mask.Patterns(v) {
			if bytes.Contains([]byte(whole), p) {
				return
			}
		}
		t.Fatalf("no pattern of %q found in %q", v, whole)
	})
}
