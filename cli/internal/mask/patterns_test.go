package mask_test

import (
	"bytes"
	"encoding/base64"
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
		// One spelling of each hex encoding: the Matcher ignores case.
		{"Hex", "hunter22", []string{"68756e7465723232"}, []string{"68756E7465723232"}},
		{"PercentEveryByte", "hunter22", []string{"%68%75%6E%74%65%72%32%32"}, []string{"%68%75%6e%74%65%72%32%32"}},
		{"JSONEveryByte", "hunter22", []string{`\u0068\u0075\u006e\u0074\u0065\u0072\u0032\u0032`}, nil},
		{"XEscapes", "hunter22", []string{`\x68\x75\x6e\x74\x65\x72\x32\x32`}, nil},
		{"NonASCII", "Pä$😀", []string{
			"Pä$😀",
			"50c3a424f09f9880",
			"%50%C3%A4%24%F0%9F%98%80",
			`\u0050\u00c3\u00a4\u0024\u00f0\u009f\u0098\u0080`, // bytes as Latin-1
			`\u0050\u00e4\u0024\ud83d\ude00`,                   // characters, U+1F600 as a surrogate pair
			`P\u00e4$\ud83d\ude00`,                             // Python's json.dumps
			`\x50\xc3\xa4\x24\xf0\x9f\x98\x80`,
		}, nil},
		{"NotUTF8", "ab\xff\xfe", []string{"6162fffe", `\u0061\u0062\u00ff\u00fe`, `\x61\x62\xff\xfe`, "%61%62%FF%FE"},
			[]string{`\u0061\u0062\ufffd\ufffd`}}, // not characters: bytes only
		{"TrimmedEncoded", " abcd\n", []string{"61626364", "20616263640a"}, nil},
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

// The listed encodings of a value are what the standard library produces,
// up to ASCII case: the Matcher ignores it.
func TestPatternsHoldStandardEncodings(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := valueGen().Draw(t, "value")
		pats := mask.Patterns(v)
		has := func(s string) bool {
			return slices.ContainsFunc(pats, func(p []byte) bool { return bytes.Equal(fold(p), fold([]byte(s))) })
		}
		for _, e := range encodings(v) {
			if len(e.text) >= mask.MinLen && !has(e.text) {
				t.Fatalf("Patterns(%q) lacks %s %q", v, e.name, e.text)
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
