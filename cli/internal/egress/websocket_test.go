package egress_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsDial opens a WebSocket through the proxy as the agent would, with
// coder/websocket (an implementation the proxy's framing must satisfy),
// offering permessage-deflate.
func (e *env) wsDial(t *testing.T, ctx context.Context, u string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	c := e.client()
	c.Timeout = 0 // the context bounds the handshake
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c, HTTPHeader: h, CompressionMode: websocket.CompressionContextTakeover,
	})
	if conn != nil {
		conn.SetReadLimit(1 << 20)
	}
	return conn, resp, err
}

func wsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wsRead(t *testing.T, ctx context.Context, c *websocket.Conn) string {
	t.Helper()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(msg)
}

// The agent's handshake carries the placeholder; the host gets the value
// and no compression offer, and every message the host sends with the
// value in it reaches the agent with the placeholder instead.
func TestWebSocketBoundHost(t *testing.T) {
	e := newEnv(t, nil)
	received := make(chan string, 4)
	e.up.handle("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		if err := c.Write(ctx, websocket.MessageText, []byte("hello "+r.Header.Get("Authorization"))); err != nil {
			return
		}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			received <- string(msg)
			if err := c.Write(ctx, typ, []byte("echo "+string(msg)+" key="+canary)); err != nil {
				return
			}
		}
	})
	ctx := wsContext(t)
	c, resp, err := e.wsDial(t, ctx, "wss://api.example.test/ws", http.Header{"Authorization": {"Bearer " + e.ph}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()

	hs := e.up.last(t)
	if got := hs.Header.Get("Authorization"); got != "Bearer "+canary {
		t.Errorf("handshake Authorization at the host = %q, want the value", got)
	}
	if got := hs.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Errorf("host was offered %q; the proxy must not let a bound host compress", got)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Errorf("agent got extensions %q", got)
	}
	if got, want := wsRead(t, ctx, c), "hello Bearer "+e.ph; got != want {
		t.Errorf("first message = %q, want %q", got, want)
	}
	for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
		if err := c.Write(ctx, typ, []byte("msg "+e.ph)); err != nil {
			t.Fatal(err)
		}
		// Inside a message the placeholder is never substituted.
		if got := <-received; got != "msg "+e.ph {
			t.Errorf("host received %q, want the placeholder as sent", got)
		}
		if got, want := wsRead(t, ctx, c), "echo msg "+e.ph+" key="+e.ph; got != want {
			t.Errorf("echo = %q, want %q", got, want)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	if s := e.proxy.Stats()["api.example.test"]; s.Substitutions != 1 || s.Denials != 0 {
		t.Errorf("stats = %+v, want 1 substitution (the handshake), 0 denials", s)
	}
}

// A host that is bound to nothing gets the agent's WebSocket unchanged,
// compression included; a placeholder in its handshake is refused like
// any request's.
func TestWebSocketUnboundHost(t *testing.T) {
	e := newEnv(t, nil)
	e.up.handle("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	ctx := wsContext(t)
	c, resp, err := e.wsDial(t, ctx, "wss://other.example.test/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if got := e.up.last(t).Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, "permessage-deflate") {
		t.Errorf("host was offered %q, want the agent's permessage-deflate", got)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, "permessage-deflate") {
		t.Errorf("agent got extensions %q, want permessage-deflate", got)
	}
	big := strings.Repeat("compressible ", 20000)
	if err := c.Write(ctx, websocket.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if got := wsRead(t, ctx, c); got != big {
		t.Errorf("echo of %d bytes came back as %d bytes", len(big), len(got))
	}
	c.Close(websocket.StatusNormalClosure, "")

	before := e.up.count()
	_, resp, err = e.wsDial(t, ctx, "wss://other.example.test/ws", http.Header{"Authorization": {"Bearer " + e.ph}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("handshake with a placeholder to an unbound host: %v, %v; want 403", err, resp)
	}
	if d := e.lastDenial(t); d.secret != "OPENAI_KEY" || d.host != "other.example.test" {
		t.Errorf("denial = %+v", d)
	}
	if e.up.count() != before {
		t.Error("the refused handshake reached the host")
	}
}

// A host that frames the value cleverly (split across fragments, in a
// ping, at the edge of what the proxy reads at once, in a close reason)
// still never gets it to the agent. The host here writes raw frames; the
// agent is coder/websocket, and what it answers (its pong echoes the
// ping) shows what it got.
func TestWebSocketFramesMasked(t *testing.T) {
	e := newEnv(t, nil)
	pongs := make(chan string, 1)
	e.up.handle("/raw", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nX-Echo: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]), canary)
		big := []byte(strings.Repeat("a", 100<<10))
		copy(big[32<<10-5:], canary)
		for _, f := range []struct {
			fin     bool
			op      byte
			payload string
		}{
			{false, 0x1, "part1 " + canary[:5]},
			{true, 0x9, "ping " + canary},
			{true, 0x0, canary[5:] + " end"},
			{true, 0x2, canary + "|" + canary},
			{true, 0x1, string(big)},
			{true, 0x8, "\x03\xe8bye " + canary},
		} {
			writeServerFrame(brw.Writer, f.fin, f.op, []byte(f.payload))
		}
		if brw.Flush() != nil {
			return
		}
		// Read the agent's frames until its close: the pong tells what
		// ping payload it saw.
		for {
			op, payload, err := readClientFrame(brw.Reader)
			if err != nil || op == 0x8 {
				return
			}
			if op == 0xa {
				pongs <- string(payload)
			}
		}
	})
	ctx := wsContext(t)
	c, resp, err := e.wsDial(t, ctx, "wss://api.example.test/raw", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if got := resp.Header.Get("X-Echo"); got != e.ph {
		t.Errorf("101 header X-Echo = %q, want the placeholder", got)
	}
	want := []string{"part1 " + e.ph + " end", e.ph + "|" + e.ph}
	big := strings.Repeat("a", 32<<10-5) + e.ph + strings.Repeat("a", 100<<10-(32<<10-5)-len(canary))
	want = append(want, big)
	for i, w := range want {
		if got := wsRead(t, ctx, c); got != w {
			t.Errorf("message %d: got %d bytes %.80q…, want %d bytes %.80q…", i, len(got), got, len(w), w)
		}
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != "bye "+e.ph {
		t.Errorf("close: %v, want reason %q", err, "bye "+e.ph)
	}
	select {
	case p := <-pongs:
		if p != "ping "+e.ph {
			t.Errorf("the agent's pong = %q, want the ping it got with the placeholder", p)
		}
	case <-ctx.Done():
		t.Error("no pong from the agent")
	}
}

// Upgrades other than WebSocket are refused, and Close ends a relayed
// WebSocket.
func TestWebSocketOtherUpgradesAndClose(t *testing.T) {
	e := newEnv(t, nil)
	req := newReq(t, http.MethodGet, "https://other.example.test/", "")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "h2c")
	if code, body, _ := e.do(t, req); code != http.StatusNotImplemented || !strings.Contains(body, `"h2c"`) {
		t.Errorf("Upgrade: h2c: %d %q, want 501 naming it", code, body)
	}
	// An Upgrade header without "Connection: upgrade" asks for nothing
	// (RFC 9110 §7.8): an ordinary request, the header not forwarded.
	req = newReq(t, http.MethodGet, "https://other.example.test/plain", "")
	req.Header.Set("Upgrade", "websocket")
	if code, _, _ := e.do(t, req); code != http.StatusOK || e.up.last(t).Header.Get("Upgrade") != "" {
		t.Errorf("Upgrade without Connection: %d, the host got Upgrade %q; want 200 and none", code, e.up.last(t).Header.Get("Upgrade"))
	}

	e.up.handle("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Read(r.Context()) //nolint:errcheck // waits for the end
	})
	ctx := wsContext(t)
	c, _, err := e.wsDial(t, ctx, "wss://api.example.test/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	read := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		read <- err
	}()
	e.proxy.Close()
	select {
	case err := <-read:
		if err == nil {
			t.Error("read after Close succeeded")
		}
	case <-ctx.Done():
		t.Fatal("a relayed WebSocket outlived the proxy's Close")
	}
}

// writeServerFrame writes one unmasked frame (a server's).
func writeServerFrame(w *bufio.Writer, fin bool, op byte, payload []byte) {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	w.WriteByte(b0)
	switch n := len(payload); {
	case n <= 125:
		w.WriteByte(byte(n))
	case n <= 0xffff:
		w.WriteByte(126)
		binary.Write(w, binary.BigEndian, uint16(n))
	default:
		w.WriteByte(127)
		binary.Write(w, binary.BigEndian, uint64(n))
	}
	w.Write(payload)
}

// readClientFrame reads one masked frame (a client's) and unmasks it.
func readClientFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l uint16
		err = binary.Read(r, binary.BigEndian, &l)
		n = uint64(l)
	case 127:
		err = binary.Read(r, binary.BigEndian, &n)
	}
	if err != nil {
		return 0, nil, err
	}
	var key [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return h[0] & 0x0f, payload, nil
}
