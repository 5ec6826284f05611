package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
)

// MinLen is the length of the shortest value, and of the shortest pattern,
// that is masked. Shorter ones match ordinary output too often for masking
// them to mean anything; callers should say which values went unmasked.
const MinLen = 4

// Patterns returns the byte strings that reveal value when they appear in
// output, sorted and without duplicates, each at least MinLen bytes long.
// A value shorter than MinLen has none. They are:
//
//   - the value itself, and the value with surrounding white space trimmed
//     (a value read from a file often ends in a newline that $(...) drops);
//   - each line of a multi-line value ("\n"-separated, a trailing "\r"
//     trimmed), since programs print keys and certificates line by line;
//   - for the value and its trimmed form: base64, standard and URL-safe
//     alphabets, padded and unpadded; percent-encoding as url.QueryEscape
//     and url.PathEscape write it (upper-case hex); and the value as it
//     appears inside a JSON string, with and without HTML escaping;
//   - base64 of the value embedded in a longer byte string: the characters
//     that depend on the value's bytes only, for each of the three offsets
//     modulo 3 the value can start at (as in base64("user:" + password)).
//
// Limitations: base64 that a program wraps into lines (base64(1) wraps at
// 76 characters) is matched line by line only through the embedded forms
// that fit in one line; other encodings (hex, gzip, a value split by the
// program across separate lines, or a prefix of a value) are not matched.
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
		add(jsonString(v, true))
		add(jsonString(v, false))
	}
	out := make([][]byte, 0, len(set))
	for p := range set {
		out = append(out, []byte(p))
	}
	slices.SortFunc(out, bytes.Compare)
	return out
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
