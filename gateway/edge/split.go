package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials"
)

// One port, two servers. Callers of the gRPC API and of REST (and the web
// app) reach the same address over TLS with ALPN "h2"; ALPN cannot tell
// them apart. Serving gRPC through net/http's HTTP/2 server (grpc.Server's
// ServeHTTP) works, but the profile of a resolution through the gateway
// showed that path costing most of the gateway's CPU: a write system call
// per frame from net/http's frame writer, a goroutine per message. So each
// HTTP/2 connection is looked at once, at its first request: a gRPC
// content type hands the whole connection to the native grpc.Server, which
// batches its writes; anything else goes to x/net's HTTP/2 server with the
// REST handler. HTTP/1.1 connections never come here.
//
// To see the first request the gateway must speak first: gRPC clients wait
// for the server's SETTINGS before they send a request. It sends an empty
// SETTINGS frame, reads the client's preface and frames up to the first
// HEADERS, and replays them to the server it chose. The client's ACK of
// that first SETTINGS is taken out of the stream (the chosen server never
// sent it; net/http's server would take an unexpected ACK for a protocol
// error); the chosen server's own SETTINGS follow, which HTTP/2 allows.
//
// A connection stays with the server it was given: a client that sends a
// REST request on a connection that began with a gRPC call gets gRPC's
// answer to a wrong content type (415). Clients do not do that; browsers
// speak only REST.

// maxPeekBytes bounds what is read of a connection before it is given to a
// server: the preface and the first request's headers fit many times over.
const maxPeekBytes = 256 << 10

// splitTLSNextProto returns the server's TLSNextProto["h2"]: it decides
// each connection as above, and serves it until it ends (net/http closes
// the connection when the function returns).
func (s *Server) splitTLSNextProto(h2 *http2.Server, grpcConns *connListener, waiting *peeking, peekTimeout time.Duration) func(*http.Server, *tls.Conn, http.Handler) {
	return func(hs *http.Server, c *tls.Conn, h http.Handler) {
		// A client may connect long before its first request (gRPC
		// clients do): until then the connection is idle, and closed
		// like one (peekTimeout, or at shutdown).
		if !waiting.add(c) {
			return // shutting down
		}
		_ = c.SetReadDeadline(time.Now().Add(peekTimeout))
		peeked, grpcCall, ackTaken, err := peekFirstRequest(c)
		waiting.remove(c)
		if err != nil {
			return // not HTTP/2, idle too long, or shutting down: closed, as net/http would
		}
		_ = c.SetReadDeadline(time.Time{})
		conn := &replayConn{Conn: c, tls: c, r: io.MultiReader(bytes.NewReader(peeked), &ackFilter{r: c, taken: ackTaken})}
		if grpcCall {
			conn.closed = make(chan struct{})
			if !grpcConns.deliver(conn) {
				return // shutting down
			}
			<-conn.closed
			return
		}
		h2.ServeConn(conn, &http2.ServeConnOpts{Context: context.Background(), BaseConfig: hs, Handler: h})
	}
}

// peeking are the connections that have not sent their first request yet.
// Neither server knows them: at shutdown they are closed here (nothing is
// in flight on them), so that http.Server.Shutdown need not wait for them.
type peeking struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add records c; false once closed (c is to be dropped).
func (p *peeking) add(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.conns == nil {
		p.conns = make(map[net.Conn]struct{})
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *peeking) remove(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// close closes every connection still waiting for its first request, and
// every one that comes later.
func (p *peeking) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// serverPreface is the server's first SETTINGS frame: the defaults until
// the chosen server sends its own, and SETTINGS_NO_RFC7540_PRIORITIES = 1,
// which RFC 9218 lets a server set in its first SETTINGS only (clients
// close the connection when a later one sets it, as x/net's server does).
// Neither server acts on RFC 7540 priorities.
var serverPreface = []byte{
	0, 0, 6, byte(http2.FrameSettings), 0, 0, 0, 0, 0, // header: 6 bytes, stream 0
	0, byte(http2.SettingNoRFC7540Priorities), 0, 0, 0, 1,
}

// peekFirstRequest writes the server preface to c and reads the client's
// preface and frames up to the end of its first request's headers. It
// returns the bytes read, for replay (without the ACK of the server
// preface, when it came before the headers: ackTaken), and whether the
// request is gRPC (its content-type).
func peekFirstRequest(c net.Conn) (peeked []byte, grpcCall, ackTaken bool, err error) {
	if _, err := c.Write(serverPreface); err != nil {
		return nil, false, false, err
	}
	buf := make([]byte, len(http2.ClientPreface), 4096)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, false, false, err
	}
	if string(buf) != http2.ClientPreface {
		return nil, false, false, errors.New("not an HTTP/2 client preface")
	}
	var block []byte // the first request's header block fragments
	for {
		start := len(buf)
		var hdr [9]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, false, false, err
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
		if start+9+length > maxPeekBytes {
			return nil, false, false, errors.New("first request too large")
		}
		buf = append(buf, hdr[:]...)
		buf = append(buf, make([]byte, length)...)
		payload := buf[start+9:]
		if _, err := io.ReadFull(c, payload); err != nil {
			return nil, false, false, err
		}
		switch {
		case typ == http2.FrameSettings && flags.Has(http2.FlagSettingsAck) && !ackTaken:
			buf, ackTaken = buf[:start], true
		case typ == http2.FrameHeaders:
			frag, err := headerFragment(flags, payload)
			if err != nil {
				return nil, false, false, err
			}
			block = append(block, frag...)
			if flags.Has(http2.FlagHeadersEndHeaders) {
				return buf, isGRPCHeaderBlock(block), ackTaken, nil
			}
		case typ == http2.FrameContinuation && block != nil:
			block = append(block, payload...)
			if flags.Has(http2.FlagContinuationEndHeaders) {
				return buf, isGRPCHeaderBlock(block), ackTaken, nil
			}
		}
	}
}

// headerFragment is the header block fragment of a HEADERS frame's
// payload, without its padding and priority fields.
func headerFragment(flags http2.Flags, p []byte) ([]byte, error) {
	pad := 0
	if flags.Has(http2.FlagHeadersPadded) {
		if len(p) < 1 {
			return nil, errors.New("short HEADERS frame")
		}
		pad, p = int(p[0]), p[1:]
	}
	if flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, errors.New("short HEADERS frame")
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, errors.New("HEADERS padding too long")
	}
	return p[:len(p)-pad], nil
}

// isGRPCHeaderBlock reports whether the HPACK header block (a connection's
// first, so decoded with an empty dynamic table) has a gRPC content type.
func isGRPCHeaderBlock(block []byte) bool {
	var ct string
	d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" {
			ct = f.Value
		}
	})
	d.SetMaxStringLength(maxPeekBytes)
	if _, err := d.Write(block); err != nil {
		return false // the HTTP server will refuse it
	}
	return isGRPCContentType(ct)
}

// ackFilter passes a connection's frames through, except the first
// SETTINGS ACK (of the server preface peekFirstRequest sent) unless taken
// already. It reads frame by frame only until then.
type ackFilter struct {
	r     io.Reader
	taken bool
	hdr   []byte // the rest of the current frame's header, to pass on
	left  int    // bytes of the current frame's payload still to pass on
}

func (f *ackFilter) Read(p []byte) (int, error) {
	switch {
	case len(f.hdr) > 0:
		n := copy(p, f.hdr)
		f.hdr = f.hdr[n:]
		return n, nil
	case f.left > 0:
		m, err := f.r.Read(p[:min(len(p), f.left)])
		f.left -= m
		return m, err
	case f.taken:
		return f.r.Read(p)
	}
	var hdr [9]byte // at a frame boundary
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		return 0, err
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if http2.FrameType(hdr[3]) == http2.FrameSettings && http2.Flags(hdr[4]).Has(http2.FlagSettingsAck) && length == 0 {
		f.taken = true
		return f.Read(p)
	}
	f.hdr, f.left = hdr[:], length
	return f.Read(p)
}

// replayConn is a TLS connection whose first bytes are read from a replay
// of what was peeked. It keeps the TLS state visible (ConnectionState) for
// the HTTP/2 server (r.TLS) and for gRPC (the peer's AuthInfo), and tells
// closed when the gRPC server is done with it.
type replayConn struct {
	net.Conn
	tls    *tls.Conn
	r      io.Reader
	closed chan struct{} // nil: not a gRPC connection
	once   sync.Once
}

func (c *replayConn) Read(p []byte) (int, error)           { return c.r.Read(p) }
func (c *replayConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

func (c *replayConn) Close() error {
	err := c.Conn.Close()
	if c.closed != nil {
		c.once.Do(func() { close(c.closed) })
	}
	return err
}

// connListener is the grpc.Server's listener: the connections that began
// with a gRPC call.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to the grpc.Server; false once the listener is closed.
func (l *connListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// handshaken are the grpc.Server's transport credentials for connections
// whose TLS handshake is done (by net/http, before ALPN chose "h2"): no
// handshake, and the TLS state as the peer's AuthInfo.
type handshaken struct{}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil, nil, errors.New("edge: a connection without TLS reached the gRPC server")
	}
	return c, credentials.TLSInfo{State: cs.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("edge: server-side credentials only")
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}
func (handshaken) Clone() credentials.TransportCredentials { return handshaken{} }
func (handshaken) OverrideServerName(string) error         { return nil }
