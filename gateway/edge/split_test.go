package edge_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/gateway/edge"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestOnePortTwoServers: on the gateway's one port, an HTTP/2 connection
// that begins with a REST request stays with REST for every later request
// (the split takes the client's ACK of its first SETTINGS out of the
// stream: the REST server would close the connection on it), and gRPC
// calls reach the native gRPC server on their own connection, many times
// over. HTTP/1.1 is untouched.
func TestOnePortTwoServers(t *testing.T) {
	e := newEnv(t)

	var conns, reused int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		conns++
		if i.Reused {
			reused++
		}
	}}
	for i := range 20 {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", e.gw.URL+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatalf("REST request %d on one HTTP/2 connection: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("REST request %d: %s over %s, want 200 over HTTP/2", i, resp.Status, resp.Proto)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("REST request %d: no TLS state", i)
		}
	}
	if reused != conns-1 {
		t.Errorf("20 REST requests used %d connections (%d reused), want one kept", conns, reused)
	}
	// A REST request's headers can be large: the first request decides
	// the connection, and must still be served whole.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.gw.URL+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 20_000))
	fresh := e.gw.HTTPClient(t)
	defer fresh.CloseIdleConnections()
	resp, err := fresh.Do(req)
	if err != nil {
		t.Fatalf("a first request with 20 kB of headers on a new connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a first request with 20 kB of headers on a new connection: %s", resp.Status)
	}

	conn := e.gw.Dial(t)
	for i := range 20 {
		if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("gRPC call %d on one connection: %v", i, err)
		}
	}

	h1 := e.gw.HTTP1Client(t)
	defer h1.CloseIdleConnections()
	resp, err = h1.Get(e.gw.URL + "/healthz")
	if err != nil {
		t.Fatalf("HTTP/1.1: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1: %s over %s", resp.Status, resp.Proto)
	}
}

// TestSplitSettingsConsistent: the server's SETTINGS a client sees on the
// one port keep SETTINGS_NO_RFC7540_PRIORITIES as the first set it (RFC
// 9218: it cannot change; curl and Chromium close the connection with
// PROTOCOL_ERROR when a later SETTINGS sets it), on a REST connection and
// on a gRPC one. A raw HTTP/2 client, reading every frame.
func TestSplitSettingsConsistent(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name        string
		contentType string
	}{{"REST", ""}, {"gRPC", "application/grpc"}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.gw.HTTPClient(t).Transport.(*http.Transport).TLSClientConfig.Clone()
			cfg.NextProtos = []string{"h2"}
			c, err := tls.Dial("tcp", strings.TrimPrefix(e.gw.URL, "https://"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(c, c)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "oz"}, {":path", "/healthz"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if tc.contentType != "" {
				hb.Reset()
				enc = hpack.NewEncoder(&hb)
				for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "oz"},
					{":path", "/grpc.health.v1.Health/Check"}, {"content-type", tc.contentType}, {"te", "trailers"}} {
					_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
				}
			}
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: tc.contentType == ""}); err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				if err := fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}); err != nil { // an empty HealthCheckRequest
					t.Fatal(err)
				}
			}
			var first *uint32 // NO_RFC7540_PRIORITIES of the first SETTINGS; nil: not set
			settings := 0
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("after %d SETTINGS frames: %v", settings, err)
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						continue
					}
					settings++
					v, ok := f.Value(http2.SettingNoRFC7540Priorities)
					switch {
					case settings == 1 && ok:
						first = &v
					case ok && (first == nil || *first != v):
						t.Fatalf("SETTINGS frame %d sets NO_RFC7540_PRIORITIES to %d; the first set %v", settings, v, first)
					}
					if err := fr.WriteSettingsAck(); err != nil {
						t.Fatal(err)
					}
				case *http2.GoAwayFrame:
					t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
				case *http2.HeadersFrame, *http2.DataFrame:
					if f.Header().Flags.Has(http2.FlagDataEndStream) || (f.Header().Type == http2.FrameHeaders && f.Header().Flags.Has(http2.FlagHeadersEndStream)) {
						if settings < 2 {
							t.Fatalf("the answer came after %d SETTINGS frames; want the split's and the server's", settings)
						}
						return // answered
					}
				}
			}
		})
	}
}

// TestSplitShutdownClosesIdleConnections: a client that connected but has
// not sent its first request (gRPC clients connect ahead of their first
// call) holds nothing in flight: at shutdown the gateway closes it at once,
// rather than waiting the whole shutdown timeout for it.
func TestSplitShutdownClosesIdleConnections(t *testing.T) {
	var idle net.Conn
	var e *env
	// Registered first, so it runs after the gateway's own clean-up has
	// stopped it (clean-ups run last first).
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), "shutdown timed out") {
			t.Errorf("the gateway waited out its shutdown timeout for an idle connection:\n%s", e.logs)
		}
		_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := idle.Read(make([]byte, 1<<16)); err == nil {
			for err == nil { // the server's SETTINGS, then the end
				_, err = idle.Read(make([]byte, 1<<16))
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("the idle connection was still open after the gateway stopped")
			}
		}
	})
	e = newEnv(t, func(c *edge.Config) { c.ShutdownTimeout = 30 * time.Second })
	cfg := e.gw.HTTPClient(t).Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", e.gw.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	idle = c
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
}
