package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMetricsAddr(t *testing.T) {
	for _, tt := range []struct{ addr, want, wantErr string }{
		{"127.0.0.1:7451", "127.0.0.1:9451", ""},
		{"[::1]:7443", "[::1]:9443", ""},
		{"127.0.0.1:65000", "", "port must be 1-63535"},
		{"127.0.0.1:0", "", "port must be"},
		{"no-port", "", `metrics address of "no-port"`},
	} {
		got, err := metricsAddr(tt.addr)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("metricsAddr(%q): got %q, %v; want an error containing %q", tt.addr, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("metricsAddr(%q): got %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}

// TestMetricsVariable checks that OZ_METRICS=1 alone gives every process
// a metrics address, lists them, and writes a scrape configuration.
func TestMetricsVariable(t *testing.T) {
	c, err := parseFlags(nil, func(k string) string { return map[string]string{"OZ_METRICS": "1"}[k] }, io.Discard)
	if err != nil || !c.metrics {
		t.Fatalf("OZ_METRICS=1: got metrics %t, %v; want on", c.metrics, err)
	}
	if c, _ := parseFlags(nil, func(string) string { return "" }, io.Discard); c.metrics {
		t.Fatal("metrics on by default")
	}
	dir := t.TempDir()
	procs := []*proc{{name: "resolver", addr: "127.0.0.1:7451"}, {name: "gateway", addr: "127.0.0.1:7443", args: []string{"--listen", "127.0.0.1:7443"}}}
	banner, err := withMetrics(procs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--listen", "127.0.0.1:7443", "--metrics-listen", "127.0.0.1:9443"}; !slices.Equal(procs[1].args, want) {
		t.Errorf("gateway args: got %q, want %q", procs[1].args, want)
	}
	if want := []string{"--metrics-listen", "127.0.0.1:9451"}; !slices.Equal(procs[0].args, want) {
		t.Errorf("resolver args: got %q, want %q", procs[0].args, want)
	}
	for _, want := range []string{"http://127.0.0.1:9451/metrics", "http://127.0.0.1:9443/metrics", "prometheus.yml"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %s:\n%s", want, banner)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`targets: ["127.0.0.1:9451"]`, `labels: {service: "gateway"}`, "scrape_configs:"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("prometheus.yml lacks %s:\n%s", want, cfg)
		}
	}
}
