// Package storemetrics measures a service's store calls for Prometheus:
//
//	oz_store_operation_duration_seconds{service, store, op, outcome}
//
// a histogram of each call's duration, by operation ("Get", "Apply", …),
// the kind of store ("bolt", "etcd") and outcome ("ok", "not_found",
// "conflict", "disk_full", "error"). Labels are fixed words: never a key,
// a name or a value. Each service wraps its own Store interface with a
// small decorator that calls Observer.Observe.
package storemetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer records store calls of one service's store.
type Observer struct {
	hist *prometheus.HistogramVec
}

// New registers the histogram on reg (nil: unregistered) for the store of
// service ("resolver", "secretstore", "audit") of kind ("bolt", "etcd").
func New(reg prometheus.Registerer, service, kind string) *Observer {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "oz_store_operation_duration_seconds",
		Help:        "Duration of store calls, by operation and outcome.",
		ConstLabels: prometheus.Labels{"service": service, "store": kind},
		// From a cached bbolt read (tens of µs) to a slow etcd quorum write.
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5},
	}, []string{"op", "outcome"})
	if reg != nil {
		reg.MustRegister(h)
	}
	return &Observer{hist: h}
}

// Observe records one call of op that started at start and ended with
// outcome (Outcome's words; "" is "ok").
func (o *Observer) Observe(op string, start time.Time, outcome string) {
	if o == nil {
		return
	}
	if outcome == "" {
		outcome = "ok"
	}
	o.hist.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}
