// Package edge is the gateway: the single public address of oz secrets.
//
// One TLS listener serves native gRPC and REST. Native gRPC calls are
// forwarded, undecoded, to the backend that owns their package (see routes);
// REST calls are translated by grpc-gateway and sent to the same backends.
// Methods of internal packages are refused. The gateway holds no business
// logic: authentication and authorisation are the backends' (the bearer
// token is forwarded as "authorization" metadata), and no request or response
// body is ever logged.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // accept callers' compressed messages
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/ozsecrets/oz/gateway/edge/sourcelimit"
	"github.com/ozsecrets/oz/gateway/openapi"
	"github.com/ozsecrets/oz/lib/dial"
	"github.com/ozsecrets/oz/lib/tracing"
)

// Defaults for the zero values of Config.
const (
	// DefaultMaxRequestBytes leaves room for values far above the
	// secretstore's default limit (64 KiB, ~88 KiB as base64 in JSON):
	// operators may raise that limit.
	DefaultMaxRequestBytes = 1 << 20
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultBodyReadTimeout bounds the time to receive a REST request
	// body: DefaultMaxRequestBytes within it is 35 KB/s, slow for anyone
	// but one trickling a body to hold a connection open.
	DefaultBodyReadTimeout = 30 * time.Second
	// DefaultMaxConnsPerSource bounds the connections one source address
	// holds open: a browser uses one (HTTP/2) to six, the CLI one.
	DefaultMaxConnsPerSource = 128
	// DefaultBackendTimeout bounds each call to a backend. It is longer
	// than the backends' own bounds on the calls they make (5 s to
	// authenticate, 8 s otherwise; services/internal/server), so that when
	// a service behind a backend hangs, the backend's answer naming it
	// comes first.
	DefaultBackendTimeout = 10 * time.Second
	// LongCallTimeout bounds the calls whose work grows with a whole audit
	// chain (VerifyChain recomputes every link: about 7 s for a million
	// events on a 2-core machine), which DefaultBackendTimeout would cut
	// short on a long chain. The caller's own deadline still applies.
	LongCallTimeout = 10 * time.Minute
)

// longCalls are the methods bounded by LongCallTimeout.
var longCalls = map[string]bool{
	auditv1.AuditService_VerifyChain_FullMethodName: true,
}

// backendTimeout is the bound of a call of method to a backend, given
// the configured bound d.
func backendTimeout(method string, d time.Duration) time.Duration {
	if longCalls[method] {
		return max(d, LongCallTimeout)
	}
	return d
}

// Config configures a Server.
type Config struct {
	// Certificate is the gateway's certificate and key. It is served to
	// callers and presented to the backends as the client certificate of
	// mutual TLS, so it must allow both server and client authentication.
	// Required.
	Certificate tls.Certificate

	// BackendCAs verifies the backends' certificates. Required.
	BackendCAs *x509.CertPool

	// Backends maps a backend name (SecretStore, Resolver, Audit) to its
	// addresses: "host:port", several separated by commas to balance
	// across them. SecretStore and Resolver are required (REST needs
	// them); a backend without an address fails the calls routed to it
	// with Unavailable.
	Backends map[string]string

	// Logger receives one line per request. Nil discards logs.
	Logger *slog.Logger

	// WebApp, when set, serves every HTTP path not taken by the API
	// (/v1/), /healthz and /openapi.json: the place for the web app's
	// static files (e.g. http.FileServerFS of an embed.FS). Nil serves a
	// short page saying the web app is not built.
	WebApp http.Handler

	// ObserveREST, when set, is called with every REST request (under /v1/)
	// and its body before the request is handled. It exists for end-to-end
	// tests, which check what actually reaches the gateway (a value sealed
	// in the browser, never its plaintext); ozgateway never sets it. It must
	// not modify the request.
	ObserveREST func(r *http.Request, body []byte)

	// MaxRequestBytes caps the size of a REST request body. Zero means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int64

	// BodyReadTimeout bounds the time to receive a REST request body,
	// counted from the end of its headers. Zero means
	// DefaultBodyReadTimeout. Native gRPC streams are not bounded by it:
	// they may last as long as their calls.
	BodyReadTimeout time.Duration

	// MaxConnsPerSource caps the connections open at once from one source
	// address (sourcelimit.Key); those beyond it are closed as soon as
	// they are accepted. Zero means DefaultMaxConnsPerSource; negative
	// means no limit.
	MaxConnsPerSource int

	// AuthFailures limits failed authentication per source address (see
	// authgate.go). The zero value means the defaults.
	AuthFailures AuthFailureLimit

	// BackendTimeout bounds each call to a backend, unless the caller's
	// deadline comes sooner: a backend that does not answer within it
	// fails the call with Unavailable "<the backend> did not answer within
	// <BackendTimeout>; retry". Zero means DefaultBackendTimeout.
	BackendTimeout time.Duration

	// ShutdownTimeout bounds how long Serve waits for calls in flight once
	// its context is cancelled. Zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// TracerProvider, when set and not a no-op (tracing.Setup), traces
	// native gRPC calls and REST requests (under /v1/) with a server span
	// each, the root of a new trace, and the calls to the backends with a
	// client span each, whose context the backends continue. Spans never
	// hold bodies, headers or query strings.
	TracerProvider trace.TracerProvider

	// Metrics, when set, receives the request metrics (metrics.go): native
	// gRPC calls by method and code, under the services' metric names, and
	// HTTP requests by route template and status. Nil: no metrics.
	Metrics prometheus.Registerer
}

// Server is the gateway. Create it with New, run it with Serve, and release
// its backend connections with Close.
type Server struct {
	cfg     Config
	log     *slog.Logger
	conns   map[string]*grpc.ClientConn // by backend name
	grpc    *grpc.Server
	health  *health.Server
	http    http.Handler
	openapi []byte // the published OpenAPI document
	serving atomic.Bool
	gate    *authGate // nil when AuthFailures is off
	metrics *metrics  // nil without Config.Metrics

	restMethods restMethods // the methods each REST path is served for
}

// New returns a gateway for cfg. It does not connect to the backends: each
// connection is made on first use, so the gateway starts while backends are
// still coming up.
func New(cfg Config) (*Server, error) {
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("edge: no tls certificate")
	}
	if err := checkClientUsage(cfg.Certificate); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if cfg.BackendCAs == nil {
		return nil, errors.New("edge: no ca to verify backends")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.BackendTimeout <= 0 {
		cfg.BackendTimeout = DefaultBackendTimeout
	}
	if cfg.MaxConnsPerSource == 0 {
		cfg.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if err := checkBackends(cfg.Backends); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}

	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Metrics),
		conns:   make(map[string]*grpc.ClientConn),
		health:  health.NewServer(),
		gate:    newAuthGate(cfg.AuthFailures),
	}
	creds := credentials.NewTLS(backendTLS(cfg.Certificate, cfg.BackendCAs))
	for _, name := range slices.Sorted(maps.Keys(cfg.Backends)) {
		addrs := dial.Split(cfg.Backends[name])
		if len(addrs) == 0 {
			continue // calls routed to it fail with Unavailable
		}
		// REST calls are unary, bounded here; native gRPC calls are
		// proxied as streams, bounded by the proxy.
		bound := dial.UnaryBound(
			func(method string) time.Duration { return backendTimeout(method, cfg.BackendTimeout) },
			func(string) string { return backendTitle(name) })
		conn, err := dial.New(addrs, creds, tracing.DialOption(cfg.TracerProvider),
			grpc.WithChainUnaryInterceptor(bound))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("edge: backend %s: %w", name, err)
		}
		s.conns[name] = conn
	}

	p := &proxy{conns: s.conns, codec: newCodec(), gate: s.gate, log: s.log, timeout: cfg.BackendTimeout}
	s.grpc = grpc.NewServer(
		// Serve hands it connections whose TLS is done (split.go).
		grpc.Creds(handshaken{}),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
		grpc.UnknownServiceHandler(p.handle),
		grpc.ForceServerCodecV2(p.codec),
		grpc.StreamInterceptor(s.streamInterceptor),
		grpc.UnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.metrics.streamInterceptor()), // inside the log's
		grpc.ChainUnaryInterceptor(s.metrics.unaryInterceptor()),
		tracing.PublicServerOption(cfg.TracerProvider),
	)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // until Serve
	registerReflection(s.grpc, s.conns)
	s.metrics.initialize(s.grpc) // the own services' series, at zero

	doc, err := openapi.Public()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("edge: %w", err)
	}
	s.openapi = doc
	rest, err := s.newRESTMux()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("edge: rest: %w", err)
	}
	s.http = s.logHTTP(s.metrics.http(securityHeaders(s.newHTTPMux(rest))))
	return s, nil
}

// checkBackends refuses unknown backend names (a typo would silently leave
// a backend unconfigured) and missing backends that REST needs.
func checkBackends(backends map[string]string) error {
	known := make(map[string]bool)
	for _, r := range routes {
		known[r.backend] = true
	}
	for name := range backends {
		if !known[name] {
			return fmt.Errorf("unknown backend %q", name)
		}
	}
	for _, svc := range restServices {
		if len(dial.Split(backends[svc.backend()])) == 0 {
			return fmt.Errorf("no address for backend %s (serves %s)", svc.backend(), svc.name)
		}
	}
	return nil
}

// ServeHTTP sends native gRPC to the gRPC server and everything else to the
// HTTP routes. Exported so that benchmarks and tests can mount the gateway
// on their own server; Serve is the normal way to run it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && isGRPCContentType(r.Header.Get("Content-Type")) {
		s.grpc.ServeHTTP(w, r)
		return
	}
	s.http.ServeHTTP(w, r)
}

// isGRPCContentType matches application/grpc and application/grpc+<codec>,
// not application/grpc-web (which would need translating, and is not served).
func isGRPCContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/grpc" || strings.HasPrefix(mt, "application/grpc+")
}

// TLSConfig returns the TLS configuration Serve uses for callers: the
// gateway's certificate, HTTP/2 and HTTP/1.1, TLS 1.2 or 1.3. Callers are
// not asked for a certificate; they authenticate with bearer tokens.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.cfg.Certificate},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12Suites,
	}
}

// Limits of a caller's connection, the same for REST and gRPC.
const (
	readHeaderTimeout = 10 * time.Second // for a request's headers
	idleTimeout       = 2 * time.Minute  // a connection with nothing in flight is closed
	maxHeaderBytes    = 64 << 10         // a request's headers
)

// tls12Suites are the TLS 1.2 cipher suites offered: forward secrecy
// (ECDHE) and authenticated encryption (GCM, ChaCha20-Poly1305) only; no
// CBC with SHA-1 MACs. TLS 1.3's suites are not configurable, and all good.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Serve accepts connections on l, with TLS, until ctx is cancelled; then it
// stops accepting, waits up to Config.ShutdownTimeout for calls in flight,
// and returns nil. Serve may be called once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake failures and the like, as warnings in the same log.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context {
			return context.WithoutCancel(ctx) // values, not cancellation: shutdown is graceful
		},
	}

	// HTTP/2 connections: gRPC to the native gRPC server, the rest to the
	// HTTP/2 server of REST (split.go).
	h2 := &http2.Server{IdleTimeout: idleTimeout}
	if err := http2.ConfigureServer(hs, h2); err != nil { // its graceful shutdown, on hs.Shutdown
		return fmt.Errorf("edge: %w", err)
	}
	grpcConns := newConnListener(l.Addr())
	waiting := &peeking{}
	hs.TLSNextProto[http2.NextProtoTLS] = s.splitTLSNextProto(h2, grpcConns, waiting, idleTimeout)
	grpcServed := make(chan struct{})
	go func() { _ = s.grpc.Serve(grpcConns); close(grpcServed) }()

	if s.cfg.MaxConnsPerSource > 0 {
		l = sourcelimit.Listen(l, s.cfg.MaxConnsPerSource, s.connRefused())
	}
	s.serving.Store(true)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.log.Info("gateway listening", slog.String("addr", l.Addr().String()))

	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(l, "", "") }()

	select {
	case err := <-served:
		s.stopServing()
		s.grpc.Stop()
		<-grpcServed
		return fmt.Errorf("edge: serve: %w", err)
	case <-ctx.Done():
	}

	s.log.Info("gateway shutting down")
	s.stopServing()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// Both drain at once: the gRPC server its calls (its connections end,
	// and with them their turn in hs), hs the REST requests. The gRPC server
	// is stopped hard when the time is up.
	waiting.close()
	grpcDrained := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(grpcDrained) }()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("gateway shutdown timed out; closing connections", slog.Duration("timeout", s.cfg.ShutdownTimeout))
		s.grpc.Stop()
		_ = hs.Close()
	}
	<-grpcDrained
	<-grpcServed
	<-served // http.ErrServerClosed
	return nil
}

func (s *Server) stopServing() {
	s.serving.Store(false)
	s.health.Shutdown() // every service NOT_SERVING
}

// Close closes the connections to the backends. Call it after Serve has
// returned.
func (s *Server) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
