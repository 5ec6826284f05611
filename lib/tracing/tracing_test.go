package tracing_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/lib/tracing"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    tracing.Config
		wantErr string
	}{
		{"Default", nil, tracing.Config{}, ""},
		{"None", map[string]string{"OTEL_TRACES_EXPORTER": "none"}, tracing.Config{}, ""},
		{"Console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, tracing.Config{Exporter: tracing.Stdout}, ""},
		{"OTLP", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
			tracing.Config{Exporter: tracing.OTLP}, ""},
		{"SDKDisabled", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, tracing.Config{}, ""},
		{"OTELWinsOverLegacy", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OZ_TRACE_EXPORTER": "otlp"}, tracing.Config{Exporter: tracing.Stdout}, ""},
		{"LegacyStdout", map[string]string{"OZ_TRACE_EXPORTER": "stdout"}, tracing.Config{Exporter: tracing.Stdout}, ""},
		{"LegacyOTLP", map[string]string{"OZ_TRACE_EXPORTER": "otlp", "OZ_TRACE_ENDPOINT": "collector:4317", "OZ_TRACE_INSECURE": "true"},
			tracing.Config{Exporter: tracing.OTLP, Endpoint: "collector:4317", Insecure: true, Protocol: "grpc"}, ""},
		{"ErrExporter", map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, tracing.Config{}, `OTEL_TRACES_EXPORTER="jaeger"`},
		{"ErrExporterList", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, tracing.Config{}, "one exporter"},
		{"ErrProtocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, tracing.Config{}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"ErrSampler", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, tracing.Config{}, "OTEL_TRACES_SAMPLER"},
		{"ErrDisabled", map[string]string{"OTEL_SDK_DISABLED": "yes please"}, tracing.Config{}, "OTEL_SDK_DISABLED"},
		{"ErrLegacyExporter", map[string]string{"OZ_TRACE_EXPORTER": "jaeger"}, tracing.Config{}, "set OTEL_TRACES_EXPORTER"},
		{"ErrLegacyScheme", map[string]string{"OZ_TRACE_EXPORTER": "otlp", "OZ_TRACE_ENDPOINT": "http://c:4317"}, tracing.Config{}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"ErrLegacyInsecure", map[string]string{"OZ_TRACE_INSECURE": "maybe"}, tracing.Config{}, "OTEL_EXPORTER_OTLP_INSECURE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := flagenv.New("test", flagenv.Help{}, func(k string) string { return tt.env[k] }, io.Discard)
			f := tracing.Register(set)
			if err := set.Parse(nil); err != nil {
				t.Fatal(err)
			}
			got, err := f.Config()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSetupOff(t *testing.T) {
	tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.Off}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok || tracing.Enabled(tp) {
		t.Errorf("got %T, want a no-op provider", tp)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestSetupStdout checks that spans reach the exporter, flushed by
// shutdown, as the JSON lines ozbench -spans parses, with the binary's
// name as service.name unless OTEL_SERVICE_NAME says another, and the
// attributes of OTEL_RESOURCE_ATTRIBUTES.
func TestSetupStdout(t *testing.T) {
	for _, tt := range []struct{ name, serviceEnv, wantService string }{
		{"BinaryName", "", "ozteststored"},
		{"OTELServiceName", "oz-prod-store", "oz-prod-store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", tt.serviceEnv)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
			var out bytes.Buffer
			tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.Stdout, Stdout: &out}, "ozteststored")
			if err != nil {
				t.Fatal(err)
			}
			if !tracing.Enabled(tp) {
				t.Fatal("stdout provider is not enabled")
			}
			_, span := tp.Tracer("test").Start(context.Background(), "test-span")
			span.End()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				`"Name":"test-span"`, `"SpanContext":{"TraceID":`, `"SpanID":`, `"Parent":{`, `"StartTime":`, `"EndTime":`,
				`"Key":"service.name","Value":{"Type":"STRING","Value":"` + tt.wantService + `"}`,
				`"Key":"deployment.environment","Value":{"Type":"STRING","Value":"test"}`,
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %s:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestSetupSampler checks that OTEL_TRACES_SAMPLER reaches the provider.
func TestSetupSampler(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	var out bytes.Buffer
	tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.Stdout, Stdout: &out}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "dropped")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("got spans with always_off:\n%s", out.String())
	}
}

// TestSetupOTLP sends a span, configured by the OTEL_ variables only, to an
// in-process collector over each protocol and checks what it received.
func TestSetupOTLP(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(strings.ReplaceAll(proto, "/", "-"), func(t *testing.T) {
			got := make(chan *coltracepb.ExportTraceServiceRequest, 10)
			var endpoint string
			if proto == "grpc" {
				endpoint = "http://" + grpcCollector(t, got)
			} else {
				endpoint = httpCollector(t, got)
			}
			t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_SERVICE_NAME", "oz-otlp-test")
			set := flagenv.New("test", flagenv.Help{}, os.Getenv, io.Discard)
			c, err := tracing.Register(set).Config()
			if err != nil {
				t.Fatal(err)
			}
			tp, shutdown, err := tracing.Setup(context.Background(), c, "ozteststored")
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(context.Background(), "otlp-span")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case req := <-got:
				rs := req.GetResourceSpans()
				if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
					t.Fatalf("got %v, want one span", req)
				}
				if name := rs[0].GetScopeSpans()[0].GetSpans()[0].GetName(); name != "otlp-span" {
					t.Errorf("got span %q, want otlp-span", name)
				}
				var service string
				for _, a := range rs[0].GetResource().GetAttributes() {
					if a.GetKey() == "service.name" {
						service = a.GetValue().GetStringValue()
					}
				}
				if service != "oz-otlp-test" {
					t.Errorf("got service.name %q, want oz-otlp-test", service)
				}
			default:
				t.Fatal("the collector received nothing")
			}
		})
	}
}

func TestSetupOTLPIsLazy(t *testing.T) {
	// Nothing listens there: Setup must not wait for the collector.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.OTLP}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "lost")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // the span is dropped
	defer cancel()
	_ = shutdown(ctx)
}

// httpCollector is an OTLP/HTTP receiver of traces on loopback; it returns
// its URL.
func httpCollector(t *testing.T, got chan<- *coltracepb.ExportTraceServiceRequest) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || err != nil || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		got <- req
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type traceReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	got chan<- *coltracepb.ExportTraceServiceRequest
}

func (r traceReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.got <- req
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// grpcCollector is an OTLP/gRPC receiver of traces on loopback, in
// plaintext; it returns its HOST:PORT.
func grpcCollector(t *testing.T, got chan<- *coltracepb.ExportTraceServiceRequest) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, traceReceiver{got: got})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestTrackRoute checks that an outer tracker (the gateway's metrics)
// sees the route SetRoute tells an inner handler, through HTTPHandler's own
// tracking, and that a request no route matched has none.
func TestTrackRoute(t *testing.T) {
	tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.Stdout, Stdout: io.Discard}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	inner := tracing.HTTPHandler(tp, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/teams/acme" {
			tracing.SetRoute(r.Context(), "GET", "/v1/{name=teams/*}")
		}
	}))
	for _, tt := range []struct{ path, wantMethod, wantPattern string }{
		{"/v1/teams/acme", "GET", "/v1/{name=teams/*}"},
		{"/v1/nothing", "", ""},
	} {
		r, matched := tracing.TrackRoute(httptest.NewRequest("GET", tt.path, nil))
		inner.ServeHTTP(httptest.NewRecorder(), r)
		if m, p := matched(); m != tt.wantMethod || p != tt.wantPattern {
			t.Errorf("%s: got %q %q, want %q %q", tt.path, m, p, tt.wantMethod, tt.wantPattern)
		}
	}
}
