package edge_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ozsecrets/oz/gateway/edge"
)

// TestObservabilityGatewayMetrics checks that every gateway metric
// (oz_gateway_*) the alert rules and the dashboard in deploy/observability
// name is one a real gateway exports; the services' metrics are checked in
// services/internal/server (TestObservabilityFiles).
func TestObservabilityGatewayMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *edge.Config) { c.Metrics = reg })
	if resp, _ := e.do(t, "GET", "/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: got %s, want 200", resp.Status)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				exported[f.GetName()+s] = true
			}
		}
	}
	name := regexp.MustCompile(`oz_gateway_[a-z0-9_]+`)
	used := 0
	for _, file := range []string{"alerts.yaml", "grafana-dashboard.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "observability", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			used++
			if !exported[n] {
				t.Errorf("%s names %s, which the gateway does not export", file, n)
			}
		}
	}
	if used == 0 {
		t.Error("the files name no gateway metric")
	}
}
