package mask_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/mask"
)

// maskAll writes chunks through a fresh Writer and returns the output
// after Close.
func maskAll(t testing.TB, m *mask.Matcher, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	w := m.NewWriter(&out)
	for _, c := range chunks {
		n, err := w.Write([]byte(c))
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q): got %d, %v, want %d, nil", c, n, err, len(c))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string // exact patterns (CompilePatterns)
		chunks   []string
		want     string
	}{
		{"NoPatterns", nil, []string{"hello ", "world"}, "hello world"},
		{"Whole", []string{"s3cret"}, []string{"a s3cret b"}, "a *** b"},
		{"SplitAcrossWrites", []string{"s3cret"}, []string{"a s3", "cr", "et b"}, "a *** b"},
		{"ByteByByte", []string{"s3cret"}, strings.Split("xs3crety", ""), "x***y"},
		{"AtStartAndEnd", []string{"s3cret"}, []string{"s3cret", "s3cret"}, "***"},
		{"Repeated", []string{"s3cret"}, []string{"s3cret-s3cret"}, "***-***"},
		{"PartialIsNotMasked", []string{"s3cret"}, []string{"s3cre", "t"[:0], "x s3cre"}, "s3crex s3cre"},
		{"FalseStartThenMatch", []string{"aaab"}, []string{"aa", "aaab"}, "aa***"},
		{"PrefixOfAnother", []string{"abcd", "abcdefgh"}, []string{"xabcdefghx abcdex"}, "x***x ***ex"},
		{"Overlapping", []string{"abcd", "cdef"}, []string{"xabcdefx"}, "x***x"},
		{"Nested", []string{"bcde", "abcdefgh"}, []string{"abcdefg", "h-bcde"}, "***-***"},
		{"Touching", []string{"abcd", "efgh"}, []string{"abcdefgh"}, "***"},
		{"SelfOverlap", []string{"aaaa"}, []string{"aaaaaaa b aaa"}, "*** b aaa"},
		{"ShortIgnored", []string{"abc", "abcd"}, []string{"abc abcd"}, "abc ***"},
		{"Binary", []string{"\x00\xff\x01\xfe"}, []string{"\x00\xff", "\x01\xfe\x00"}, "***\x00"},
		{"Empty", []string{"abcd"}, []string{"", ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pats [][]byte
			for _, p := range tt.patterns {
				pats = append(pats, []byte(p))
			}
			got := maskAll(t, mask.CompilePatterns(pats), tt.chunks...)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriterEncodings(t *testing.T) {
	const value = "p@ss w0rd/+<&>\"é"
	m := mask.Compile([][]byte{[]byte(value)})
	tests := []struct {
		name, in string
	}{
		{"Raw", value},
		{"Base64Std", base64.StdEncoding.EncodeToString([]byte(value))},
		{"Base64URL", base64.RawURLEncoding.EncodeToString([]byte(value))},
		{"BasicAuth", base64.StdEncoding.EncodeToString([]byte("user:" + value))},
		{"Query", "q=p%40ss+w0rd%2F%2B%3C%26%3E%22%C3%A9&x=1"},
		{"Path", "/p@ss%20w0rd%2F+%3C&%3E%22%C3%A9/x"},
		{"JSON", `{"v":"p@ss w0rd/+\u003c\u0026\u003e\"é"}`},
		{"JSONNoHTML", `{"v":"p@ss w0rd/+<&>\"é"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := maskAll(t, m, tt.in)
			if !strings.Contains(got, mask.Replacement) {
				t.Errorf("got %q, want the value masked", got)
			}
			for _, p := range mask.Patterns([]byte(value)) {
				if containsFold([]byte(got), p) {
					t.Errorf("got %q, holding pattern %q", got, p)
				}
			}
		})
	}
}

// Each byte-by-byte encoding, and the value itself, is masked whatever the
// case of its ASCII letters; only ASCII letters are folded.
func TestWriterEscapeEncodings(t *testing.T) {
	const value = "Pä$😀" // 50 c3a4 24 f09f9880
	m := mask.Compile([][]byte{[]byte(value)})
	tests := []struct {
		name, in, want string
	}{
		{"HexLower", "50c3a424f09f9880", "***"},
		{"HexUpper", "50C3A424F09F9880", "***"},
		{"HexMixed", "50c3A424f09F9880", "***"},
		{"PercentUpper", "%50%C3%A4%24%F0%9F%98%80", "***"},
		{"PercentLower", "%50%c3%a4%24%f0%9f%98%80", "***"},
		{"PercentMixed", "%50%c3%A4%24%F0%9f%98%80", "***"},
		{"JSONBytes", `\u0050\u00c3\u00a4\u0024\u00f0\u009f\u0098\u0080`, "***"},
		{"JSONBytesUpper", `\u0050\u00C3\u00A4\u0024\u00F0\u009F\u0098\u0080`, "***"},
		{"JSONCharacters", `\u0050\u00e4\u0024\ud83d\ude00`, "***"},
		{"JSONCharactersUpper", `\u0050\u00E4\u0024\uD83D\uDE00`, "***"},
		{"JSONCharactersMixed", `\u0050\u00e4\u0024\uD83d\udE00`, "***"},
		{"PythonJSON", `{"v": "P\u00e4$\ud83d\ude00"}`, `{"v": "***"}`},
		{"XEscapes", `\x50\xc3\xa4\x24\xf0\x9f\x98\x80`, "***"},
		{"XEscapesUpper", `\x50\xC3\xA4\x24\xF0\x9F\x98\x80`, "***"},
		{"Embedded", "key=50C3a424f09f9880;", "key=***;"},
		{"SplitAcrossWrites", "%50%c3%A4%24%F0%9f%98%80", "***"}, // cut below
		{"ValueLowerCase", "pä$😀", "***"},
		{"NonASCIINotFolded", "PÄ$😀", "PÄ$😀"},
		{"Partial", "50c3a424f09f98", "50c3a424f09f98"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := []string{tt.in}
			if tt.name == "SplitAcrossWrites" {
				chunks = []string{tt.in[:5], tt.in[5:13], tt.in[13:]}
			}
			if got := maskAll(t, m, chunks...); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Matching ignores ASCII case in every part of the automaton: the dense
// rows, the sparse states, and the prefilters testing every position
// (shortest pattern 4 bytes) or one in several (longer patterns).
func TestWriterIgnoresCase(t *testing.T) {
	// Text on both sides, so that every prefilter loop meets the match.
	const filler = "; some ordinary output around it; "
	tests := []struct {
		name     string
		patterns []string
		in, want string
	}{
		{"Upper", []string{"s3cr"}, filler + "S3CR." + filler, filler + "***." + filler},
		{"Mixed", []string{"s3cr"}, filler + "s3Cr." + filler, filler + "***." + filler},
		{"PatternUpper", []string{"S3CR"}, filler + "s3cr." + filler, filler + "***." + filler},
		{"LongUpper", []string{"0123456789abcdef"}, filler + "0123456789ABCDEF." + filler, filler + "***." + filler},
		{"LongMixed", []string{"0123456789abcdef", "wxyz"}, filler + "0123456789aBcDeF." + filler, filler + "***." + filler},
		{"LettersOnly", []string{"a@b[c\\d"}, filler + "A`B{C|D a@B[c\\D" + filler, filler + "A`B{C|D ***" + filler},
		{"ASCIIOnly", []string{"café"}, filler + "cafÉ CAFé" + filler, filler + "cafÉ ***" + filler},
	}
	for _, sparse := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/AllSparse=%v", tt.name, sparse), func(t *testing.T) {
				if sparse {
					t.Cleanup(mask.SetDenseLimits(1, 0))
				}
				var pats [][]byte
				for _, p := range tt.patterns {
					pats = append(pats, []byte(p))
				}
				if got := maskAll(t, mask.CompilePatterns(pats), tt.in); got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// Patterns that differ only in ASCII case are one pattern.
func TestMatcherLenIgnoresCase(t *testing.T) {
	m := mask.CompilePatterns([][]byte{[]byte("abcd"), []byte("ABCD"), []byte("aBcD"), []byte("abcé"), []byte("abcÉ")})
	if got, want := m.Len(), 3; got != want {
		t.Errorf("got %d patterns, want %d", got, want)
	}
}

func TestWriterMultiLineValue(t *testing.T) {
	key := "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkqhkiG\r\nw0BAQEFAASC\r\n-----END KEY-----\r\n"
	m := mask.Compile([][]byte{[]byte(key)})
	// A program that prints the key line by line, with other line ends.
	in := strings.ReplaceAll(key, "\r\n", "\n")
	got := maskAll(t, m, in)
	if want := "***\n***\n***\n***\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriterHoldsBackOnlyPossibleStarts(t *testing.T) {
	m := mask.CompilePatterns([][]byte{[]byte("secret")})
	var out bytes.Buffer
	w := m.NewWriter(&out)
	steps := []struct {
		in       string
		wantOut  string
		wantHeld int
	}{
		{"hello ", "hello ", 0},
		{"sec", "hello ", 3},
		{"x", "hello secx", 0},
		{"se", "hello secx", 2},
		{"cret", "hello secx***", 0},
		{" s", "hello secx*** ", 1},
	}
	for _, s := range steps {
		if _, err := w.Write([]byte(s.in)); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != s.wantOut {
			t.Errorf("after %q: got output %q, want %q", s.in, got, s.wantOut)
		}
		if got := w.Buffered(); got != s.wantHeld {
			t.Errorf("after %q: got %d held, want %d", s.in, got, s.wantHeld)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "hello secx*** s"; got != want {
		t.Errorf("after Flush: got %q, want %q", got, want)
	}
	if got := w.Buffered(); got != 0 {
		t.Errorf("after Flush: got %d held, want 0", got)
	}
}

// countingWriter counts the writes it receives.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriterOneDestinationWritePerWrite(t *testing.T) {
	m := mask.CompilePatterns([][]byte{[]byte("abcd"), []byte("wxyz")})
	var dst countingWriter
	w := m.NewWriter(&dst)
	if _, err := w.Write([]byte("1 abcd 2 wxyz 3 abcd 4 ab")); err != nil {
		t.Fatal(err)
	}
	if dst.writes != 1 {
		t.Errorf("got %d writes, want 1", dst.writes)
	}
	if _, err := w.Write([]byte("")); err != nil || dst.writes != 1 {
		t.Errorf("empty write: got %d writes, err %v, want 1, nil", dst.writes, err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterErrors(t *testing.T) {
	boom := errors.New("boom")
	w := mask.New(failingWriter{boom}, [][]byte{[]byte("secret")})
	if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, boom) {
		t.Errorf("second write: got %v, want %v", err, boom)
	}

	var out bytes.Buffer
	w = mask.New(&out, [][]byte{[]byte("secret")})
	if _, err := w.Write([]byte("sec")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "sec" {
		t.Errorf("Close: got %q, want the held tail %q", got, "sec")
	}
	if _, err := w.Write([]byte("ret")); !errors.Is(err, mask.ErrClosed) {
		t.Errorf("write after Close: got %v, want %v", err, mask.ErrClosed)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}

func TestMatcherIgnoresShortValues(t *testing.T) {
	values := [][]byte{[]byte("abc"), []byte("abcd"), nil}
	if got, want := mask.Short(values), []int{0, 2}; !equalInts(got, want) {
		t.Errorf("Short: got %v, want %v", got, want)
	}
	m := mask.Compile(values)
	if got := maskAll(t, m, "abc abcd"); got != "abc ***" {
		t.Errorf("got %q, want %q", got, "abc ***")
	}
	if got := mask.Compile(nil).Len(); got != 0 {
		t.Errorf("Len without values: got %d, want 0", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The longest pattern of a value is its \u00XX form, six bytes a byte: a
// Writer holds back less than that.
func TestMatcherLongest(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"ASCII", []string{"abcd", "s3cret"}, 36},
		{"NonASCII", []string{"Pä$😀"}, 48},
		{"Control", []string{"\x01<\xff\u2028"}, 36},
		{"OnlyShort", []string{"abc"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vals [][]byte
			for _, v := range tt.values {
				vals = append(vals, []byte(v))
			}
			if got := mask.Compile(vals).Longest(); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
