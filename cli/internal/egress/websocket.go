package egress

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// WebSocket (RFC 6455) through the proxy. The opening handshake is an
// HTTP request like any other: judged, its headers' placeholders replaced
// where the binding allows, refused otherwise. Once the host answers 101,
// the proxy relays the two connections:
//
//   - agent to host, byte for byte. Client frames are masked with a key
//     the agent picks, so a placeholder inside a message is not even
//     visible to the proxy: it reaches the host as the placeholder, never
//     as the value, whatever the host.
//   - host to agent, frame by frame when values are bound to the host:
//     every value in a message (also one split across frames) or in a
//     control frame becomes its placeholder, as in any other response.
//     The proxy removes Sec-WebSocket-Extensions from the handshake to
//     such a host, so no compression hides a value from it, and may
//     re-fragment messages (RFC 6455 §5.4 lets an intermediary do so
//     when no extension is in use).

// upgradeKind says what to do with a request (or response) asking for a
// protocol switch: "" if it asks for none (an Upgrade header without
// "Connection: upgrade" asks for nothing), "websocket", or the
// unsupported protocol it named.
func upgradeKind(h http.Header) string {
	up := strings.TrimSpace(h.Get("Upgrade"))
	if up == "" || !httpguts.HeaderValuesContainsToken(h.Values("Connection"), "upgrade") {
		return ""
	}
	if strings.EqualFold(up, "websocket") {
		return "websocket"
	}
	return up
}

// relayUpgraded takes over the agent's connection after the host switched
// protocols and relays both ways until either side ends.
func (p *Proxy) relayUpgraded(w http.ResponseWriter, resp *http.Response, masks []maskPair, host string) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		http.Error(w, "oz egress proxy: upstream switched protocols without a usable connection", http.StatusBadGateway)
		return
	}
	defer up.Close()
	if len(masks) > 0 && resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		// Offered none: a host that uses one anyway could compress a
		// value past masking.
		http.Error(w, fmt.Sprintf("oz egress proxy: %s accepted a WebSocket extension the proxy did not offer", host), http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "oz egress proxy: cannot take over the connection", http.StatusInternalServerError)
		return
	}
	// The server's header deadline may still be set on it.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return
	}
	if !p.track(conn) {
		conn.Close()
		return
	}
	defer p.untrack(conn)
	defer conn.Close()

	// The 101 response, headers masked like any other response's.
	h := maskHeader(resp.Header, masks)
	removeHopHeaders(h)
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	var head strings.Builder
	head.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(&head) //nolint:errcheck // a strings.Builder does not fail
	head.WriteString("\r\n")
	if _, err := io.WriteString(conn, head.String()); err != nil {
		return
	}

	done := make(chan error, 2)
	go func() {
		// What the agent sent after its handshake is in brw.Reader first.
		_, err := io.Copy(up, io.MultiReader(brw.Reader, conn))
		done <- err
	}()
	go func() {
		if len(masks) == 0 {
			_, err := io.Copy(conn, up)
			done <- err
			return
		}
		done <- maskFrames(conn, up, masks)
	}()
	if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		p.log.Warn("egress WebSocket relay ended", "host", host, "err", p.scrub(err.Error()))
	}
	// Either side ending ends both: closing both unblocks the other copy.
	conn.Close()
	up.Close()
	<-done
}

// track registers a taken-over connection so Close ends it; false once
// the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.upgraded == nil {
		p.upgraded = map[net.Conn]struct{}{}
	}
	p.upgraded[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.upgraded, c)
}

// closeUpgraded closes every taken-over connection, and refuses new ones.
func (p *Proxy) closeUpgraded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.upgraded {
		c.Close()
	}
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opClose        = 0x8
	maxControl     = 125 // payload bytes of a control frame
)

// frameChunk is how much of a data frame's payload the proxy reads before
// passing it on: a large frame goes out as several, so the proxy never
// holds a whole message.
const frameChunk = 32 << 10

// maskFrames copies a host's WebSocket frames from src to dst, replacing
// bound values by their placeholders in every payload. It returns when
// src ends (io.EOF) or breaks the protocol; a close frame is passed on
// and copying goes on until the host closes the connection.
func maskFrames(dst io.Writer, src io.Reader, masks []maskPair) error {
	r := bufio.NewReaderSize(src, frameChunk)
	out := &frameWriter{w: bufio.NewWriterSize(dst, frameChunk+14)}
	msg := newMaskWriter(out, masks)
	inMsg := false // between a message's first frame and its last
	buf := relayBuffers.Get().(*[]byte)
	defer func() {
		clear(*buf) // what the host sent, before masking
		relayBuffers.Put(buf)
	}()
	for {
		f, err := readFrameHeader(r)
		if err != nil {
			return err
		}
		switch {
		case f.masked:
			return errors.New("the host sent a masked frame (RFC 6455: servers must not)")
		case f.rsv != 0:
			return errors.New("the host set reserved bits: an extension the proxy did not offer")
		case f.opcode >= opClose:
			if !f.fin || f.length > maxControl {
				return errors.New("the host sent a fragmented or oversized control frame")
			}
			payload := (*buf)[:f.length]
			if _, err := io.ReadFull(r, payload); err != nil {
				return err
			}
			masked := []byte(maskString(masks, string(payload)))
			// A placeholder longer than its value may push a control
			// frame past 125 bytes: cut it (what is cut is placeholder
			// or host text, never part of a value).
			if err := out.frame(true, f.opcode, masked[:min(len(masked), maxControl)]); err != nil {
				return err
			}
			if err := out.w.Flush(); err != nil {
				return err
			}
			continue
		case f.opcode == opContinuation && !inMsg, f.opcode != opContinuation && inMsg:
			return errors.New("the host sent a data frame out of sequence")
		}
		if !inMsg {
			out.op = f.opcode
			inMsg = true
		}
		for left := f.length; left > 0; {
			n := int(min(left, uint64(len(*buf))))
			if _, err := io.ReadFull(r, (*buf)[:n]); err != nil {
				return err
			}
			left -= uint64(n)
			if _, err := msg.Write((*buf)[:n]); err != nil {
				return err
			}
			if left == 0 && f.fin {
				break // the last of the message goes out below, with what masking held
			}
			if err := out.flushData(false); err != nil {
				return err
			}
		}
		if f.fin {
			// What masking held back cannot become a value now.
			if err := msg.Close(); err != nil {
				return err
			}
			inMsg = false
		}
		if err := out.flushData(f.fin); err != nil {
			return err
		}
		if err := out.w.Flush(); err != nil {
			return err
		}
	}
}

// frameHeader is a frame's header (RFC 6455 §5.2).
type frameHeader struct {
	fin    bool
	rsv    byte
	opcode byte
	masked bool
	length uint64
}

func readFrameHeader(r *bufio.Reader) (frameHeader, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return frameHeader{}, err
	}
	f := frameHeader{fin: b[0]&0x80 != 0, rsv: b[0] & 0x70, opcode: b[0] & 0x0f, masked: b[1]&0x80 != 0}
	switch n := b[1] & 0x7f; n {
	case 126:
		if _, err := io.ReadFull(r, b[:2]); err != nil {
			return f, err
		}
		f.length = uint64(binary.BigEndian.Uint16(b[:2]))
	case 127:
		if _, err := io.ReadFull(r, b[:8]); err != nil {
			return f, err
		}
		f.length = binary.BigEndian.Uint64(b[:8])
	default:
		f.length = uint64(n)
	}
	if f.masked {
		if _, err := io.ReadFull(r, b[:4]); err != nil {
			return f, err
		}
	}
	return f, nil
}

// frameWriter collects a message's masked payload and writes it as
// unmasked server frames: the first with the message's opcode, the rest
// as continuations.
type frameWriter struct {
	w       *bufio.Writer
	op      byte // opcode of the next data frame
	pending []byte
}

// Write collects masked payload (maskWriter writes here).
func (f *frameWriter) Write(b []byte) (int, error) {
	f.pending = append(f.pending, b...)
	return len(b), nil
}

// flushData writes what was collected as one data frame: always when fin,
// otherwise only when there is something to write.
func (f *frameWriter) flushData(fin bool) error {
	if !fin && len(f.pending) == 0 {
		return nil
	}
	err := f.frame(fin, f.op, f.pending) // masked already: nothing to clear
	f.pending = f.pending[:0]
	f.op = opContinuation
	return err
}

func (f *frameWriter) frame(fin bool, op byte, payload []byte) error {
	var h [10]byte
	h[0] = op
	if fin {
		h[0] |= 0x80
	}
	n := 2
	switch l := len(payload); {
	case l <= 125:
		h[1] = byte(l)
	case l <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(l))
		n = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(l))
		n = 10
	}
	if _, err := f.w.Write(h[:n]); err != nil {
		return err
	}
	_, err := f.w.Write(payload)
	return err
}
