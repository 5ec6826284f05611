// Package mask replaces secret values in a stream of output with "***".
//
// A Matcher is compiled once from the values and is shared by any number
// of Writers, one per stream. What it searches for (see Patterns) is each
// value of at least MinLen bytes, the value trimmed of white space, each
// line of a multi-line value, and these encodings of the value: base64
// (standard and URL-safe, padded or not, and the part of a longer base64
// string that encodes it), percent-encoding (as the url package writes it,
// and of every byte), JSON string forms (as encoding/json writes it, with
// non-ASCII characters escaped, and with every byte or every character as
// a \uXXXX escape), hex, and every byte as a \xXX escape.
//
// Matching ignores ASCII case: "4A4b" is masked as "4a4b" is, whatever
// case an encoder writes hex digits in, and so is an upper-cased or
// lower-cased value, itself a trivial way to print one. The price is
// over-masking, accepted: output that differs from a value (or from one of
// its encodings, base64 included) only in the case of ASCII letters is
// masked too. Non-ASCII letters are compared byte for byte.
//
// A Writer masks every occurrence of every pattern, however the stream is
// cut into writes, in one pass over the output whatever the number of
// values (an Aho–Corasick automaton). It holds back only the trailing
// bytes that could still be the start of a match: at most the longest
// pattern's length less one, which is six times the longest value's length
// less one (the value's \u00XX form).
//
// Overlapping occurrences, and patterns that are prefixes of others, are
// all masked: every byte covered by any occurrence is hidden, and each run
// of hidden bytes becomes a single "***". A match cannot reach back across
// Flush, and a value only partly printed is not masked.
package mask

import (
	"errors"
	"io"
)

// Replacement is what every run of masked bytes becomes.
const Replacement = "***"

// ErrClosed is returned by a Write after Close.
var ErrClosed = errors.New("mask: write after close")

// Matcher is the compiled set of patterns of some values. It is immutable
// and safe for concurrent use by many Writers.
type Matcher struct {
	a        *automaton
	patterns int
}

// Compile returns the Matcher of values: the union of Patterns(v) for
// each value, matched ignoring ASCII case. Values shorter than MinLen are
// ignored (see Short).
func Compile(values [][]byte) *Matcher {
	var pats [][]byte
	for _, v := range values {
		pats = append(pats, Patterns(v)...)
	}
	return CompilePatterns(pats)
}

// CompilePatterns returns the Matcher of exactly the given patterns, with
// no encodings added, matched ignoring ASCII case; patterns shorter than
// MinLen are ignored.
func CompilePatterns(patterns [][]byte) *Matcher {
	var keep [][]byte
	for _, p := range patterns {
		if len(p) >= MinLen {
			keep = append(keep, p)
		}
	}
	a := compile(keep)
	n := 0
	for s := 1; s < len(a.depth); s++ {
		if a.outLen[s] == a.depth[s] { // the state spells a whole pattern
			n++
		}
	}
	return &Matcher{a: a, patterns: n}
}

// Short returns the indexes of the values that Compile leaves unmasked
// because they are shorter than MinLen.
func Short(values [][]byte) []int {
	var out []int
	for i, v := range values {
		if len(v) < MinLen {
			out = append(out, i)
		}
	}
	return out
}

// Longest returns the length of the longest pattern (0 without patterns).
// A Writer holds back fewer bytes than that.
func (m *Matcher) Longest() int { return m.a.longest }

// Len returns the number of distinct patterns, ASCII case ignored.
func (m *Matcher) Len() int { return m.patterns }

// New returns a Writer masking values on their way to dst. It is
// Compile(values).NewWriter(dst).
func New(dst io.Writer, values [][]byte) *Writer {
	return Compile(values).NewWriter(dst)
}

// span is a half-open range [start, end) of masked stream positions.
type span struct{ start, end int64 }

// Writer masks what is written to it and writes the result to its
// destination. Each Write writes through, in at most one write to the
// destination, everything that can no longer be part of a match; Flush
// and Close write the rest. A Writer is not safe for concurrent use.
type Writer struct {
	m   *Matcher
	dst io.Writer

	state uint32 // automaton state after the last byte
	pos   int64  // stream position after the last byte
	base  int64  // stream position of held[0]: everything before is written
	held  []byte
	cover []span // masked spans ending after base, sorted, disjoint
	// inMask: the last thing written was Replacement, so masked bytes that
	// follow directly add nothing.
	inMask bool

	out    []byte // the output of one Write, before it goes to dst
	err    error  // sticky: the first error of dst, or ErrClosed
	closed bool
}

// NewWriter returns a Writer masking m's patterns on their way to dst.
func (m *Matcher) NewWriter(dst io.Writer) *Writer {
	return &Writer{m: m, dst: dst}
}

// Buffered returns the number of bytes held back: a possible start of a
// match. It is always less than m.Longest().
func (w *Writer) Buffered() int { return len(w.held) }

// Write masks p and writes through everything that cannot be part of a
// match. It returns len(p) unless the destination failed; after a failure
// every Write returns the same error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.m.patterns == 0 { // nothing to mask, nothing ever held
		if n, err := w.dst.Write(p); err != nil {
			w.err = err
			return n, err
		}
		return len(p), nil
	}
	start := w.pos
	w.state = w.m.a.scan(w.state, p, func(i, n int) {
		end := start + int64(i) + 1
		w.addCover(end-int64(n), end)
	})
	w.pos += int64(len(p))
	frontier := w.pos - int64(w.m.a.depthOf(w.state))
	if err := w.emit(p, start, frontier); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes everything held back, as if the stream ended here: a match
// cannot span a Flush.
func (w *Writer) Flush() error {
	if w.err != nil {
		if w.err == ErrClosed {
			return nil
		}
		return w.err
	}
	err := w.emit(nil, w.pos, w.pos)
	w.state = 0
	return err
}

// Close flushes the Writer; later Writes fail with ErrClosed. It does not
// close the destination.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.Flush()
	w.closed = true
	if w.err == nil {
		w.err = ErrClosed
	}
	return err
}

// addCover records that [start, end) is masked, merging it with the spans
// it overlaps or touches. Spans arrive in order of their end, so only the
// last ones can merge. Bytes before base were written already, masked
// (nothing that can still match was written), so the span is clipped.
func (w *Writer) addCover(start, end int64) {
	start = max(start, w.base)
	for len(w.cover) > 0 && w.cover[len(w.cover)-1].end >= start {
		start = min(start, w.cover[len(w.cover)-1].start)
		w.cover = w.cover[:len(w.cover)-1]
	}
	w.cover = append(w.cover, span{start, end})
}

// emit writes the stream from base up to frontier — the first position
// that may still begin a match — masking the covered spans, and also any
// covered bytes at base beyond the frontier: covering is final. The rest
// is kept in held. p is the chunk that starts at stream position start;
// held ends there.
func (w *Writer) emit(p []byte, start, frontier int64) error {
	out := w.out[:0]
	direct := []byte(nil) // the output, when it is one piece of p
	pieces := 0
	literal := func(from, to int64) {
		if from < start {
			end := min(to, start)
			out = append(out, w.held[from-w.base:end-w.base]...)
			pieces++
			from = end
		}
		if from < to {
			seg := p[from-start : to-start]
			if pieces == 0 {
				direct = seg
			} else {
				if direct != nil {
					out = append(out, direct...)
					direct = nil
				}
				out = append(out, seg...)
			}
			pieces++
		}
	}
	pos := w.base
	i := 0
	for {
		if i < len(w.cover) && w.cover[i].start <= pos {
			if !w.inMask {
				if direct != nil {
					out = append(out, direct...)
					direct = nil
				}
				out = append(out, Replacement...)
				pieces++
				w.inMask = true
			}
			pos = w.cover[i].end
			i++
			continue
		}
		limit := frontier
		if i < len(w.cover) && w.cover[i].start < limit {
			limit = w.cover[i].start
		}
		if limit <= pos {
			break
		}
		literal(pos, limit)
		w.inMask = false
		pos = limit
	}
	w.cover = append(w.cover[:0], w.cover[i:]...)

	// Keep [pos, w.pos).
	if pos < start {
		w.held = append(w.held[:0], w.held[pos-w.base:]...)
		w.held = append(w.held, p...)
	} else {
		w.held = append(w.held[:0], p[pos-start:]...)
	}
	w.base = pos

	var err error
	switch {
	case direct != nil:
		_, err = w.dst.Write(direct)
	case len(out) > 0:
		_, err = w.dst.Write(out)
	}
	if cap(out) <= 1<<20 {
		w.out = out[:0]
	}
	if err != nil {
		w.err = err
	}
	return err
}
