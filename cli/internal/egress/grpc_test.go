package egress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/cli/internal/egress"
)

// grpcHost is a gRPC server standing in for a bound API: it echoes what
// it gets, the caller's authorization included, in messages, headers and
// trailers.
type grpcHost struct {
	testpb.UnimplementedTestServiceServer
	mu   sync.Mutex
	auth []string // the authorization metadata of each call
	msgs []string // each streamed message received
}

func (g *grpcHost) record(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := strings.Join(md.Get("authorization"), ",")
	g.mu.Lock()
	g.auth = append(g.auth, auth)
	g.mu.Unlock()
	grpc.SetHeader(ctx, metadata.Pairs("echo-auth", auth))     //nolint:errcheck // seen by the test
	grpc.SetTrailer(ctx, metadata.Pairs("echo-trailer", auth)) //nolint:errcheck
	return auth
}

func (g *grpcHost) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	auth := g.record(ctx)
	body := string(req.GetPayload().GetBody())
	if body == "echo auth" {
		body = "auth=" + auth
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(body)}}, nil
}

func (g *grpcHost) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	g.record(stream.Context())
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		body := req.GetPayload().GetBody()
		g.mu.Lock()
		g.msgs = append(g.msgs, string(body))
		g.mu.Unlock()
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

// grpcEnv is a proxy whose every upstream connection goes to a gRPC server
// with a certificate for the upstream names.
func grpcEnv(t *testing.T) (*env, *grpcHost, testpb.TestServiceClient, testpb.TestServiceClient) {
	t.Helper()
	up := newUpstream(t) // for its CA and certificate
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := &grpcHost{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: up.tlsSrv.TLS.Certificates})))
	testpb.RegisterTestServiceServer(srv, host)
	go srv.Serve(ln) //nolint:errcheck // until Stop
	t.Cleanup(srv.Stop)
	e := newEnv(t, func(c *egress.Config) {
		c.RootCAs = up.roots
		c.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, ln.Addr().String())
		}
	})
	return e, host, e.grpcClient(t, "api.example.test"), e.grpcClient(t, "other.example.test")
}

// grpcClient is the agent's gRPC client for name: through the proxy with
// CONNECT and its credentials, trusting the run CA.
func (e *env) grpcClient(t *testing.T, name string) testpb.TestServiceClient {
	t.Helper()
	pu, _ := url.Parse(e.proxy.URL())
	pass, _ := pu.User.Password()
	pool := x509.NewCertPool()
	block, _ := pem.Decode(e.proxy.CACertPEM())
	ca, _ := x509.ParseCertificate(block.Bytes)
	pool.AddCert(ca)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", pu.Host)
		if err != nil {
			return nil, err
		}
		auth := base64.StdEncoding.EncodeToString([]byte(pu.User.Username() + ":" + pass))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", addr, addr, auth)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("CONNECT %s: %v %v", addr, resp, err)
		}
		return c, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+name+":443", grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, name)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func grpcContext(t *testing.T, auth string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if auth != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	return ctx
}

// A gRPC call's metadata is a request's headers: the bound host gets the
// value, headers and trailers echoing it come back with the placeholder.
func TestGRPCUnary(t *testing.T) {
	e, host, bound, _ := grpcEnv(t)
	var header, trailer metadata.MD
	resp, err := bound.UnaryCall(grpcContext(t, "Bearer "+e.ph),
		&testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("unary call: %v", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "hello" {
		t.Errorf("payload %q, want hello", got)
	}
	host.mu.Lock()
	got := host.auth
	host.mu.Unlock()
	if len(got) != 1 || got[0] != "Bearer "+canary {
		t.Errorf("the host got authorization %q, want the value", got)
	}
	if h, tr := header.Get("echo-auth"), trailer.Get("echo-trailer"); len(h) != 1 || h[0] != "Bearer "+e.ph || len(tr) != 1 || tr[0] != "Bearer "+e.ph {
		t.Errorf("echoed header %q and trailer %q, want the placeholder in both", h, tr)
	}
	if s := e.proxy.Stats()["api.example.test"]; s.Substitutions != 1 {
		t.Errorf("stats %+v, want 1 substitution", s)
	}

	// The host echoing the value in a message: masked, so the message no
	// longer parses, and the call fails rather than hand the value over.
	resp, err = bound.UnaryCall(grpcContext(t, "Bearer "+e.ph), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("echo auth")}})
	if err == nil || strings.Contains(fmt.Sprint(resp, err), canary) {
		t.Errorf("a message echoing the value: %v, %v; want a failed call without the value", resp, err)
	}
}

// A bidirectional stream flows message by message (a message that ends
// in a byte that may begin a value is not held back), and a placeholder
// in a streamed message cuts the call.
func TestGRPCStream(t *testing.T) {
	e, host, bound, _ := grpcEnv(t)
	stream, err := bound.FullDuplexCall(grpcContext(t, "Bearer "+e.ph))
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"one", "ends with the value's first byte " + canary[:1], "three"} {
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		resp, err := stream.Recv()
		if err != nil || string(resp.GetPayload().GetBody()) != body {
			t.Fatalf("message %d: %v, %v; want %q back", i, resp, err, body)
		}
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("leak " + e.ph)}}); err == nil {
		_, err = stream.Recv()
		if status.Code(err) == codes.OK {
			t.Fatal("a placeholder in a streamed message: the call went on")
		}
	}
	if d := e.lastDenial(t); d.secret != "OPENAI_KEY" || !strings.Contains(d.reason, "gRPC message") {
		t.Errorf("denial %+v", d)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	for _, m := range host.msgs {
		if strings.Contains(m, "leak") {
			t.Errorf("the host received the message with the placeholder: %q", m)
		}
	}
}

// A placeholder in a call's metadata to a host it is not bound to: 403,
// which gRPC reports as PermissionDenied, and audited.
func TestGRPCUnboundHost(t *testing.T) {
	e, host, _, other := grpcEnv(t)
	_, err := other.UnaryCall(grpcContext(t, "Bearer "+e.ph), &testpb.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("call to an unbound host with the placeholder: %v, want PermissionDenied", err)
	}
	if d := e.lastDenial(t); d.host != "other.example.test" || d.secret != "OPENAI_KEY" {
		t.Errorf("denial %+v", d)
	}
	// Without a placeholder the call goes through, untouched.
	if _, err := other.UnaryCall(grpcContext(t, "Bearer public"), &testpb.SimpleRequest{}); err != nil {
		t.Errorf("call to an unbound host without a placeholder: %v", err)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	if len(host.auth) != 1 || host.auth[0] != "Bearer public" {
		t.Errorf("the host got %q, want only the call without a placeholder", host.auth)
	}
}

// Clients that prefer HTTP/2 get it from the proxy, with the same rules.
func TestHTTP2Client(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	req := newReq(t, http.MethodPost, "https://api.example.test/v1", "body")
	req.Header.Set("Authorization", "Bearer "+e.ph)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "auth=Bearer "+e.ph) {
		t.Errorf("HTTP/%d %d %q; want HTTP/2, 200 and the echo masked", resp.ProtoMajor, resp.StatusCode, b)
	}
	if got := e.up.last(t).Header.Get("Authorization"); got != "Bearer "+canary {
		t.Errorf("the host got %q", got)
	}
	req = newReq(t, http.MethodGet, "https://other.example.test/", "")
	req.Header.Set("X-Key", e.ph)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusForbidden {
		t.Errorf("placeholder to an unbound host over HTTP/2: HTTP/%d %d, want 403", resp.ProtoMajor, resp.StatusCode)
	}
}
