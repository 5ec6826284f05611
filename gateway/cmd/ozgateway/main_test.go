package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	"github.com/ozsecrets/oz/gateway/web"
)

func TestParseFlags(t *testing.T) {
	required := []string{"--tls-cert=c", "--tls-key=k", "--tls-ca=ca", "--secretstore-addr=s:1", "--resolver-addr=r:1"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    options
		wantErr string
	}{
		{
			name: "FlagsAndDefaults", args: required,
			want: withLimitDefaults(options{listen: "127.0.0.1:7443", tlsCert: "c", tlsKey: "k", tlsCA: "ca", secretstore: "s:1", resolver: "r:1"}),
		},
		{
			name: "Environment",
			env: map[string]string{
				"OZ_GATEWAY_ADDR": ":9443", "OZ_TLS_CERT": "ec", "OZ_TLS_KEY": "ek", "OZ_TLS_CA": "eca",
				"OZ_SECRETSTORE_ADDR": "s:2,s:3", "OZ_RESOLVER_ADDR": "r:2", "OZ_AUDIT_ADDR": "a:2",
			},
			want: withLimitDefaults(options{listen: ":9443", tlsCert: "ec", tlsKey: "ek", tlsCA: "eca", secretstore: "s:2,s:3", resolver: "r:2", auditAddrs: "a:2"}),
		},
		{
			name: "LimitsFromEnvironment", args: required,
			env: map[string]string{
				"OZ_GATEWAY_MAX_REQUEST_BYTES": "2048", "OZ_GATEWAY_BODY_READ_TIMEOUT": "5s",
				"OZ_GATEWAY_MAX_CONNS_PER_SOURCE": "0", "OZ_GATEWAY_AUTH_FAIL_PER_MINUTE": "0", "OZ_GATEWAY_AUTH_FAIL_BURST": "3",
				"OZ_GATEWAY_BACKEND_TIMEOUT": "3s",
			},
			want: options{listen: "127.0.0.1:7443", tlsCert: "c", tlsKey: "k", tlsCA: "ca", secretstore: "s:1", resolver: "r:1",
				maxRequestBytes: 2048, bodyReadTimeout: 5 * time.Second, backendTimeout: 3 * time.Second, authFailBurst: 3},
		},
		{name: "NegativeConnLimit", args: append(required, "--max-conns-per-source=-1"), wantErr: "--max-conns-per-source must not be negative"},
		{name: "ZeroBurst", args: append(required, "--auth-fail-burst=0"), wantErr: "--auth-fail-burst must be positive"},
		{name: "ZeroBodyTimeout", args: append(required, "--body-read-timeout=0s"), wantErr: "--body-read-timeout must be positive"},
		{name: "ZeroBackendTimeout", args: append(required, "--backend-timeout=0s"), wantErr: "--backend-timeout must be positive"},
		{
			name: "FlagBeatsEnvironment", args: append([]string{"--listen=:1"}, required...),
			env:  map[string]string{"OZ_GATEWAY_ADDR": ":2"},
			want: withLimitDefaults(options{listen: ":1", tlsCert: "c", tlsKey: "k", tlsCA: "ca", secretstore: "s:1", resolver: "r:1"}),
		},
		{name: "MissingCert", args: required[1:], wantErr: "--tls-cert is required"},
		{name: "MissingResolver", args: required[:4], wantErr: "--resolver-addr is required"},
		{name: "StrayArgument", args: append(required, "serve"), wantErr: `unexpected argument "serve"`},
		{name: "UnknownFlag", args: append(required, "--nope"), wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags: got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if got != tt.want {
				t.Errorf("parseFlags: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// withLimitDefaults is o with the edge limits at their defaults.
func withLimitDefaults(o options) options {
	o.maxRequestBytes = edge.DefaultMaxRequestBytes
	o.bodyReadTimeout = edge.DefaultBodyReadTimeout
	o.backendTimeout = edge.DefaultBackendTimeout
	o.maxConnsPerSource = edge.DefaultMaxConnsPerSource
	o.authFailPerMinute = edge.DefaultAuthFailuresPerMinute
	o.authFailBurst = edge.DefaultAuthFailureBurst
	return o
}

// TestRun starts the command as main would, checks it serves, and stops it
// by cancelling its context, as SIGTERM does.
func TestRun(t *testing.T) {
	pki := edgetest.NewPKI(t)
	certFile, keyFile, caFile := pki.WriteFiles(t, pki.Issue(t, "gateway"))
	addr := freeAddr(t)
	env := map[string]string{
		"OZ_GATEWAY_ADDR": addr, "OZ_TLS_CERT": certFile, "OZ_TLS_KEY": keyFile, "OZ_TLS_CA": caFile,
		// Backends are dialled lazily: nothing needs to listen here.
		"OZ_SECRETSTORE_ADDR": "127.0.0.1:1", "OZ_RESOLVER_ADDR": "127.0.0.1:2",
	}
	ctx, cancel := context.WithCancel(t.Context())
	var logs syncWriter
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &logs) }()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(nil)}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz: got %d, want 200", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not come up: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The web app is served at /, with its Content-Security-Policy.
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
		t.Errorf("GET /: got %d with CSP %q, want 200 with %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), web.ContentSecurityPolicy)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: got %v, want nil", err)
	}
	if !strings.Contains(logs.String(), `"msg":"gateway listening"`) {
		t.Errorf("logs: got %s, want JSON lines", logs.String())
	}

	t.Run("BadFiles", func(t *testing.T) {
		env := map[string]string{"OZ_TLS_CERT": "/nonexistent", "OZ_TLS_KEY": keyFile, "OZ_TLS_CA": caFile,
			"OZ_SECRETSTORE_ADDR": "127.0.0.1:1", "OZ_RESOLVER_ADDR": "127.0.0.1:2"}
		err := run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "load tls certificate") {
			t.Errorf("run: got %v, want a certificate error", err)
		}
	})
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncWriter is a buffer safe for a logger's concurrent writes.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
