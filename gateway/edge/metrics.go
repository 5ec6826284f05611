package edge

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/ozsecrets/oz/lib/metricsserve"
	"github.com/ozsecrets/oz/lib/tracing"
)

// Request metrics, when Config.Metrics is set.
//
// Native gRPC calls are counted by the same collectors, under the same
// names and labels, as the services' calls (grpc_server_started_total,
// grpc_server_handled_total{grpc_service,grpc_method,grpc_code},
// grpc_server_handling_seconds), so that one dashboard query covers the
// gateway and the services. REST requests are counted by route template and
// status (oz_gateway_http_*).
//
// Every label has few values whatever callers send: a gRPC method the API
// does not define is counted as "unknown" (callers choose method names, and
// the proxy forwards any name under a routed package); a REST request is
// labelled with the pattern that matched, never its path, which names teams
// and secrets; an HTTP method that is not a standard one is "OTHER".

// unknownMethod labels a gRPC method the API does not define.
const unknownMethod = "/unknown/unknown"

// REST routes that are not API patterns.
const (
	routeHealth    = "/healthz"
	routeOpenAPI   = "/openapi.json"
	routeUnmatched = "/v1/ (no route)" // under /v1/, no pattern matched
	routeWeb       = "/ (web app)"     // everything else
)

type metrics struct {
	grpc     *grpcprom.ServerMetrics
	requests *prometheus.CounterVec   // method, route, code
	duration *prometheus.HistogramVec // method, route
}

// newMetrics registers the gateway's collectors with reg; nil reg is no
// metrics.
func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oz_gateway_http_requests_total",
			Help: "REST and other HTTP requests the gateway answered, by HTTP method, route template (never the path) and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oz_gateway_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by HTTP method and route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.grpc, m.requests, m.duration)
	return m
}

// streamInterceptor counts proxied calls (and the gateway's own streaming
// services) under their method, when the API defines it, with the call's
// real shape: the proxy serves every call as a stream, a unary one too,
// which is counted as the services count it, as unary.
func (m *metrics) streamInterceptor() grpc.StreamServerInterceptor {
	if m == nil {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, ss)
		}
	}
	stream, unary := m.grpc.StreamServerInterceptor(), m.grpc.UnaryServerInterceptor()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		md := methodDescriptor(info.FullMethod)
		if md != nil && !md.IsStreamingClient() && !md.IsStreamingServer() {
			_, err := unary(ss.Context(), nil, &grpc.UnaryServerInfo{FullMethod: info.FullMethod},
				func(ctx context.Context, _ any) (any, error) {
					return nil, h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
				})
			return err
		}
		known := *info
		if md == nil {
			known.FullMethod = unknownMethod
		} else {
			known.IsClientStream, known.IsServerStream = md.IsStreamingClient(), md.IsStreamingServer()
		}
		return stream(srv, ss, &known, h)
	}
}

// unaryInterceptor counts the gateway's own unary methods (health checks),
// which grpc registered: their names are bounded already.
func (m *metrics) unaryInterceptor() grpc.UnaryServerInterceptor {
	if m == nil {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}
	}
	return m.grpc.UnaryServerInterceptor()
}

// initialize makes the series of the methods gs serves itself (health)
// exist at zero before any call.
func (m *metrics) initialize(gs *grpc.Server) {
	if m != nil {
		m.grpc.InitializeMetrics(gs)
	}
}

// methodDescriptor returns the API's definition of full ("/pkg.Service/Method"),
// or nil when no linked-in API defines it.
func methodDescriptor(full string) protoreflect.MethodDescriptor {
	service, method, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !ok || !protoreflect.FullName(service).IsValid() || !protoreflect.Name(method).IsValid() {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(method))
}

// http counts the HTTP requests h answers (everything but native gRPC).
func (m *metrics) http(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, matched := tracing.TrackRoute(r)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		method, route := httpMethod(r.Method), restRoute(r.URL.Path, matched)
		m.requests.WithLabelValues(method, route, strconv.Itoa(rec.status)).Inc()
		m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	})
}

// restRoute is the route label of a request to path: the API pattern that
// matched (told by the REST handler through tracing.SetRoute), else one of
// a few fixed names.
func restRoute(path string, matched func() (method, pattern string)) string {
	if _, pattern := matched(); pattern != "" {
		return pattern
	}
	switch {
	case path == routeHealth, path == routeOpenAPI:
		return path
	case strings.HasPrefix(path, "/v1/"):
		return routeUnmatched
	default:
		return routeWeb
	}
}

func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// ServeMetrics serves reg at http://addr/metrics, in plain HTTP, until
// stop is called; it returns the address it listens on. It is the
// services' --metrics-listen endpoint, for the gateway.
func ServeMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), _ net.Addr, _ error) {
	return metricsserve.Serve(addr, reg, log, DefaultShutdownTimeout)
}
