package e2e_test

// Tests of the gateway's edge (issue 14): what a caller on the network
// meets before any backend does.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/e2e/harness"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// edgeDo sends a request with token (none when "") and returns the status, the
// headers and the body.
func edgeDo(t *testing.T, client *http.Client, sys *harness.System, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+sys.Addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func edgeClient(t *testing.T, sys *harness.System) *http.Client {
	t.Helper()
	c, err := sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestEdgeAuthFailureLimit: a source that keeps failing authentication is
// refused at the gateway (429 with Retry-After; ResourceExhausted saying
// when to retry), a person who mistypes a few times is not, and
// authenticated traffic from the same source goes on.
func TestEdgeAuthFailureLimit(t *testing.T) {
	sys := startSystem(t)
	client := edgeClient(t, sys)
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	secrets := secretsv1.NewSecretServiceClient(conn)
	list := func(token string) error {
		ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), token), 20*time.Second)
		defer cancel()
		_, err := secrets.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
		return err
	}

	// The admin works, then mistypes five times, then gets it right.
	if code, _, body := edgeDo(t, client, sys, "GET", "/v1/secrets", sys.AdminToken, ""); code != 200 {
		t.Fatalf("GET with the admin token: %d %s", code, body)
	}
	for i := range 5 {
		if code, _, body := edgeDo(t, client, sys, "GET", "/v1/secrets", fmt.Sprintf("oz_mistyped%d", i), ""); code != 401 {
			t.Fatalf("mistyped token %d: %d %s, want 401", i, code, body)
		}
	}
	if err := list(sys.AdminToken); err != nil {
		t.Fatalf("the right token after five mistakes: %v", err)
	}

	// 1,000 anonymous requests, as fast as 16 connections go.
	var refused, unauth, other atomic.Int64
	var wg sync.WaitGroup
	var badRetry atomic.Value
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= 1000; n = next.Add(1) {
				token := ""
				if n%2 == 0 {
					token = "oz_guess" + strconv.FormatInt(n, 10)
				}
				req, _ := http.NewRequest("GET", "https://"+sys.Addr+"/v1/secrets", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					refused.Add(1)
					if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
						badRetry.Store(resp.Header.Get("Retry-After"))
					}
				case http.StatusUnauthorized:
					unauth.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("1,000 anonymous requests: %d refused (429), %d reached a backend (401), %d other", refused.Load(), unauth.Load(), other.Load())
	if refused.Load() < 900 {
		t.Errorf("429s: got %d of 1000, want at least 900", refused.Load())
	}
	if other.Load() != 0 {
		t.Errorf("answers other than 401 and 429: %d", other.Load())
	}
	if v := badRetry.Load(); v != nil {
		t.Errorf("429 with Retry-After %q, want a positive number of seconds", v)
	}

	// Native gRPC from the same source: refused too, saying when to retry.
	err = list("oz_another_guess")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "retry in") {
		t.Errorf("gRPC with a wrong token: %v, want ResourceExhausted saying when to retry", err)
	}
	// A 429 body says the same.
	code, hdr, body := edgeDo(t, client, sys, "GET", "/v1/secrets", "", "")
	if code != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "retry in") {
		t.Errorf("GET without a token: %d Retry-After=%q %s, want 429 with Retry-After", code, hdr.Get("Retry-After"), body)
	}

	// Authenticated traffic is not limited.
	for i := range 50 {
		if code, _, body := edgeDo(t, client, sys, "GET", "/v1/secrets", sys.AdminToken, ""); code != 200 {
			t.Fatalf("REST with the admin token during the refusal (%d): %d %s", i, code, body)
		}
		if err := list(sys.AdminToken); err != nil {
			t.Fatalf("gRPC with the admin token during the refusal (%d): %v", i, err)
		}
	}
}

// TestEdgeBodyAndConnLimits: a client trickling a request body is cut off;
// connections beyond the per-source limit are refused while another
// source is served.
func TestEdgeBodyAndConnLimits(t *testing.T) {
	const maxConns = 12
	// ozdev passes its environment on to ozgateway.
	t.Setenv("OZ_GATEWAY_BODY_READ_TIMEOUT", "2s")
	t.Setenv("OZ_GATEWAY_MAX_CONNS_PER_SOURCE", strconv.Itoa(maxConns))
	sys := startSystem(t)
	pool, err := sys.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	dial := func(local string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 20 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return tls.DialWithDialer(d, "tcp", sys.Addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	}

	t.Run("TricklingBody", func(t *testing.T) {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/teams/acme/secrets HTTP/1.1\r\nHost: oz\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
		// A bound for the test, not a timing assertion: the gateway cuts
		// the body off after 2 s; a minute means it never did.
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response to a trickled body within 60 s: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "not received within") {
			t.Errorf("trickled body: %d %s, want 400 saying the body was not received in time", resp.StatusCode, body)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("the connection stayed open after the body was cut off")
		}
	})

	t.Run("ConnectionsPerSource", func(t *testing.T) {
		// Hold connections from 127.0.0.1, each after one request, until
		// one is refused.
		var held []*tls.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		get := func(c *tls.Conn) error {
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: oz\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		refused := false
		for range maxConns + 5 {
			c, err := dial("127.0.0.1")
			if err == nil {
				err = get(c)
				held = append(held, c)
			}
			if err != nil {
				refused = true
				break
			}
		}
		if !refused {
			t.Fatalf("%d connections from one source all accepted, want at most %d", len(held), maxConns)
		}
		if len(held) > maxConns+1 { // the last one held is the refused one
			t.Errorf("accepted %d connections, want at most %d", len(held)-1, maxConns)
		}
		t.Logf("held %d connections before one was refused", len(held))

		// Another source is served meanwhile.
		c, err := dial("127.0.0.2")
		if err != nil {
			t.Fatalf("a connection from another source: %v", err)
		}
		if err := get(c); err != nil {
			t.Errorf("a request from another source: %v", err)
		}
		c.Close()

		// Closing connections frees their slots.
		for _, c := range held {
			c.Close()
		}
		held = nil
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := dial("127.0.0.1")
			if err == nil {
				err = get(c)
				c.Close()
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no connection from 127.0.0.1 accepted after closing the others: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestEdgeHTTP: HSTS on every response, no CBC-SHA1 suites, bytes-field
// errors that do not echo the input, 405 with Allow, and responses whose
// JSON types agree with the OpenAPI document.
func TestEdgeHTTP(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	client := edgeClient(t, sys)

	t.Run("StrictTransportSecurity", func(t *testing.T) {
		for _, r := range []struct{ method, path, token string }{
			{"GET", "/healthz", ""}, {"GET", "/openapi.json", ""}, {"GET", "/", ""},
			{"GET", "/v1/secrets", tm.alice}, {"GET", "/v1/secrets", ""}, {"GET", "/v1/no/such/path", tm.alice},
			{"PUT", "/v1/teams/acme/secrets", tm.alice},
		} {
			_, hdr, _ := edgeDo(t, client, sys, r.method, r.path, r.token, "")
			if got := hdr.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
				t.Errorf("%s %s: Strict-Transport-Security %q, want max-age=…", r.method, r.path, got)
			}
		}
	})

	t.Run("NoCBCSuites", func(t *testing.T) {
		pool, err := sys.CAPool()
		if err != nil {
			t.Fatal(err)
		}
		cbc := []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		}
		c, err := tls.Dial("tcp", sys.Addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: cbc})
		if err == nil {
			t.Errorf("TLS 1.2 handshake with only CBC-SHA1 suites succeeded (%s), want a failure", tls.CipherSuiteName(c.ConnectionState().CipherSuite))
			c.Close()
		}
		c, err = tls.Dial("tcp", sys.Addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS 1.2 handshake with the default suites: %v", err)
		}
		if name := tls.CipherSuiteName(c.ConnectionState().CipherSuite); !strings.Contains(name, "ECDHE") || strings.Contains(name, "CBC") {
			t.Errorf("TLS 1.2 suite %s, want ECDHE with an AEAD", name)
		}
		c.Close()
	})

	t.Run("ErrorsDoNotEchoInput", func(t *testing.T) {
		const canary = "CANARY-pasted-plaintext-e7f1!"
		code, _, body := edgeDo(t, client, sys, "POST", "/v1/teams/acme/secrets", tm.alice,
			`{"secretId":"PASTED","value":"`+canary+`"}`)
		if code != 400 || strings.Contains(body, "CANARY") || !strings.Contains(body, "value: must be base64") {
			t.Errorf("value not base64: %d %s, want 400 saying value: must be base64, without the input", code, body)
		}
		code, _, body = edgeDo(t, client, sys, "GET", "/v1/teams/acme/secrets?pageSize="+canary[:13], tm.alice, "")
		if code != 400 || strings.Contains(body, "CANARY") || !strings.Contains(body, "page_size") {
			t.Errorf("pageSize not a number: %d %s, want 400 naming page_size, without the input", code, body)
		}
		logs, _ := os.ReadFile(filepath.Join(sys.DataDir, "logs", "gateway.log"))
		if strings.Contains(string(logs), "CANARY") {
			t.Errorf("the gateway's log holds the canary")
		}
	})

	t.Run("WrongMethod", func(t *testing.T) {
		for _, r := range []struct{ method, path, allow string }{
			{"PUT", "/v1/teams/acme/secrets", "GET, POST"},
			{"POST", "/v1/teams/acme/secrets/X", "GET, PATCH, DELETE"},
			{"DELETE", "/v1/tokens", "GET, POST"},
		} {
			code, hdr, body := edgeDo(t, client, sys, r.method, r.path, tm.alice, "")
			if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != r.allow {
				t.Errorf("%s %s: %d Allow=%q %s, want 405 Allow=%q", r.method, r.path, code, hdr.Get("Allow"), body, r.allow)
			}
		}
	})

	t.Run("ResponsesMatchOpenAPI", func(t *testing.T) {
		_, _, raw := edgeDo(t, client, sys, "GET", "/openapi.json", "", "")
		var doc struct {
			Paths map[string]map[string]struct {
				Responses map[string]struct {
					Content map[string]struct{ Schema map[string]any }
				}
			}
			Components struct {
				Schemas map[string]map[string]any
			}
		}
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatalf("openapi.json: %v", err)
		}
		// Fields left unset: a token without expiry, not revoked; a secret
		// without a description.
		if code, _, body := edgeDo(t, client, sys, "POST", "/v1/teams/acme/secrets", tm.alice, `{"secretId":"BARE","value":"eA=="}`); code != 200 {
			t.Fatalf("create a secret: %d %s", code, body)
		}
		for _, r := range []struct{ path, route, token string }{
			{"/v1/tokens", "/v1/tokens", sys.AdminToken},
			{"/v1/teams/acme/secrets/BARE", "/v1/teams/{team}/secrets/{secret}", tm.alice},
			{"/v1/teams/acme/secrets", "/v1/teams/{team}/secrets", tm.alice},
			{"/v1/caller", "/v1/caller", tm.alice},
		} {
			code, _, body := edgeDo(t, client, sys, "GET", r.path, r.token, "")
			if code != 200 {
				t.Fatalf("GET %s: %d %s", r.path, code, body)
			}
			schema := doc.Paths[r.route]["get"].Responses["200"].Content["application/json"].Schema
			if schema == nil {
				t.Fatalf("openapi.json has no GET %s", r.route)
			}
			var v any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			checkSchema(t, r.path, v, schema, doc.Components.Schemas)
		}
	})
}

// checkSchema checks v's JSON types against an OpenAPI 3 schema.
func checkSchema(t *testing.T, at string, v any, schema map[string]any, defs map[string]map[string]any) {
	t.Helper()
	if ref, ok := schema["$ref"].(string); ok {
		def := defs[strings.TrimPrefix(ref, "#/components/schemas/")]
		if def == nil {
			t.Errorf("%s: unknown $ref %s", at, ref)
			return
		}
		schema = def
	}
	typ, _ := schema["type"].(string)
	if typ == "" && schema["properties"] != nil {
		typ = "object"
	}
	if v == nil {
		t.Errorf("%s: null, where the document says %q", at, typ)
		return
	}
	ok := true
	switch typ {
	case "string":
		_, ok = v.(string)
	case "integer", "number":
		_, ok = v.(float64)
	case "boolean":
		_, ok = v.(bool)
	case "array":
		items, isArr := v.([]any)
		ok = isArr
		if item, _ := schema["items"].(map[string]any); isArr && item != nil {
			for i, x := range items {
				checkSchema(t, fmt.Sprintf("%s[%d]", at, i), x, item, defs)
			}
		}
	case "object":
		obj, isObj := v.(map[string]any)
		ok = isObj
		props, _ := schema["properties"].(map[string]any)
		for k, x := range obj {
			if p, _ := props[k].(map[string]any); p != nil {
				checkSchema(t, at+"."+k, x, p, defs)
			} else if ap, _ := schema["additionalProperties"].(map[string]any); ap != nil {
				checkSchema(t, at+"."+k, x, ap, defs)
			}
		}
	}
	if !ok {
		t.Errorf("%s: %T (%v), where the document says %q", at, v, v, typ)
	}
}

// TestEdgeHidesBackendTransportErrors: with a backend down, REST and native
// gRPC callers are told which service is unavailable, not its address or
// the transport's error, which stay in the gateway's log.
func TestEdgeHidesBackendTransportErrors(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	client := edgeClient(t, sys)
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code, _, body := edgeDo(t, client, sys, "GET", "/v1/secrets", sys.AdminToken, ""); code != 200 {
		t.Fatalf("GET /v1/secrets: %d %s", code, body)
	}

	leaks := func(msg string) bool {
		for _, port := range sys.Ports {
			_, p, _ := net.SplitHostPort(port)
			if strings.Contains(msg, ":"+p) {
				return true
			}
		}
		return strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "dial") || strings.Contains(msg, "connection")
	}
	for _, b := range []struct{ proc, path, want string }{
		{"secretstore", "/v1/secrets", "the secret store is unavailable; retry"},
		{"audit", "/v1/teams/acme/events", "the audit service is unavailable; retry"},
	} {
		if err := svc.Proc(b.proc).Stop(); err != nil {
			t.Fatalf("stop %s: %v", b.proc, err)
		}
		code, _, body := edgeDo(t, client, sys, "GET", b.path, sys.AdminToken, "")
		if code != 503 || leaks(body) || !strings.Contains(body, b.want) {
			t.Errorf("GET %s with %s down: %d %s, want 503 %q and no address", b.path, b.proc, code, body, b.want)
		}
		if b.proc == "secretstore" {
			ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), sys.AdminToken), 20*time.Second)
			_, err := secretsv1.NewSecretServiceClient(conn).ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
			cancel()
			if st := status.Convert(err); st.Code() != codes.Unavailable || leaks(st.Message()) || st.Message() != b.want {
				t.Errorf("gRPC with %s down: %v, want Unavailable %q", b.proc, err, b.want)
			}
		}
	}
	logs, err := os.ReadFile(svc.Proc("gateway").LogPath)
	if err != nil {
		t.Fatal(err)
	}
	_, storePort, _ := net.SplitHostPort(sys.Ports["secretstore"])
	if !strings.Contains(string(logs), "backend unavailable") || !strings.Contains(string(logs), storePort) {
		t.Errorf("the gateway's log does not keep the transport error naming the secretstore's address")
	}
}
