package egress_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const benchClients = 16

// run sends n requests from benchClients goroutines and returns the
// requests per second and the per-request latencies.
func benchRun(b *testing.B, n int, send func() error) (float64, []time.Duration) {
	b.Helper()
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := send(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), lat
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkProxy compares requests per second through the proxy, with a
// substitution in each request and masking of each response, against the
// same client shape straight to the test server, in the same run.
// Metrics: ratio (proxied/direct req/s, issue 18 wants >= 0.3) and
// p50-added-µs (median latency through the proxy less the direct median).
func BenchmarkProxy(b *testing.B) {
	e := newEnv(b, nil)
	direct := &http.Client{Transport: &http.Transport{
		DialContext:         e.up.dial,
		TLSClientConfig:     &tls.Config{RootCAs: e.up.roots, ServerName: "api.example.test"},
		MaxIdleConnsPerHost: benchClients,
	}}
	proxied := e.client()
	send := func(c *http.Client) func() error {
		return func() error {
			req, _ := http.NewRequest("GET", "https://api.example.test/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+e.ph)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
	}
	n := max(b.N, benchClients)
	// Warm both connection pools so handshakes are not measured.
	benchRun(b, benchClients, send(direct))
	benchRun(b, benchClients, send(proxied))
	b.ResetTimer()
	directRPS, directLat := benchRun(b, n, send(direct))
	proxyRPS, proxyLat := benchRun(b, n, send(proxied))
	b.StopTimer()
	b.ReportMetric(directRPS, "direct-req/s")
	b.ReportMetric(proxyRPS, "proxy-req/s")
	b.ReportMetric(proxyRPS/directRPS, "ratio")
	b.ReportMetric(float64((p50(proxyLat) - p50(directLat)).Microseconds()), "p50-added-µs")
}
