package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// MinLen is the length of the shortest value, and of the shortest pattern,
// that is masked. Shorter ones match ordinary output too often for masking
// them to mean anything; callers should say which values went unmasked.
const MinLen = 4

// Patterns returns the byte strings that reveal value when they appear in
// output, sorted and without duplicates, each at least MinLen bytes long.
// A value shorter than MinLen has none. A Matcher ignores ASCII case, so
// each string stands for all its case variants: where an encoding may
// write its hex digits in either case, one spelling is listed, and "4a4B"
// is matched as "4a4b" is.
//
// They are the value itself; the value with surrounding white space
// trimmed (a value read from a file often ends in a newline that $(...)
// drops); each line of a multi-line value ("\n"-separated, a trailing
// "\r" trimmed), since programs print keys and certificates line by line;
// and these encodings of the value and of its trimmed form:
//
//   - base64, standard and URL-safe alphabets, padded and unpadded;
//   - base64 of the value embedded in a longer byte string: the characters
//     that depend on the value's bytes only, for each of the three offsets
//     modulo 3 the value can start at (as in base64("user:" + password));
//   - percent-encoding as url.QueryEscape and url.PathEscape write it, and
//     of every byte ("%41%C3%A9" for "Aé");
//   - the value as encoding/json writes it inside a string, with and
//     without HTML escaping, and with every non-ASCII character escaped
//     too ("A\u00e9", as Python's json.dumps writes it by default); every
//     byte as a JSON escape
//     ("\u0041\u00c3\u00a9" for "Aé": the bytes read as Latin-1, which
//     for an ASCII value is also every character escaped); and, for valid
//     UTF-8 that is not all ASCII, every character as a JSON escape
//     ("\u0041\u00e9", a character above U+FFFF as its UTF-16 surrogate
//     pair "\ud83d\ude00");
//   - hex ("41c3a9") and every byte as a "\x" escape ("\x41\xc3\xa9").
//
// Limitations: base64 that a program wraps into lines (base64(1) wraps at
// 76 characters) is matched line by line only through the embedded forms
// that fit in one line. Not matched: the encodings of a single line of a
// multi-line value; hex with separators ("41:c3", "41 c3"); a value only
// partly escaped other than as the url and json packages do it; other
// encodings (base32, octal escapes, gzip…); a value that the program
// splits across lines or otherwise; a prefix of a value.
func Patterns(value []byte) [][]byte {
	if len(value) < MinLen {
		return nil
	}
	set := map[string]struct{}{}
	add := func(p []byte) {
		if len(p) >= MinLen {
			set[string(p)] = struct{}{}
		}
	}
	forms := [][]byte{value}
	if t := bytes.TrimSpace(value); len(t) != len(value) && len(t) >= MinLen {
		forms = append(forms, t)
	}
	if bytes.IndexByte(value, '\n') >= 0 {
		for line := range bytes.SplitSeq(value, []byte("\n")) {
			add(bytes.TrimSuffix(line, []byte("\r")))
		}
	}
	for _, v := range forms {
		add(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			add([]byte(enc.EncodeToString(v)))
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for shift := range 3 {
				add(embeddedBase64(enc, v, shift))
			}
		}
		add([]byte(url.QueryEscape(string(v))))
		add([]byte(url.PathEscape(string(v))))
		add(escapeBytes(v, "%", upperHex))
		add(jsonString(v, true))
		add(jsonString(v, false))
		add(escapeBytes(v, `\u00`, lowerHex))
		if !isASCII(v) { // else both are the same as forms above
			add(escapeRunes(jsonString(v, false), false))
			if utf8.Valid(v) {
				add(escapeRunes(v, true))
			}
		}
		add(escapeBytes(v, "", lowerHex))
		add(escapeBytes(v, `\x`, lowerHex))
	}
	out := make([][]byte, 0, len(set))
	for p := range set {
		out = append(out, []byte(p))
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

const (
	lowerHex = "0123456789abcdef"
	upperHex = "0123456789ABCDEF"
)

// escapeBytes returns each byte of value as prefix followed by its two hex
// digits: hex itself with no prefix.
func escapeBytes(value []byte, prefix, digits string) []byte {
	out := make([]byte, 0, len(value)*(len(prefix)+2))
	for _, b := range value {
		out = append(out, prefix...)
		out = append(out, digits[b>>4], digits[b&15])
	}
	return out
}

// escapeRunes returns s (valid UTF-8) with every character, or with every
// non-ASCII character when all is false, as a JSON "\uXXXX" escape: a
// character above U+FFFF as its UTF-16 surrogate pair.
func escapeRunes(s []byte, all bool) []byte {
	out := make([]byte, 0, 6*len(s))
	unit := func(u rune) {
		out = append(out, '\\', 'u', lowerHex[u>>12&15], lowerHex[u>>8&15], lowerHex[u>>4&15], lowerHex[u&15])
	}
	for _, r := range string(s) {
		switch r1, r2 := utf16.EncodeRune(r); {
		case r < utf8.RuneSelf && !all:
			out = append(out, byte(r))
		case r1 != utf8.RuneError:
			unit(r1)
			unit(r2)
		default:
			unit(r)
		}
	}
	return out
}

func isASCII(p []byte) bool {
	for _, b := range p {
		if b >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// embeddedBase64 returns the base64 characters (in enc's alphabet, without
// padding) that encode value wherever it sits in a longer byte string at an
// offset of shift (mod 3): the characters made only of the value's bits.
func embeddedBase64(enc *base64.Encoding, value []byte, shift int) []byte {
	buf := make([]byte, shift+len(value))
	copy(buf[shift:], value)
	s := enc.EncodeToString(buf)
	first := (8*shift + 5) / 6           // characters touching the prefix
	last := 8 * (shift + len(value)) / 6 // characters made of whole sextets
	if last <= first {
		return nil
	}
	return []byte(s[first:last])
}

// jsonString returns value as encoding/json writes it inside a string,
// without the quotes.
func jsonString(value []byte, escapeHTML bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(string(value)); err != nil {
		return nil // a string always encodes
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(out) < 2 {
		return nil
	}
	return out[1 : len(out)-1]
}
