package mask_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/mask"
)

const (
	benchChunk  = 32 << 10 // what a relay reads at a time
	benchCorpus = 1 << 20  // generated once, sent benchRepeat times
	benchRepeat = 100      // ~100 MB per relay
)

// benchValues returns n secret-like values: API tokens of 20 to 64
// characters, every tenth one a multi-line PEM-like key.
func benchValues(rnd *rand.Rand, n int) [][]byte {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/="
	word := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = alnum[rnd.IntN(len(alnum))]
		}
		return b
	}
	vals := make([][]byte, n)
	for i := range vals {
		if i%10 == 9 {
			var b bytes.Buffer
			b.WriteString("-----BEGIN PRIVATE KEY-----\n")
			for range 12 {
				b.Write(word(64))
				b.WriteByte('\n')
			}
			b.WriteString("-----END PRIVATE KEY-----\n")
			vals[i] = b.Bytes()
			continue
		}
		vals[i] = append([]byte("tok_"), word(16+rnd.IntN(44))...)
	}
	return vals
}

// benchOutput returns log-like text with a value (raw or base64) every
// few KiB.
func benchOutput(rnd *rand.Rand, vals [][]byte, size int) []byte {
	words := strings.Fields("the build step ran tests for package api server client handler " +
		"request response error retry 200 404 500 GET POST /v1/users json took ms INFO WARN " +
		"DEBUG connecting to database at localhost:5432 token=<redacted> user=alice ok done")
	var b bytes.Buffer
	for b.Len() < size {
		fmt.Fprintf(&b, "2026-11-28T10:%02d:%02d.%03dZ ", rnd.IntN(60), rnd.IntN(60), rnd.IntN(1000))
		for range 6 + rnd.IntN(10) {
			b.WriteString(words[rnd.IntN(len(words))])
			b.WriteByte(' ')
		}
		if rnd.IntN(40) == 0 {
			v := vals[rnd.IntN(len(vals))]
			b.WriteString("secret=")
			b.Write(v)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:size]
}

// relay copies a stream through an os.Pipe, as oz exec relays a child's
// output: a writer goroutine sends the corpus benchRepeat times in
// benchChunk writes; the relay reads benchChunk at a time into dst.
func relay(b *testing.B, corpus []byte, dst io.Writer) {
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for range benchRepeat {
			for off := 0; off < len(corpus) && err == nil; off += benchChunk {
				_, err = pw.Write(corpus[off:min(off+benchChunk, len(corpus))])
			}
		}
		pw.Close()
		done <- err
	}()
	buf := make([]byte, benchChunk)
	// Hide ReaderFrom/WriterTo so both cases copy the same way.
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{pr}, buf); err != nil {
		b.Fatal(err)
	}
	pr.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRelay measures relaying ~100 MB of output through a pipe, with
// and without masking 100 values (about 1,300 patterns).
func BenchmarkRelay(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	vals := benchValues(rnd, 100)
	corpus := benchOutput(rnd, vals, benchCorpus)

	b.Run("unmasked", func(b *testing.B) {
		b.SetBytes(int64(len(corpus) * benchRepeat))
		for b.Loop() {
			relay(b, corpus, io.Discard)
		}
	})
	b.Run("masked-100", func(b *testing.B) {
		m := mask.Compile(vals)
		b.SetBytes(int64(len(corpus) * benchRepeat))
		for b.Loop() {
			w := m.NewWriter(io.Discard)
			relay(b, corpus, w)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(m.Len()), "patterns") // after b.Loop, which resets metrics
	})
}

// BenchmarkWriter measures the masker alone, in memory, by number of
// values.
func BenchmarkWriter(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		rnd := rand.New(rand.NewPCG(1, 2))
		vals := benchValues(rnd, n)
		corpus := benchOutput(rnd, vals, benchCorpus)
		m := mask.Compile(vals)
		b.Run(fmt.Sprintf("values-%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(corpus)))
			w := m.NewWriter(io.Discard)
			for b.Loop() {
				for off := 0; off < len(corpus); off += benchChunk {
					if _, err := w.Write(corpus[off:min(off+benchChunk, len(corpus))]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkWriterShortValues measures the worst case of the prefilter:
// 4-byte values, so that every position is tested.
func BenchmarkWriterShortValues(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	vals := benchValues(rnd, 100)
	for i := range vals {
		vals[i] = vals[i][4:8] // skip "tok_"
	}
	corpus := benchOutput(rnd, vals, benchCorpus)
	m := mask.Compile(vals)
	b.SetBytes(int64(len(corpus)))
	w := m.NewWriter(io.Discard)
	for b.Loop() {
		for off := 0; off < len(corpus); off += benchChunk {
			if _, err := w.Write(corpus[off:min(off+benchChunk, len(corpus))]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCompile measures building the matcher of 100 values.
func BenchmarkCompile(b *testing.B) {
	vals := benchValues(rand.New(rand.NewPCG(1, 2)), 100)
	for b.Loop() {
		mask.Compile(vals)
	}
}
