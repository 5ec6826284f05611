package mask_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/cli/internal/mask"
)

// fold returns b with A–Z lowered (and no other change: not
// bytes.ToLower, which lowers non-ASCII letters too).
func fold(b []byte) []byte {
	out := slices.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}

// containsFold reports whether b holds p, ignoring ASCII case.
func containsFold(b, p []byte) bool { return bytes.Contains(fold(b), fold(p)) }

// reference masks in with the obvious quadratic method: mark every byte of
// every occurrence of every pattern, ASCII case ignored, then write each
// run of marked bytes as one Replacement.
func reference(patterns [][]byte, in []byte) []byte {
	covered := make([]bool, len(in))
	lower := fold(in)
	for _, p := range patterns {
		if len(p) < mask.MinLen {
			continue
		}
		p = fold(p)
		for off := 0; ; off++ {
			i := bytes.Index(lower[off:], p)
			if i < 0 {
				break
			}
			off += i
			for j := off; j < off+len(p); j++ {
				covered[j] = true
			}
		}
	}
	var out []byte
	for i := 0; i < len(in); i++ {
		if !covered[i] {
			out = append(out, in[i])
			continue
		}
		out = append(out, mask.Replacement...)
		for i+1 < len(in) && covered[i+1] {
			i++
		}
	}
	return out
}

// gen says what values to draw.
type gen struct {
	star    bool // values may hold '*'
	newline bool // values may hold line breaks
	minLen  int  // shortest value
}

// byteGen draws mostly from a small alphabet, so that values overlap and
// repeat (in either case), and sometimes any byte.
func (g gen) byteGen() *rapid.Generator[byte] {
	small := []byte("aaAb\n\r")
	return rapid.Custom(func(t *rapid.T) byte {
		var b byte
		if rapid.IntRange(0, 3).Draw(t, "any") == 0 {
			b = rapid.Byte().Draw(t, "byte")
		} else {
			b = rapid.SampledFrom(small).Draw(t, "small")
		}
		if !g.star && b == '*' || !g.newline && (b == '\n' || b == '\r') {
			b = 'a'
		}
		return b
	})
}

// values draws up to six values, some derived from others: a prefix, an
// extension, or an overlap (the tail of one starting another).
func (g gen) values() *rapid.Generator[[][]byte] {
	return rapid.Custom(func(t *rapid.T) [][]byte {
		n := rapid.IntRange(1, 6).Draw(t, "values")
		var vals [][]byte
		for i := range n {
			fresh := rapid.SliceOfN(g.byteGen(), g.minLen, g.minLen+24).Draw(t, "value")
			if i == 0 {
				vals = append(vals, fresh)
				continue
			}
			other := vals[rapid.IntRange(0, i-1).Draw(t, "other")]
			cut := rapid.IntRange(0, len(other)).Draw(t, "cut")
			var v []byte
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				v = fresh
			case 1: // a prefix of another
				v = slices.Clone(other[:cut])
			case 2: // another is its prefix
				v = slices.Concat(other, fresh)
			case 3: // overlaps another's tail
				v = slices.Concat(other[cut:], fresh)
			}
			if len(v) < g.minLen {
				v = fresh
			}
			vals = append(vals, v)
		}
		return vals
	})
}

// genOutput draws output made of noise and occurrences of the patterns,
// some in another case.
func genOutput(t *rapid.T, pats [][]byte) []byte {
	var out []byte
	for range rapid.IntRange(0, 12).Draw(t, "segments") {
		if len(pats) > 0 && rapid.Bool().Draw(t, "pattern") {
			p := pats[rapid.IntRange(0, len(pats)-1).Draw(t, "which")]
			if rapid.IntRange(0, 4).Draw(t, "partial") == 0 {
				p = p[:rapid.IntRange(0, len(p)).Draw(t, "cut")]
			}
			out = append(out, recase(t, p)...)
			continue
		}
		out = append(out, rapid.SliceOfN(gen{star: true, newline: true}.byteGen(), 0, 16).Draw(t, "noise")...)
	}
	return out
}

// recase returns p as it is, in lower or upper case, or with the case of
// each ASCII letter drawn at random.
func recase(t *rapid.T, p []byte) []byte {
	switch rapid.IntRange(0, 5).Draw(t, "case") {
	case 0:
		return fold(p)
	case 1:
		return upperASCII(p)
	case 2:
		out := slices.Clone(p)
		for i, c := range out {
			if ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && rapid.Bool().Draw(t, "flip") {
				out[i] = c ^ 0x20
			}
		}
		return out
	}
	return p
}

// upperASCII returns p with a–z raised.
func upperASCII(p []byte) []byte {
	out := slices.Clone(p)
	for i, c := range out {
		if 'a' <= c && c <= 'z' {
			out[i] = c - 'a' + 'A'
		}
	}
	return out
}

// genChunks cuts b into random pieces (empty ones included).
func genChunks(t *rapid.T, b []byte) [][]byte {
	var chunks [][]byte
	for len(b) > 0 {
		n := rapid.IntRange(0, min(len(b), 40)).Draw(t, "chunk")
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

func allPatterns(vals [][]byte) [][]byte {
	var pats [][]byte
	for _, v := range vals {
		pats = append(pats, mask.Patterns(v)...)
	}
	return pats
}

// longestPrefixSuffix returns the length of the longest suffix of b that is
// a proper prefix of a pattern, ASCII case ignored: the most a Writer may
// need to hold.
func longestPrefixSuffix(pats [][]byte, b []byte) int {
	best := 0
	b = fold(b)
	for _, p := range pats {
		p = fold(p)
		for n := min(len(p)-1, len(b)); n > best; n-- {
			if bytes.Equal(b[len(b)-n:], p[:n]) {
				best = n
				break
			}
		}
	}
	return best
}

// Streaming gives exactly the reference result, however the output is cut
// into writes, and holds back no more than needed: with short values (every
// position tested), long ones (one position in several tested) and with
// every state but the root sparse.
func TestWriterMatchesReference(t *testing.T) {
	tests := []struct {
		name          string
		gen           gen
		budget, depth int
	}{
		{"ShortValues", gen{star: true, newline: true}, 0, 0},
		{"LongValues", gen{star: true, minLen: 8}, 0, 0},
		{"LongValuesWithLines", gen{star: true, newline: true, minLen: 8}, 0, 0},
		{"AllSparse", gen{star: true, newline: true}, 1, 0},
		{"AllSparseLong", gen{star: true, minLen: 8}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.budget != 0 {
				t.Cleanup(mask.SetDenseLimits(tt.budget, uint32(tt.depth)))
			}
			rapid.Check(t, func(t *rapid.T) {
				checkReference(t, tt.gen.values().Draw(t, "values"))
			})
		})
	}
}

func checkReference(t *rapid.T, vals [][]byte) {
	pats := allPatterns(vals)
	m := mask.Compile(vals)
	in := genOutput(t, pats)
	var out bytes.Buffer
	w := m.NewWriter(&out)
	var written []byte
	for _, c := range genChunks(t, in) {
		if n, err := w.Write(c); n != len(c) || err != nil {
			t.Fatalf("Write: got %d, %v, want %d, nil", n, err, len(c))
		}
		written = append(written, c...)
		if held := w.Buffered(); held >= max(m.Longest(), 1) {
			t.Fatalf("got %d bytes held, want fewer than the longest pattern (%d)", held, m.Longest())
		}
		if held, most := w.Buffered(), longestPrefixSuffix(pats, written); held > most {
			t.Fatalf("got %d bytes held after %q, want at most %d", held, written, most)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := reference(pats, in); !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("got  %q\nwant %q\n(input %q)", out.Bytes(), want, in)
	}
}

// The configurations above reach what they are meant to.
func TestAutomatonShapes(t *testing.T) {
	long := mask.Compile([][]byte{[]byte("0123456789abcdef"), []byte("fedcba9876543210xyz")})
	if got := long.Stats(); got.Stride != 13 || got.Dense >= got.States {
		t.Errorf("long values: got %+v, want stride 13 and sparse states", got)
	}
	short := mask.Compile([][]byte{[]byte("abcd"), []byte("0123456789abcdef")})
	if got := short.Stats(); got.Stride != 1 {
		t.Errorf("short values: got %+v, want stride 1", got)
	}
	defer mask.SetDenseLimits(1, 0)()
	sparse := mask.Compile([][]byte{[]byte("0123456789abcdef")})
	if got := sparse.Stats(); got.Dense != 1 {
		t.Errorf("all sparse: got %+v, want 1 dense state", got)
	}
}

// No value of at least MinLen bytes, nor any listed encoding of it, in any
// case, survives in the output. (Values hold no '*', so that the Replacement
// next to other output cannot spell one.)
func TestWriterLeavesNoPattern(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := gen{newline: true}.values().Draw(t, "values")
		pats := allPatterns(vals)
		in := genOutput(t, pats)
		var out bytes.Buffer
		w := mask.New(&out, vals)
		for _, c := range genChunks(t, in) {
			if _, err := w.Write(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if len(v) >= mask.MinLen && containsFold(out.Bytes(), v) {
				t.Fatalf("value %q survives in %q", v, out.Bytes())
			}
		}
		for _, p := range pats {
			if containsFold(out.Bytes(), p) {
				t.Fatalf("pattern %q survives in %q", p, out.Bytes())
			}
		}
	})
}

// Output holding no pattern, in any case, passes through byte for byte.
func TestWriterPassesCleanOutput(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := gen{star: true, newline: true}.values().Draw(t, "values")
		pats := allPatterns(vals)
		in := rapid.SliceOfN(gen{star: true, newline: true}.byteGen(), 0, 200).Draw(t, "output")
		for _, p := range pats {
			if containsFold(in, p) {
				t.Skip("output holds a pattern")
			}
		}
		var out bytes.Buffer
		w := mask.New(&out, vals)
		for _, c := range genChunks(t, in) {
			if _, err := w.Write(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("got %q, want %q unchanged", out.Bytes(), in)
		}
	})
}

// Many long values push most states out of the dense table; the sparse
// states must behave the same. The matcher is compiled once: it is big.
func TestWriterSparseStates(t *testing.T) {
	// Values using every byte make 231 classes (A–Z share a–z's); three
	// long values exceed the dense budget (4 Mi entries / 231 = 18 Ki
	// states).
	rnd := rand.New(rand.NewPCG(1, 2))
	long := make([]byte, 3000)
	for i := range long {
		long[i] = byte(rnd.UintN(256))
	}
	var vals [][]byte
	for i := range 3 {
		v := slices.Clone(long)
		v[i*1000] ^= 0xff // share prefixes and suffixes
		vals = append(vals, v)
	}
	for b := range 256 {
		vals = append(vals, []byte{byte(b), 'x', 'y', 'z'}, []byte{'x', byte(b), 'x', byte(b)})
	}
	pats := allPatterns(vals)
	m := mask.Compile(vals)
	rapid.Check(t, func(t *rapid.T) {
		in := genOutput(t, pats)
		var out bytes.Buffer
		w := m.NewWriter(&out)
		for _, c := range genChunks(t, in) {
			if _, err := w.Write(c); err != nil {
				t.Fatal(err)
			}
			if held := w.Buffered(); held >= m.Longest() {
				t.Fatalf("got %d bytes held, want fewer than %d", held, m.Longest())
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if want := reference(pats, in); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("got  %q\nwant %q", out.Bytes(), want)
		}
	})
}

// FuzzWriter compares the Writer with the reference on two values, an
// output and a write size.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("s3cret"), []byte("cret-and-more"), []byte("a s3cret-and-more b"), uint8(3))
	f.Add([]byte("line one\nline two"), []byte("aaaa"), []byte("line two aaaaaaa"), uint8(1))
	f.Fuzz(func(t *testing.T, v1, v2, in []byte, size uint8) {
		vals := [][]byte{v1, v2}
		pats := allPatterns(vals)
		var out bytes.Buffer
		w := mask.New(&out, vals)
		step := int(size%64) + 1
		for off := 0; off < len(in); off += step {
			if _, err := w.Write(in[off:min(off+step, len(in))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if want := reference(pats, in); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("got  %q\nwant %q", out.Bytes(), want)
		}
	})
}

// valueGen draws a value of at least MinLen bytes holding no '*': either
// any bytes, or text mixing ASCII, characters special to the encodings,
// multi-byte UTF-8 (up to four bytes) and any character.
func valueGen() *rapid.Generator[[]byte] {
	special := []rune("aZ09 /+%&<>\"\\\n\r\t\x7féÄ€\u2028😀")
	char := rapid.OneOf(rapid.SampledFrom(special), rapid.Rune())
	text := rapid.Custom(func(t *rapid.T) []byte {
		return []byte(string(rapid.SliceOfN(char, 1, 16).Draw(t, "chars")))
	})
	anyBytes := rapid.SliceOfN(rapid.Byte(), mask.MinLen, 32)
	return rapid.Custom(func(t *rapid.T) []byte {
		v := rapid.OneOf(text, anyBytes).Draw(t, "value")
		v = bytes.ReplaceAll(v, []byte("*"), []byte("a"))
		for len(v) < mask.MinLen {
			v = append(v, 'x')
		}
		return v
	})
}

// An encoding is one way a program may print a value.
type encoding struct {
	name, text string
	anyCase    bool // may be printed in any ASCII case: not base64
}

// encodings returns the ways of printing v that Patterns promises to
// cover, computed with the standard library rather than the package.
func encodings(v []byte) []encoding {
	s := string(v)
	var es []encoding
	add := func(name, text string, anyCase bool) { es = append(es, encoding{name, text, anyCase}) }
	each := func(format string, units []int) string {
		var b strings.Builder
		for _, u := range units {
			fmt.Fprintf(&b, format, u)
		}
		return b.String()
	}
	byteUnits := make([]int, len(v))
	for i, c := range v {
		byteUnits[i] = int(c)
	}
	jsonOf := func(escapeHTML bool) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		_ = enc.Encode(s)
		quoted := strings.TrimSuffix(b.String(), "\n")
		return quoted[1 : len(quoted)-1]
	}

	add("Raw", s, true)
	if t := strings.TrimSpace(s); t != s {
		add("Trimmed", t, true)
	}
	if strings.Contains(s, "\n") {
		for i, line := range strings.Split(s, "\n") {
			add(fmt.Sprintf("Line%d", i), strings.TrimSuffix(line, "\r"), true)
		}
	}
	add("Base64Std", base64.StdEncoding.EncodeToString(v), false)
	add("Base64RawStd", base64.RawStdEncoding.EncodeToString(v), false)
	add("Base64URL", base64.URLEncoding.EncodeToString(v), false)
	add("Base64RawURL", base64.RawURLEncoding.EncodeToString(v), false)
	add("Hex", hex.EncodeToString(v), true)
	add("PercentEveryByte", each("%%%02X", byteUnits), true)
	add("Query", url.QueryEscape(s), true)
	add("Path", url.PathEscape(s), true)
	add("JSON", jsonOf(true), true)
	add("JSONNoHTML", jsonOf(false), true)
	add("JSONEveryByte", each(`\u%04x`, byteUnits), true)
	if utf8.Valid(v) {
		var units []int
		for _, u := range utf16.Encode([]rune(s)) {
			units = append(units, int(u))
		}
		add("JSONEveryCharacter", each(`\u%04x`, units), true)
		var ascii strings.Builder // Python's json.dumps
		for _, r := range jsonOf(false) {
			if r < utf8.RuneSelf {
				ascii.WriteRune(r)
				continue
			}
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&ascii, `\u%04x`, u)
			}
		}
		add("JSONASCII", ascii.String(), true)
	}
	add("XEscapes", each(`\x%02x`, byteUnits), true)
	return es
}

// No encoding of any value that Patterns promises, in any case where the
// encoding allows it (hex digits in either case, or mixed), survives the
// relay, embedded in random bytes and cut into random writes.
func TestWriterLeavesNoEncoding(t *testing.T) {
	for _, sparse := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllSparse=%v", sparse), func(t *testing.T) {
			if sparse {
				t.Cleanup(mask.SetDenseLimits(1, 0))
			}
			rapid.Check(t, checkNoEncoding)
		})
	}
}

func checkNoEncoding(t *rapid.T) {
	vals := rapid.SliceOfN(valueGen(), 1, 3).Draw(t, "values")
	noise := rapid.SliceOfN(rapid.Byte(), 0, 8)
	var in []byte
	for range rapid.IntRange(1, 6).Draw(t, "segments") {
		in = append(in, noise.Draw(t, "noise")...)
		e := rapid.SampledFrom(encodings(rapid.SampledFrom(vals).Draw(t, "value"))).Draw(t, "encoding")
		text := []byte(e.text)
		if e.anyCase {
			text = recase(t, text)
		}
		in = append(in, text...)
	}
	in = append(in, noise.Draw(t, "noise")...)
	var out bytes.Buffer
	w := mask.New(&out, vals)
	for _, c := range genChunks(t, in) {
		if _, err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Checked in any case, base64 too: the Writer ignores case, so any
	// case variant in the output would be a miss.
	for _, v := range vals {
		for _, e := range encodings(v) {
			if len(e.text) >= mask.MinLen && containsFold(out.Bytes(), []byte(e.text)) {
				t.Fatalf("%s of %q survives: %q in %q", e.name, v, e.text, out.Bytes())
			}
		}
	}
}
