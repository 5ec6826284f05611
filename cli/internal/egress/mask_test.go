package egress

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Masking a stream gives what masking it whole gives, however the stream
// is cut into writes, and one writer serves stream after stream (the
// WebSocket relay reuses it per message). The reference is maskString,
// leftmost match first, the longest at a tie.
func TestMaskWriterAnyCut(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Values over a small alphabet, so that they overlap, repeat and
		// begin one another often.
		value := rapid.StringOfN(rapid.RuneFrom([]rune("abc")), 2, 6, -1)
		vals := rapid.SliceOfNDistinct(value, 1, 3, func(s string) string { return s }).Draw(t, "values")
		var masks []maskPair
		for i, v := range vals {
			masks = append(masks, maskPair{[]byte(v), []byte(strings.Repeat(string(rune('P'+i)), 1+i))})
		}
		m := newMaskWriter(nil, masks)
		if got, want := maskString(masks, strings.Join(vals, "x")), maskStringRef(masks, strings.Join(vals, "x")); got != want {
			t.Fatalf("maskString: got %q, want %q", got, want)
		}
		for s := range rapid.IntRange(1, 3).Draw(t, "streams") {
			in := rapid.StringOfN(rapid.RuneFrom([]rune("abcx")), 0, 60, -1).Draw(t, "stream")
			want := maskStringRef(masks, in)
			var got bytes.Buffer
			m.w = &got
			for rest := []byte(in); len(rest) > 0; {
				n := rapid.IntRange(1, len(rest)).Draw(t, "cut")
				// A fresh slice each time, overwritten after the write:
				// the writer must not keep the caller's bytes.
				chunk := append([]byte(nil), rest[:n]...)
				if _, err := m.Write(chunk); err != nil {
					t.Fatal(err)
				}
				clear(chunk)
				rest = rest[n:]
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if got.String() != want {
				t.Fatalf("stream %d %q cut up: got %q, want %q", s, in, got.String(), want)
			}
		}
	})
}

// maskStringRef masks s whole: at each position the leftmost match, the
// longest form at a tie.
func maskStringRef(masks []maskPair, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		best := -1
		for k, m := range masks {
			if strings.HasPrefix(s[i:], string(m.from)) && (best < 0 || len(m.from) > len(masks[best].from)) {
				best = k
			}
		}
		if best < 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.Write(masks[best].to)
		i += len(masks[best].from)
	}
	return b.String()
}

// One bound value that begins another (a key, and the same key with a
// suffix) must not cut the longer one short: the agent would get the
// longer value's rest in clear after the shorter one's placeholder. Both
// as a stream cut anywhere and as one string (headers, log lines).
func TestMaskValueThatBeginsAnother(t *testing.T) {
	short, long := "sk-live-Ab3dE", "sk-live-Ab3dE-Zq81xVw3pLr7"
	for _, order := range [][]maskPair{
		{{[]byte(short), []byte("<SHORT>")}, {[]byte(long), []byte("<LONG>")}},
		{{[]byte(long), []byte("<LONG>")}, {[]byte(short), []byte("<SHORT>")}},
	} {
		in := "a=" + long + " b=" + short + " c=" + long
		want := "a=<LONG> b=<SHORT> c=<LONG>"
		if got := maskString(order, in); got != want {
			t.Errorf("maskString: got %q, want %q", got, want)
		}
		for cut := 1; cut <= len(in); cut++ {
			var got bytes.Buffer
			m := newMaskWriter(&got, order)
			for rest := in; rest != ""; {
				n := min(cut, len(rest))
				m.Write([]byte(rest[:n]))
				rest = rest[n:]
			}
			m.Close()
			if got.String() != want {
				t.Fatalf("written %d bytes at a time: got %q, want %q", cut, got.String(), want)
			}
		}
	}
}
