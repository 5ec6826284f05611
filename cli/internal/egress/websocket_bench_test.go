package egress

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkWebSocketMask compares relaying a bound host's WebSocket
// frames with masking (maskFrames: parse, scan, re-frame) against copying
// the same bytes as they are, in the same run: 4 KiB text messages, a
// value in one of every eight. Metric: ratio (masked/as-is MB/s).
func BenchmarkWebSocketMask(b *testing.B) {
	value := "sk-bench-Zq81xVw3pLr7Tn5Y"
	masks := []maskPair{{[]byte(value), []byte(NewPlaceholder())}}
	var stream bytes.Buffer
	w := &frameWriter{w: bufio.NewWriter(&stream)}
	for i := range 2048 {
		msg := []byte(strings.Repeat("x", 4096))
		if i%8 == 0 {
			copy(msg[1000:], value)
		}
		if err := w.frame(true, 0x1, msg); err != nil {
			b.Fatal(err)
		}
	}
	w.w.Flush()
	frames := stream.Bytes()

	// Each relay reads the frames from a loopback TCP connection, as the
	// proxy reads the host's.
	measure := func(relay func(io.Writer, io.Reader) error) float64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			for range b.N {
				if _, err := c.Write(frames); err != nil {
					return
				}
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if err := relay(io.Discard, c); err != nil && err != io.EOF {
			b.Fatal(err)
		}
		return float64(len(frames)*b.N) / time.Since(start).Seconds() / 1e6
	}
	b.SetBytes(int64(len(frames)))
	raw := measure(func(dst io.Writer, src io.Reader) error { _, err := io.Copy(struct{ io.Writer }{dst}, src); return err })
	masked := measure(func(dst io.Writer, src io.Reader) error { return maskFrames(dst, src, masks) })
	b.ReportMetric(masked, "masked-MB/s")
	b.ReportMetric(raw, "as-is-MB/s")
	b.ReportMetric(masked/raw, "ratio")
}
