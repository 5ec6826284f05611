package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// metricsPortOffset places each process's metrics port beside its own
// (resolver 7451 → 9451, gateway 7443 → 9443): fixed, so that a
// Prometheus configuration written once keeps working.
const metricsPortOffset = 2000

// metricsAddr is the metrics address of the process serving on addr: the
// same host, its port plus metricsPortOffset.
func metricsAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics address of %q: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n+metricsPortOffset > 65535 {
		return "", fmt.Errorf("metrics address of %q: port must be 1-%d (the metrics port is %d above it)",
			addr, 65535-metricsPortOffset, metricsPortOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+metricsPortOffset)), nil
}

// withMetrics gives every process a --metrics-listen address, writes
// <dataDir>/prometheus.yml scraping them all, and returns the lines that
// list them for the start banner.
func withMetrics(procs []*proc, dataDir string) (string, error) {
	var banner, targets strings.Builder
	banner.WriteString("\nPrometheus metrics (OZ_METRICS):\n")
	for _, p := range procs {
		addr, err := metricsAddr(p.addr)
		if err != nil {
			return "", err
		}
		p.args = append(p.args, "--metrics-listen", addr)
		fmt.Fprintf(&banner, "  %-12s http://%s/metrics\n", p.name+":", addr)
		fmt.Fprintf(&targets, "      - targets: [%q]\n        labels: {service: %q}\n", addr, p.name)
	}
	cfgPath := filepath.Join(dataDir, "prometheus.yml")
	cfg := "# Written by ozdev (OZ_METRICS=1): prometheus --config.file " + cfgPath + "\n" +
		"scrape_configs:\n  - job_name: oz\n    scrape_interval: 5s\n    static_configs:\n" + targets.String()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", fmt.Errorf("write prometheus.yml: %w", err)
	}
	fmt.Fprintf(&banner, "  scrape them: prometheus --config.file %s\n", cfgPath)
	return banner.String(), nil
}
