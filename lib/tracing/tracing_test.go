package tracing_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/lib/tracing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    tracing.Config
		wantErr string
	}{
		{"Default", nil, nil, tracing.Config{}, ""},
		{"Off", nil, []string{"--trace-exporter", "off"}, tracing.Config{}, ""},
		{"Env", map[string]string{"OZ_TRACE_EXPORTER": "otlp", "OZ_TRACE_ENDPOINT": "collector:4317", "OZ_TRACE_INSECURE": "true"}, nil,
			tracing.Config{Exporter: tracing.OTLP, Endpoint: "collector:4317", Insecure: true}, ""},
		{"FlagWins", map[string]string{"OZ_TRACE_EXPORTER": "otlp"}, []string{"--trace-exporter", "stdout"},
			tracing.Config{Exporter: tracing.Stdout}, ""},
		{"ErrExporter", nil, []string{"--trace-exporter", "jaeger"}, tracing.Config{}, `--trace-exporter "jaeger"`},
		{"ErrEndpointScheme", nil, []string{"--trace-exporter", "otlp", "--trace-endpoint", "http://c:4317"}, tracing.Config{}, "without a scheme"},
		{"ErrInsecureEnv", map[string]string{"OZ_TRACE_INSECURE": "maybe"}, nil, tracing.Config{}, "OZ_TRACE_INSECURE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := flagenv.New("test", flagenv.Help{}, func(k string) string { return tt.env[k] }, io.Discard)
			f := tracing.Register(set)
			err := set.Parse(tt.args) // a bad variable is a usage error
			var got tracing.Config
			if err == nil {
				got, err = f.Config()
			}
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
// shutdown, with the service's name as the resource's service.name.
func TestSetupStdout(t *testing.T) {
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
	for _, want := range []string{`"Name":"test-span"`, `"Key":"service.name","Value":{"Type":"STRING","Value":"ozteststored"}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}

func TestSetupOTLPIsLazy(t *testing.T) {
	// Nothing listens there: Setup must not wait for the collector.
	tp, shutdown, err := tracing.Setup(context.Background(), tracing.Config{Exporter: tracing.OTLP, Endpoint: "127.0.0.1:1", Insecure: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "lost")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // the span is dropped
	defer cancel()
	_ = shutdown(ctx)
}
