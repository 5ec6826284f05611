// Package tracing is the OpenTelemetry tracing of the gateway and the
// services: Register, which reads the standard OpenTelemetry variables,
// Setup, which makes the TracerProvider they say, the options that trace a
// gRPC server's and a client's calls and the gateway's REST handler with
// it, and Child and End for the steps of a request worth seeing apart
// (store calls).
//
// Every binary is configured the same way, by the variables of the
// OpenTelemetry specification, which collectors and operators already know:
//
//	OTEL_TRACES_EXPORTER          none (default), console (JSON lines on standard output) or otlp
//	OTEL_EXPORTER_OTLP_ENDPOINT   the collector; default http://localhost:4318 (http/protobuf), localhost:4317 (grpc)
//	OTEL_EXPORTER_OTLP_PROTOCOL   http/protobuf (default) or grpc; OTEL_EXPORTER_OTLP_TRACES_* override per signal
//	OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _INSECURE, _TIMEOUT, _COMPRESSION   as the specification says
//	OTEL_SERVICE_NAME             the resource's service.name; default the binary's name (ozresolverd)
//	OTEL_RESOURCE_ATTRIBUTES      more resource attributes, key=value,…
//	OTEL_TRACES_SAMPLER(_ARG)     the sampler; default parentbased_always_on
//	OTEL_SDK_DISABLED=true        no tracing, whatever the rest says
//
// The exporter is made by the contrib package autoexport, the reference
// reading of these variables. One deviation: with OTEL_TRACES_EXPORTER
// unset tracing is off (the specification says otlp), so that a process
// never sends spans to an address nobody chose.
//
// The project's own variables of earlier releases, OZ_TRACE_EXPORTER
// (off, stdout, otlp), OZ_TRACE_ENDPOINT and OZ_TRACE_INSECURE, are still
// honoured when OTEL_TRACES_EXPORTER is unset, with a warning naming the
// replacement; they will be removed. The --trace-* flags are gone.
//
// With tracing off Setup returns a no-op provider and the options add
// nothing: the processes run exactly as without tracing.
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
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/contrib/exporters/autoexport"
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

// Exporters, the values of Config.Exporter.
const (
	Off    = "off"    // no tracing (OTEL_TRACES_EXPORTER unset or none)
	Stdout = "stdout" // spans as JSON lines on standard output, for development (console)
	OTLP   = "otlp"   // spans to an OpenTelemetry collector (otlp)
)

// The standard variables Register reads itself; the exporter reads the
// OTEL_EXPORTER_OTLP_* ones.
const (
	envExporter     = "OTEL_TRACES_EXPORTER"
	envDisabled     = "OTEL_SDK_DISABLED"
	envSampler      = "OTEL_TRACES_SAMPLER"
	envProtocol     = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envProtocolSpan = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// Config says where spans go.
type Config struct {
	Exporter string // "" or Off, Stdout or OTLP
	// Endpoint and Insecure come from the deprecated OZ_TRACE_ENDPOINT and
	// OZ_TRACE_INSECURE only: an OTLP/gRPC collector's HOST:PORT, in
	// plaintext. Otherwise the OTEL_EXPORTER_OTLP_* variables say it all.
	Endpoint string
	Insecure bool
	// Protocol is "grpc" when the deprecated OZ_TRACE_EXPORTER=otlp chose
	// OTLP (it always meant OTLP/gRPC); "" is what OTEL_ says.
	Protocol string
	// Stdout is where the stdout exporter writes; nil is os.Stdout.
	Stdout io.Writer
}

// Flags reads the tracing variables of one flag set.
type Flags struct{ set *flagenv.Set }

// Register ties tracing to s, whose Getenv it reads the variables with
// (the package comment lists them). It declares no flag: tracing is
// configured the OpenTelemetry way, by environment, the same in every
// binary.
func Register(s *flagenv.Set) *Flags { return &Flags{set: s} }

// Config returns what the variables say, once the flag set is parsed, or
// an error naming the variable and the values it takes.
func (f *Flags) Config() (Config, error) {
	getenv := f.set.Getenv
	if v := getenv(envDisabled); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: want true or false", envDisabled, v)
		}
		if off {
			return Config{}, nil
		}
	}
	var c Config
	switch v := getenv(envExporter); v {
	case "":
		return legacy(getenv)
	case "none":
	case "console":
		c.Exporter = Stdout
	case "otlp":
		c.Exporter = OTLP
	default:
		return Config{}, fmt.Errorf("%s=%q: want none, console or otlp (one exporter)", envExporter, v)
	}
	for _, k := range []string{envProtocolSpan, envProtocol} {
		switch v := getenv(k); v {
		case "", "grpc", "http/protobuf":
		default:
			return Config{}, fmt.Errorf("%s=%q: want grpc or http/protobuf", k, v)
		}
	}
	switch v := getenv(envSampler); v {
	case "", "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
	default:
		return Config{}, fmt.Errorf("%s=%q: want always_on, always_off, traceidratio or their parentbased_ forms", envSampler, v)
	}
	for _, k := range []string{"OZ_TRACE_EXPORTER", "OZ_TRACE_ENDPOINT", "OZ_TRACE_INSECURE"} {
		if getenv(k) != "" {
			warnOnce(k + " is ignored: " + envExporter + " is set")
		}
	}
	return c, nil
}

// legacy reads the deprecated OZ_TRACE_* variables, with a warning naming
// the replacement of each one set.
func legacy(getenv func(string) string) (Config, error) {
	c := Config{Exporter: getenv("OZ_TRACE_EXPORTER"), Endpoint: getenv("OZ_TRACE_ENDPOINT")}
	switch c.Exporter {
	case "", Off:
		c.Exporter = ""
	case Stdout:
		warnOnce("OZ_TRACE_EXPORTER is deprecated: set " + envExporter + "=console")
	case OTLP:
		c.Protocol = "grpc"
		warnOnce("OZ_TRACE_EXPORTER is deprecated: set " + envExporter + "=otlp and " + envProtocol + "=grpc")
	default:
		return Config{}, fmt.Errorf("OZ_TRACE_EXPORTER=%q: want off, stdout or otlp; it is deprecated: set %s (none, console or otlp)", c.Exporter, envExporter)
	}
	if c.Endpoint != "" {
		if strings.Contains(c.Endpoint, "://") {
			return Config{}, fmt.Errorf("OZ_TRACE_ENDPOINT=%q: want HOST:PORT, without a scheme; it is deprecated: set OTEL_EXPORTER_OTLP_ENDPOINT (a URL)", c.Endpoint)
		}
		warnOnce("OZ_TRACE_ENDPOINT is deprecated: set OTEL_EXPORTER_OTLP_ENDPOINT=https://" + c.Endpoint + " (http:// for plaintext)")
	}
	if v := getenv("OZ_TRACE_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("OZ_TRACE_INSECURE=%q: want true or false; it is deprecated: set OTEL_EXPORTER_OTLP_INSECURE", v)
		}
		c.Insecure = b
		warnOnce("OZ_TRACE_INSECURE is deprecated: set OTEL_EXPORTER_OTLP_INSECURE=" + v)
	}
	return c, nil
}

var warned sync.Map // message → struct{}

// warnOnce logs msg once per process, on the default logger (standard
// error): it is found while the flags are read, before a binary has made
// its own logger.
func warnOnce(msg string) {
	if _, dup := warned.LoadOrStore(msg, struct{}{}); !dup {
		slog.Warn("tracing: " + msg)
	}
}

// Enabled reports whether c exports spans.
func (c Config) Enabled() bool { return c.Exporter == Stdout || c.Exporter == OTLP }

// Setup returns the TracerProvider c says, for the service named service
// (the resource's service.name unless OTEL_SERVICE_NAME names another),
// and a shutdown that flushes the spans still buffered and stops the
// exporter; call it once serving has stopped. With tracing off the
// provider is a no-op and shutdown does nothing. Setup sets no global:
// callers pass the provider to the options below (through server.Config
// in the services, edge.Config in the gateway).
func Setup(ctx context.Context, c Config, service string) (trace.TracerProvider, func(context.Context) error, error) {
	switch c.Exporter {
	case "", Off, Stdout, OTLP:
	default:
		return nil, nil, fmt.Errorf("trace exporter %q: want off, stdout or otlp", c.Exporter)
	}
	if !c.Enabled() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := exporter(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter %s: %w", c.Exporter, err)
	}
	// Later sources win: the binary's name, then OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("trace resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err), exp.Shutdown(ctx))
	}
	// The provider reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* itself.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// exporter makes c's span exporter. The stdout one is autoexport's
// console exporter with a writer of our choosing; OTLP is autoexport's,
// which reads OTEL_EXPORTER_OTLP_*, except where the deprecated variables
// ask for OTLP/gRPC. The connection is made lazily: a collector that is
// down loses spans, never requests.
func exporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	if c.Exporter == Stdout {
		w := c.Stdout
		if w == nil {
			w = os.Stdout
		}
		return stdouttrace.New(stdouttrace.WithWriter(w))
	}
	if c.Protocol == "grpc" || c.Endpoint != "" || c.Insecure {
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	// With OTEL_TRACES_EXPORTER unset (a Config made in code) this is
	// OTLP too.
	return autoexport.NewSpanExporter(ctx)
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
			if rt, _ := r.Context().Value(routeKey{}).(*route); rt.name() != "" {
				return rt.name()
			}
			return "REST " + r.Method
		}),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = TrackRoute(r)
		traced.ServeHTTP(w, r)
	})
}

// route is where SetRoute leaves the request's route for those who asked
// with TrackRoute: HTTPHandler, which names the span again after the
// request, and the gateway's request metrics.
type route struct{ method, pattern string }

type routeKey struct{}

// TrackRoute returns r with a place for SetRoute to leave the route that
// matched, and a function that returns it once r is served: "" when none
// matched, else the method and pattern ("GET", "/v1/{name=teams/*/secrets/*}").
// A pattern, unlike a path, names no team or secret, and there are few of
// them: the right label for metrics. Tracked twice, r keeps one place, so
// that an outer tracker (metrics) and an inner one (HTTPHandler) both see
// the route.
func TrackRoute(r *http.Request) (*http.Request, func() (method, pattern string)) {
	rt, _ := r.Context().Value(routeKey{}).(*route)
	if rt == nil {
		rt = &route{}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
	}
	return r, func() (string, string) { return rt.method, rt.pattern }
}

func (rt *route) name() string {
	if rt == nil || rt.pattern == "" {
		return ""
	}
	return rt.method + " " + rt.pattern
}

// SetRoute tells the request whose context is ctx the REST route that
// matched, "GET /v1/{name=teams/*/secrets/*}": TrackRoute's callers get
// it, and its span (if traced) is named after it and records it as
// http.route. Spans of one route share a name.
func SetRoute(ctx context.Context, method, pattern string) {
	rt, _ := ctx.Value(routeKey{}).(*route)
	if rt != nil {
		rt.method, rt.pattern = method, pattern
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(method + " " + pattern)
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
