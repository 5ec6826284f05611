package metricsserve

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A registered counter is scraped at /metrics; nothing else is served;
// after stop the port is closed.
func TestServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "oz_test_total", Help: "a test counter"})
	reg.MustRegister(c)
	c.Add(3)
	stop, addr, err := Serve("127.0.0.1:0", reg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	code, body, err := get("/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "oz_test_total 3") {
		t.Fatalf("GET /metrics: %d %v\n%s", code, err, body)
	}
	if code, _, _ := get("/"); code != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", code)
	}
	stop()
	if _, _, err := get("/metrics"); err == nil {
		t.Error("the port still answers after stop")
	}
}
