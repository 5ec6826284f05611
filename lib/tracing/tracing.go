// Package tracing is the OpenTelemetry tracing of the gateway and the
// services: the flags that choose an exporter, Setup, which makes the
// TracerProvider they say, the options that trace a gRPC server's and a
// client's calls and the gateway's REST handler with it, and Child and End
// for the steps of a request worth seeing apart (store calls).
//
//	--trace-exporter off|stdout|otlp   where spans go (OZ_TRACE_EXPORTER; default off)
//	--trace-endpoint HOST:PORT         the OTLP/gRPC collector (OZ_TRACE_ENDPOINT; default the OTLP default, localhost:4317)
//	--trace-insecure                   plaintext to the collector instead of TLS (OZ_TRACE_INSECURE)
//
// With "off" (the default) Setup returns a no-op provider and the options
// add nothing: the processes run exactly as without tracing.
//
// Trace context travels between processes in the W3C traceparent and
// tracestate metadata only; baggage is not propagated. The gateway is the
// public edge: the trace context callers send is not trusted, so its
// servers (PublicServerOption, HTTPHandler) start a new trace per call,
// linked to the caller's span if it sent one; the services' servers
// (ServerOption) continue the trace of their caller, the gateway or
// another service.
//
// A span holds method names, routes, status codes, peer addresses,
// durations and counts: never a message body (message events are off),
// never request metadata or a header (where the caller's bearer token
// travels as "authorization"), never a query string, never a secret value.
// Status messages are recorded on failed calls; they are the safe messages
// callers receive (package errs), which never hold a value.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/ozsecrets/oz/lib/flagenv"
)

// Exporters, the values of --trace-exporter.
const (
	Off    = "off"    // no tracing
	Stdout = "stdout" // spans as JSON on standard output, for development
	OTLP   = "otlp"   // spans to an OpenTelemetry collector over OTLP/gRPC
)

// Config says where spans go.
type Config struct {
	Exporter string // "" or Off, Stdout or OTLP
	// Endpoint is the collector's host:port, for OTLP; "" is the OTLP
	// default (OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317).
	Endpoint string
	// Insecure sends OTLP in plaintext instead of TLS (system roots).
	Insecure bool
	// Stdout is where the stdout exporter writes; nil is os.Stdout.
	Stdout io.Writer
}

// Flags holds the tracing flags of one flag set.
type Flags struct{ c Config }

// Register defines --trace-exporter, --trace-endpoint and --trace-insecure
// on s, with the variables OZ_TRACE_EXPORTER, OZ_TRACE_ENDPOINT and
// OZ_TRACE_INSECURE. Like the store flags they carry no service name, so
// that services share them.
func Register(s *flagenv.Set) *Flags {
	f := &Flags{}
	s.String(&f.c.Exporter, "trace-exporter", "OZ_TRACE_EXPORTER", Off,
		"OpenTelemetry traces: off, stdout (JSON on standard output) or otlp (to --trace-endpoint over gRPC); spans never hold values, tokens or message bodies")
	s.String(&f.c.Endpoint, "trace-endpoint", "OZ_TRACE_ENDPOINT", "",
		"OTLP/gRPC collector HOST:PORT, with --trace-exporter otlp; default: OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317")
	s.Bool(&f.c.Insecure, "trace-insecure", "OZ_TRACE_INSECURE", false,
		"send traces to the collector in plaintext instead of TLS")
	return f
}

// Config returns what the flags say, once the flag set is parsed, or an
// error naming the bad value.
func (f *Flags) Config() (Config, error) {
	c := f.c
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	if c.Exporter == Off {
		c.Exporter = "" // the zero Config is off
	}
	return c, nil
}

func (c Config) validate() error {
	switch c.Exporter {
	case "", Off, Stdout, OTLP:
	default:
		return fmt.Errorf("--trace-exporter %q: want off, stdout or otlp", c.Exporter)
	}
	if c.Endpoint != "" && strings.Contains(c.Endpoint, "://") {
		return fmt.Errorf("--trace-endpoint %q: want HOST:PORT, without a scheme (plaintext: --trace-insecure)", c.Endpoint)
	}
	return nil
}

// Enabled reports whether c exports spans.
func (c Config) Enabled() bool { return c.Exporter == Stdout || c.Exporter == OTLP }

// Setup returns the TracerProvider c says, for the service named service
// (the resource's service.name), and a shutdown that flushes the spans
// still buffered and stops the exporter; call it once serving has stopped.
// With tracing off the provider is a no-op and shutdown does nothing.
// Setup sets no global: callers pass the provider to the options below
// (through server.Config in the services, edge.Config in the gateway).
func Setup(ctx context.Context, c Config, service string) (trace.TracerProvider, func(context.Context) error, error) {
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	if !c.Enabled() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch c.Exporter {
	case Stdout:
		w := c.Stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	case OTLP:
		opts := []otlptracegrpc.Option{}
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		// The connection is made lazily: a collector that is down loses
		// spans, never requests.
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter %s: %w", c.Exporter, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("trace resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// Propagator is how trace context crosses processes: W3C trace context
// (traceparent, tracestate), nothing else.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Enabled reports whether tp records anything: not nil, not a no-op.
func Enabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, isNoop := tp.(noop.TracerProvider)
	return !isNoop
}

// options are otelgrpc's options for both sides: tp, W3C trace context, no
// message events, no metrics (Prometheus has those), and no spans for
// health checks, which probes send every few seconds.
func options(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(Propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithMessageEvents(), // none: not even sizes
		otelgrpc.WithFilter(notHealth),
	}
}

func notHealth(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
}

// ServerOption traces a gRPC server's calls with tp: a server span per
// call, continuing the caller's trace. It is for servers whose callers are
// trusted to choose our traces (the services, called by the gateway and by
// each other); the public edge uses PublicServerOption. With tp nil or a
// no-op it adds nothing.
func ServerOption(tp trace.TracerProvider) grpc.ServerOption {
	if !Enabled(tp) {
		return grpc.EmptyServerOption{}
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler(options(tp)...))
}

// PublicServerOption traces the calls of a public gRPC server (the
// gateway's) with tp: a server span per call, the root of a new trace
// (linked to the caller's span, if it sent one: callers are not trusted to
// choose our traces). With tp nil or a no-op it adds nothing.
func PublicServerOption(tp trace.TracerProvider) grpc.ServerOption {
	if !Enabled(tp) {
		return grpc.EmptyServerOption{}
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler(append(options(tp), otelgrpc.WithPublicEndpoint())...))
}

// HTTPHandler traces the requests a public HTTP handler h (the gateway's
// REST) serves with tp: a server span per request, the root of a new trace
// (linked to the caller's span, if it sent one), named after the route
// once SetRoute has been told it, else "REST <method>". It records the
// method, the path, the route, the status and the peer, never a header,
// the query string or a body. With tp nil or a no-op it returns h.
func HTTPHandler(tp trace.TracerProvider, h http.Handler) http.Handler {
	if !Enabled(tp) {
		return h
	}
	traced := otelhttp.NewHandler(h, "REST",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(Propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }),
		otelhttp.WithMessageEvents(), // none
		// Called when the span starts and again once h has returned.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if rt, _ := r.Context().Value(routeKey{}).(*route); rt != nil && rt.name != "" {
				return rt.name
			}
			return "REST " + r.Method
		}),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, &route{})))
	})
}

// route is where SetRoute leaves the span's name for HTTPHandler, which
// names the span again after the request.
type route struct{ name string }

type routeKey struct{}

// SetRoute names the span of an HTTPHandler request after the REST route
// that matched, "GET /v1/{name=teams/*/secrets/*}", and records it as
// http.route: the pattern, not the path, so that the spans of one route
// share a name. ctx is the request's.
func SetRoute(ctx context.Context, method, pattern string) {
	name := method + " " + pattern
	if rt, _ := ctx.Value(routeKey{}).(*route); rt != nil {
		rt.name = name
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(name)
	span.SetAttributes(attribute.String("http.route", pattern))
}

// DialOption traces a gRPC client's calls with tp: a client span per call,
// whose context the server receives in traceparent. With tp nil or a no-op
// it adds nothing.
func DialOption(tp trace.TracerProvider) grpc.DialOption {
	if !Enabled(tp) {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(options(tp)...))
}

// Child starts a span named name, with attrs, as a child of ctx's span
// when that span is recording (a traced request), for the steps of a
// request worth seeing apart, such as store calls. Otherwise it returns
// ctx and a nil span: work done outside a traced request (background
// loops, startup) makes no root spans of its own.
func Child(ctx context.Context, tracer trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

// End ends span (nil: nothing to do). When err is not nil, the span gets
// kind, a short name of what went wrong ("not found", "conflict") as
// attribute oz.error.kind, and an error status when kind is "internal" or
// "unavailable" (expected outcomes such as "not found" are not failures
// of the step). The error's text is never recorded: it may hold a key.
func End(span trace.Span, err error, kind string) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetAttributes(attribute.String("oz.error.kind", kind))
		if kind == "internal" || kind == "unavailable" {
			span.SetStatus(codes.Error, kind)
		}
	}
	span.End()
}
