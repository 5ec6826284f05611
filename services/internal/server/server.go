// Package server is the gRPC plumbing every service shares: mutual TLS,
// the access-rule interceptor, error-kind → status conversion, structured
// request logs, tracing, health checking and reflection, and a graceful
// Serve.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/dial"
	"github.com/ozsecrets/oz/lib/reqmeta"
	"github.com/ozsecrets/oz/lib/tracing"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Config configures a service's gRPC server.
type Config struct {
	Name   string      // service name, for logs
	TLS    *tls.Config // server TLS (pki.ServerConfig); nil only in tests of plumbing
	Rules  auth.Rules  // access rules; StandardRules are added
	Auth   auth.Authenticator
	Logger *slog.Logger
	// Metrics, when set, receives the gRPC server metrics: RPC counts by
	// method and code (grpc_server_started_total, grpc_server_handled_total)
	// and latencies (grpc_server_handling_seconds). Labels name methods and
	// codes only, never anything from a request.
	Metrics prometheus.Registerer
	// OnDenied, when set, is called once for every request refused with
	// PermissionDenied or Unauthenticated, whether by the access rules or
	// by the handler, except health checks and reflection; see Denied.
	OnDenied Denied
	// DeniedInterval, when positive, is how refusals of requests without a
	// valid credential are recorded (DESIGN §6): not one by one, but
	// counted per source address, method, code and reason, and told to
	// OnDenied once per interval with the count (DeniedCountFrom) — so
	// anonymous traffic cannot grow the audit log without bound. What is
	// counted is told at the latest when Serve stops. Zero: every refusal
	// is told at once (tests of the plumbing); the daemons set it
	// (--denied-count-interval, DefaultDeniedInterval).
	DeniedInterval time.Duration
	// TracerProvider, when set and not a no-op (tracing.Setup), traces
	// every call but health checks: a server span named after the method,
	// continuing the caller's trace (W3C traceparent), which the handler's
	// ctx carries. Spans never hold message bodies or metadata; see
	// package tracing.
	TracerProvider trace.TracerProvider
}

// Denied is told of a refused request, after the handler (if any) has
// run and before the refusal is sent. ctx is the request's, not
// cancelled when the client goes away, and carries what is known of the
// caller: auth.PrincipalFrom (nil when the refusal came before a token
// was authenticated), auth.ServiceFrom, auth.ClientFrom and RequestID.
// method is the full gRPC method (always one the server has); req is the
// request message (nil for streams); err is the refusal as a gRPC status
// error, whose message is the safe one the caller receives — it never
// holds a token. Denied must not keep req, and its own failure cannot
// change the answer: it logs and returns.
type Denied func(ctx context.Context, method string, req any, err error)

// Server is a gRPC server with health checking.
type Server struct {
	*grpc.Server
	Health  *health.Server
	log     *slog.Logger
	metrics *grpcprom.ServerMetrics // nil without Config.Metrics
	denials *deniedCounter          // nil without Config.DeniedInterval
}

// New builds the server. Register services on it, then call Serve.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	rules := auth.Rules{}
	for k, v := range auth.StandardRules {
		rules[k] = v
	}
	for k, v := range cfg.Rules {
		rules[k] = v
	}
	ic := &auth.Interceptor{Rules: rules, Auth: cfg.Auth}
	unary := []grpc.UnaryServerInterceptor{logUnary(log), statusUnary(log), ic.Unary}
	stream := []grpc.StreamServerInterceptor{ic.Stream}
	var denials *deniedCounter
	if cfg.OnDenied != nil && cfg.DeniedInterval > 0 {
		denials = newDeniedCounter(cfg.OnDenied, cfg.DeniedInterval, time.Now)
	}
	if cfg.OnDenied != nil {
		// deniedUnary sees the final status (outside statusUnary); the
		// principal the access rules authenticated comes back to it through
		// capturePrincipal, the innermost interceptor.
		unary = []grpc.UnaryServerInterceptor{logUnary(log), deniedUnary(cfg.OnDenied, denials), statusUnary(log), ic.Unary, capturePrincipal}
		stream = []grpc.StreamServerInterceptor{deniedStream(cfg.OnDenied, denials, ic.Stream)}
	}
	// Every request has its id before anything logs or records it.
	unary = append([]grpc.UnaryServerInterceptor{requestIDUnary}, unary...)
	stream = append([]grpc.StreamServerInterceptor{requestIDStream}, stream...)
	var metrics *grpcprom.ServerMetrics
	if cfg.Metrics != nil {
		metrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
		cfg.Metrics.MustRegister(metrics)
		// Outermost, so that latencies include authentication and the
		// codes are the ones callers receive.
		unary = append([]grpc.UnaryServerInterceptor{metrics.UnaryServerInterceptor()}, unary...)
		stream = append([]grpc.StreamServerInterceptor{metrics.StreamServerInterceptor()}, stream...)
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(4 << 20),
		tracing.ServerOption(cfg.TracerProvider),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	hs := health.NewServer()
	// Not ready until Serve: a probe must not send traffic to a server
	// that is still being set up (health.NewServer starts at SERVING).
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return &Server{Server: gs, Health: hs, log: log.With("service", cfg.Name), metrics: metrics, denials: denials}
}

// Serve serves on lis until ctx is done, then stops gracefully (in-flight
// RPCs finish, for at most ten seconds).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if s.metrics != nil {
		// Every method reports zeros from the start, so rates and alerts
		// work before its first call. Services are registered by now.
		s.metrics.InitializeMetrics(s.Server)
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if s.denials != nil {
		stopCounting := s.denials.run()
		// After the graceful stop, when no request is left to count:
		// nothing counted is lost (the caller's store and outbox are
		// still open; they close after Serve returns).
		defer stopCounting()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	s.log.Info("serving", "addr", lis.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// statusUnary turns handler errors into gRPC statuses: kinded errors keep
// their safe message, anything else is logged and becomes "internal error".
func statusUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := errs.ToStatus(err)
		if st.Code() == codes.Internal {
			// The cause goes to the log only. Errors are built so that they
			// never hold a secret value, so this is safe to log.
			log.ErrorContext(ctx, "internal error", "method", info.FullMethod, "err", err.Error(), "request_id", RequestID(ctx))
		}
		return nil, st.Err()
	}
}

// logUnary writes one structured line per request: method, code, duration,
// caller — never request or response bodies, never tokens, and no message
// of a caller's own mistake (callerInput).
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		extra := &logAttrs{}
		resp, err := handler(context.WithValue(ctx, logAttrsKey{}, extra), req)
		attrs := []any{
			"method", info.FullMethod,
			"code", status.Code(err).String(),
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		}
		if id := RequestID(ctx); id != "" {
			attrs = append(attrs, "request_id", id)
		}
		attrs = append(attrs, extra.get()...)
		if svc := auth.PeerService(ctx); svc != "" {
			attrs = append(attrs, "peer", svc)
		}
		if src := auth.RequestSource(ctx); src != "" {
			attrs = append(attrs, "source", src)
		}
		if st := status.Convert(err); err != nil && !callerInput(st.Code()) {
			attrs = append(attrs, "error", st.Message())
		}
		level := slog.LevelInfo
		if info.FullMethod == "/grpc.health.v1.Health/Check" {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "rpc", attrs...)
		return resp, err
	}
}

// callerInput reports whether code answers what the caller asked for
// rather than a fault of the service. Such a status's message echoes the
// request (`secret teams/acme/secrets/NAME not found`), and a name may be
// a value pasted in the wrong place (`oz secret update --team --value
// hunter2` takes hunter2 as the NAME): the log keeps the code only, the
// caller still gets the message.
func callerInput(code codes.Code) bool {
	switch code {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.PermissionDenied:
		return true
	}
	return false
}

// logAttrs are attributes a handler adds to its request's log line.
type logAttrs struct {
	mu    sync.Mutex
	attrs []any
}

type logAttrsKey struct{}

func (l *logAttrs) get() []any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attrs
}

// LogAttr adds key=value to the log line of the request ctx belongs to,
// such as the run id a resolution chose ("run_id"). Only identifiers: never
// a value, a body or a token. Outside a request it does nothing.
func LogAttr(ctx context.Context, key, value string) {
	if l, ok := ctx.Value(logAttrsKey{}).(*logAttrs); ok {
		l.mu.Lock()
		l.attrs = append(l.attrs, key, value)
		l.mu.Unlock()
	}
}

type requestIDKey struct{}

// RequestID returns the request's id: the one the gateway (or the client)
// sent when valid (reqmeta.ValidRequestID), else one generated for the
// request when it arrived (requestIDUnary); "" outside a request.
func RequestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id
	}
	// A context that did not come through the interceptors (a handler
	// called in process): the incoming id only when valid.
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(reqmeta.RequestID); len(v) > 0 && reqmeta.ValidRequestID(v[0]) {
		return v[0]
	}
	return ""
}

// withRequestID gives the request of ctx its id, once, before anything
// logs or records it: the caller's when valid, else a new one — an
// invalid id (too long, odd characters, a pasted token) is replaced
// whole, so nothing of it is kept.
func withRequestID(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	var sent string
	if v := md.Get(reqmeta.RequestID); len(v) > 0 {
		sent = v[0]
	}
	return context.WithValue(ctx, requestIDKey{}, reqmeta.RequestIDOr(sent))
}

// requestIDUnary and requestIDStream are the outermost interceptors.
func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(withRequestID(ctx), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &ctxStream{ServerStream: ss, ctx: withRequestID(ss.Context())})
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// Dial connects to another service by mutual TLS. addr may list several
// comma-separated addresses; calls are balanced round robin across them
// (package dial). opts come after the defaults, e.g. tracing.DialOption(tp)
// to trace the calls and carry their trace to the service called.
func Dial(addr string, tlsCfg *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return dial.New(dial.Split(addr), credentials.NewTLS(tlsCfg), opts...)
}
