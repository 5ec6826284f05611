package egress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// gRPC through the proxy (over HTTP/2, which the proxy offers the agent).
// A call's metadata is its request headers: judged and rewritten like any
// request's, so `authorization: Bearer <placeholder>` to a bound host
// gets the value. Its messages differ from a request body in two ways:
//
//   - they stream while the call lasts, so the proxy cannot read the
//     request whole before forwarding it. Placeholders in them are never
//     substituted; they are scanned as they go, and one that appears cuts
//     the call (refused and audited, like a placeholder in a body that
//     may not carry it). What went before it was only ever placeholders.
//   - from a bound host they are masked one whole message at a time, the
//     length prefix rewritten to the masked length, so a message never
//     waits for bytes that could still begin a value. A message the host
//     compressed is not relayed (the proxy asks for none): masking could
//     not see into it.

// isGRPC reports whether a request is a gRPC call (not gRPC-Web, which is
// an ordinary request and response).
func isGRPC(h http.Header) bool {
	ct := strings.ToLower(h.Get("Content-Type"))
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// maxGRPCMessage bounds a message from a bound host that the proxy holds
// to mask it (gRPC's own default limit is 4 MiB).
const maxGRPCMessage = 16 << 20

// scanBody passes a streamed request body on, and stops it at the first
// placeholder in it.
type scanBody struct {
	r       io.ReadCloser
	j       *judge
	maxLen  int     // longest placeholder
	tail    []byte  // last bytes read, to find a placeholder split across reads
	refusal *denial // set when a placeholder was found
	mu      sync.Mutex
}

var errPlaceholderInStream = errors.New("oz egress proxy: a placeholder in a streamed request body; the call is cut")

func newScanBody(r io.ReadCloser, j *judge) *scanBody {
	s := &scanBody{r: r, j: j}
	for _, b := range j.p.bindings {
		s.maxLen = max(s.maxLen, len(b.Placeholder))
	}
	return s
}

func (s *scanBody) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.maxLen > 0 {
		window := append(s.tail, p[:n]...)
		for k := 0; ; k++ {
			i := bytes.Index(window[k:], []byte(PlaceholderPrefix))
			if i < 0 {
				break
			}
			k += i
			if b := s.j.lookup(string(window[k:])); b != nil {
				s.mu.Lock()
				s.refusal = &denial{secret: b.Name, reason: "placeholder in a gRPC message: placeholders are never substituted in streamed messages"}
				s.mu.Unlock()
				return 0, errPlaceholderInStream
			}
		}
		keep := min(len(window), s.maxLen-1)
		s.tail = append(s.tail[:0], window[len(window)-keep:]...)
	}
	return n, err
}

func (s *scanBody) Close() error { return s.r.Close() }

// refused is the denial the scan found, if any.
func (s *scanBody) refused() *denial {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusal
}

// maskGRPC copies a bound host's gRPC messages from src to dst, each with
// the values in it replaced by their placeholders and its length prefix
// rewritten.
func maskGRPC(dst io.Writer, src io.Reader, masks []maskPair) error {
	r := bufio.NewReader(src)
	var head [5]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if head[0] != 0 {
			return errors.New("the host sent a compressed gRPC message; the proxy asked for none, and cannot mask one")
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n > maxGRPCMessage {
			return fmt.Errorf("the host sent a gRPC message of %d bytes; the proxy masks messages up to %d", n, maxGRPCMessage)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return err
		}
		masked := []byte(maskString(masks, string(msg)))
		clear(msg) // what the host sent, before masking
		binary.BigEndian.PutUint32(head[1:], uint32(len(masked)))
		if _, err := dst.Write(append(head[:], masked...)); err != nil {
			return err
		}
	}
}
