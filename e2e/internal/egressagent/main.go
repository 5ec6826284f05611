// Command egressagent is an agent for the egress tests: a Go net/http
// client configured by nothing but its environment (HTTPS_PROXY,
// SSL_CERT_FILE), as an agent's program would be. It sends one request
// and prints the status and the body; with WS for METHOD it opens a
// WebSocket (coder/websocket) instead, sends BODY as a text message and
// prints the first two messages it receives; with GRPC, URL is host:port
// and it makes a unary call of grpc.testing.TestService (the interop
// test service) with BODY, printing the reply and the echo-auth header.
//
//	egressagent METHOD URL [HEADER: VALUE]... [--body BODY]
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: egressagent METHOD URL [HEADER: VALUE]... [--body BODY]")
		os.Exit(2)
	}
	var body io.Reader
	var headers []string
	for i := 3; i < len(os.Args); i++ {
		if os.Args[i] == "--body" && i+1 < len(os.Args) {
			body = strings.NewReader(os.Args[i+1])
			i++
			continue
		}
		headers = append(headers, os.Args[i])
	}
	if os.Args[1] == "GRPC" {
		if err := grpcCall(os.Args[2], headers, body); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if os.Args[1] == "WS" {
		if err := webSocket(os.Args[2], headers, body); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	req, err := http.NewRequest(os.Args[1], os.Args[2], body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
}

func webSocket(url string, headers []string, body io.Reader) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := http.Header{}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ":")
		h.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	if body != nil {
		msg, _ := io.ReadAll(body)
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return err
		}
	}
	for range 2 {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", msg)
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

// grpcCall makes one unary call as any gRPC agent would: the proxy from
// HTTPS_PROXY, the roots from SSL_CERT_FILE, metadata from headers.
func grpcCall(target string, headers []string, body io.Reader) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ":")
		ctx = metadata.AppendToOutgoingContext(ctx, strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")))
	if err != nil {
		return err
	}
	defer cc.Close()
	var msg []byte
	if body != nil {
		msg, _ = io.ReadAll(body)
	}
	var header metadata.MD
	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: msg}}, grpc.Header(&header))
	if err != nil {
		return err
	}
	fmt.Printf("payload=%s echo-auth=%s\n", resp.GetPayload().GetBody(), strings.Join(header.Get("echo-auth"), ","))
	return nil
}
