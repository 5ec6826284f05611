// Package metricsserve serves a Prometheus registry over plain HTTP at
// /metrics: the --metrics-listen endpoint of the services and of the
// gateway. The port is unauthenticated, so it serves nothing else; bind
// it to loopback or a network only the scraper reaches.
package metricsserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Serve serves reg at http://addr/metrics until stop is called, which
// waits up to stopTimeout for scrapes in progress. It returns the address
// it listens on (addr may name port 0).
func Serve(addr string, reg *prometheus.Registry, log *slog.Logger, stopTimeout time.Duration) (stop func(), _ net.Addr, _ error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(lis) }()
	log.Info("metrics", "addr", "http://"+lis.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err.Error())
		}
	}, lis.Addr(), nil
}
