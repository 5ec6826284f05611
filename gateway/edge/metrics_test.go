package edge_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/gateway/edge"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// TestMetrics makes a few calls to a real gateway, scrapes its metrics
// endpoint and checks the series by label: gRPC by method and code (an
// undefined method as "unknown"), REST by route template, never a path.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *edge.Config) { c.Metrics = reg })
	stop, addr, err := edge.ServeMetrics("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	conn := e.gw.Dial(t)
	client := secretsv1.NewSecretServiceClient(conn)
	for range 2 {
		if _, err := client.GetSecret(outgoing(t.Context()), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
	}
	// A method no API defines, under a routed package: any caller can
	// invent one, so it must not become a series of its own.
	err = conn.Invoke(outgoing(t.Context()), "/oz.secrets.v1.SecretService/Invented42", &secretsv1.GetSecretRequest{}, &secretsv1.GetSecretResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("invented method: got %v, want Unimplemented", err)
	}
	if resp, _ := e.do(t, "GET", "/v1/teams/acme/secrets/API_KEY", "", authHeader()); resp.StatusCode != http.StatusOK {
		t.Fatalf("REST GET: got %s, want 200", resp.Status)
	}
	if resp, _ := e.do(t, "GET", "/v1/teams/acme/nothing-here", "", authHeader()); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("REST unmatched: got %s, want 404", resp.Status)
	}
	if resp, _ := e.do(t, "BREW", "/healthz", "", nil); resp.StatusCode < 400 {
		t.Fatalf("BREW /healthz: got %s, want an error", resp.Status)
	}
	if resp, _ := e.do(t, "GET", "/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: got %s, want 200", resp.Status)
	}

	fams := scrape(t, "http://"+addr.String()+"/metrics")
	for _, tt := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_service": "oz.secrets.v1.SecretService", "grpc_method": "GetSecret", "grpc_type": "unary", "grpc_code": "OK"}, 2},
		{"grpc_server_started_total", map[string]string{"grpc_service": "oz.secrets.v1.SecretService", "grpc_method": "GetSecret", "grpc_type": "unary"}, 2},
		{"grpc_server_handling_seconds", map[string]string{"grpc_service": "oz.secrets.v1.SecretService", "grpc_method": "GetSecret", "grpc_type": "unary"}, 2},
		{"grpc_server_handled_total", map[string]string{"grpc_service": "unknown", "grpc_method": "unknown", "grpc_code": "Unimplemented"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_code": "OK"}, 0}, // initialised
		{"oz_gateway_http_requests_total", map[string]string{"method": "GET", "route": "/v1/{name=teams/*/secrets/*}", "code": "200"}, 1},
		{"oz_gateway_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/v1/{name=teams/*/secrets/*}"}, 1},
		{"oz_gateway_http_requests_total", map[string]string{"method": "GET", "route": "/v1/ (no route)", "code": "404"}, 1},
		{"oz_gateway_http_requests_total", map[string]string{"method": "GET", "route": "/healthz", "code": "200"}, 1},
		{"oz_gateway_http_requests_total", map[string]string{"method": "OTHER", "route": "/healthz"}, 1},
	} {
		if got, ok := sample(fams[tt.family], tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v: got %v (found %t), want %v", tt.family, tt.labels, got, ok, tt.want)
		}
	}
	// No label value anywhere holds a name from a path or the invented
	// method.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, bad := range []string{"acme", "API_KEY", "Invented42", "BREW", "nothing-here"} {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// TestMetricsOff checks that a gateway without a registry still serves.
func TestMetricsOff(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, "GET", "/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: got %s, want 200", resp.Status)
	}
	var _ grpc.ClientConnInterface = e.gw.Dial(t)
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: got %s %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// sample sums the family's series whose labels include want: the value of
// a counter, the count of a histogram.
func sample(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}
