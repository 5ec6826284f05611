package outbox_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/audit/storetest"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// eventually fails the test unless cond holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of the gauge or counter name in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitDelivered waits until the delivered counter of reg reaches n, then
// checks it is exactly n. The shipper counts a batch just after its Ack
// returns, so the outbox is seen empty a moment before the count is
// complete.
func waitDelivered(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	eventually(t, 5*time.Second, "delivered counter reaches the events written", func() bool {
		return metric(t, reg, "oz_audit_outbox_delivered_total") >= float64(n)
	})
	if got := metric(t, reg, "oz_audit_outbox_delivered_total"); got != float64(n) {
		t.Errorf("delivered: got %v, want %d", got, n)
	}
}

// run starts sh until the test ends.
func run(t *testing.T, sh *outbox.Shipper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// checkDelivered verifies every chain and that it holds events 0..n-1 of
// its team, each once, in the order they were written.
func checkDelivered(t *testing.T, srv *audittest.Server, teams []string, n int) {
	t.Helper()
	for ti, team := range teams {
		all := storetest.Verify(t, srv.Store(), team)
		want := 0
		for i := 0; i < n; i++ {
			if i%len(teams) == ti {
				want++
			}
		}
		if len(all) != want {
			t.Errorf("chain %q: got %d events, want %d", team, len(all), want)
		}
		prev := -1
		seen := map[string]bool{}
		for _, ev := range all {
			k, _ := strconv.Atoi(ev.GetDetails()["n"])
			if k <= prev {
				t.Fatalf("chain %q: event %d after %d, want the order written", team, k, prev)
			}
			prev = k
			if seen[ev.GetId()] {
				t.Fatalf("chain %q: event %s twice", team, ev.GetId())
			}
			seen[ev.GetId()] = true
		}
	}
}

func TestShipperDeliversEverythingAfterAnOutage(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	srv.Stop()
	ob := newBoltKV(t, "resolver")
	reg := prometheus.NewRegistry()
	sh := outbox.New(outbox.Config{
		Source:       ob,
		Client:       internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "resolver")),
		Emitter:      "resolver",
		BatchSize:    64,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		Registerer:   reg,
	})
	ob.OnCommit(sh.Notify)
	run(t, sh)

	teams := []string{"acme", "beta", ""}
	const n = 300
	for i := 0; i < n; i++ {
		add(t, ob, event(teams[i%len(teams)], i))
	}
	eventually(t, 10*time.Second, "backlog 300 and failed deliveries while audit is down", func() bool {
		return metric(t, reg, "oz_audit_outbox_backlog") == n && metric(t, reg, "oz_audit_outbox_delivery_failures_total") > 0
	})
	if age := metric(t, reg, "oz_audit_outbox_oldest_event_age_seconds"); age <= 0 {
		t.Errorf("oldest event age while down: got %v, want > 0", age)
	}

	srv.Restart()
	eventually(t, 30*time.Second, "outbox drained after the audit service came back", func() bool {
		left, err := ob.Backlog(context.Background())
		return err == nil && left == 0
	})
	checkDelivered(t, srv, teams, n)
	waitDelivered(t, reg, n) // the lag of a batch is observed before it is counted
	if got := metric(t, reg, "oz_audit_outbox_delivery_lag_seconds"); got != n {
		t.Errorf("lag observations: got %v, want %d", got, n)
	}
	eventually(t, 5*time.Second, "backlog gauge back to 0", func() bool {
		return metric(t, reg, "oz_audit_outbox_backlog") == 0 && metric(t, reg, "oz_audit_outbox_oldest_event_age_seconds") == 0
	})
}

// lostAcks is an outbox whose first Acks fail after the delivery
// succeeded, as when the process dies between the two.
type lostAcks struct {
	*outbox.KV
	fail atomic.Int32
}

func (l *lostAcks) Ack(ctx context.Context, ids []string) error {
	if l.fail.Add(-1) >= 0 {
		return errors.New("ack lost")
	}
	return l.KV.Ack(ctx, ids)
}

func TestShipperRedeliveryAppendsOnce(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	ob := newBoltKV(t, "secretstore")
	src := &lostAcks{KV: ob}
	src.fail.Store(3)
	reg := prometheus.NewRegistry()
	sh := outbox.New(outbox.Config{
		Source:       src,
		Client:       internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "secretstore")),
		Emitter:      "secretstore",
		BatchSize:    10,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   20 * time.Millisecond,
		PollInterval: time.Hour, // only Notify wakes it
		Registerer:   reg,
	})
	ob.OnCommit(sh.Notify)
	run(t, sh)

	const n = 45
	for i := 0; i < n; i++ {
		add(t, ob, event("acme", i))
	}
	eventually(t, 10*time.Second, "outbox drained", func() bool {
		left, err := ob.Backlog(context.Background())
		return err == nil && left == 0
	})
	checkDelivered(t, srv, []string{"acme"}, n)
	waitDelivered(t, reg, n)
}

func TestFlush(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	ob := newBoltKV(t, "secretstore")
	sh := outbox.New(outbox.Config{
		Source:      ob,
		Client:      internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "secretstore")),
		Emitter:     "secretstore",
		BatchSize:   7,
		CallTimeout: time.Second,
	})
	for i := 0; i < 20; i++ {
		add(t, ob, event("acme", i))
	}
	if err := sh.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	checkDelivered(t, srv, []string{"acme"}, 20)

	srv.Stop()
	add(t, ob, event("acme", 20))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := sh.Flush(ctx); err == nil {
		t.Errorf("Flush with the audit service down: got nil, want an error")
	}
	if left, _ := ob.Backlog(context.Background()); left != 1 {
		t.Errorf("backlog: got %d, want 1 (kept for later)", left)
	}
}

// A service whose events the audit service refuses (here: ids of another
// service) keeps them and retries; nothing is dropped.
func TestShipperKeepsRefusedEvents(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	ob := newBoltKV(t, "secretstore") // ids "secretstore-…"
	reg := prometheus.NewRegistry()
	sh := outbox.New(outbox.Config{
		Source:     ob,
		Client:     internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "resolver")), // but calling as the resolver
		Emitter:    "secretstore",
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Registerer: reg,
	})
	run(t, sh)
	add(t, ob, event("acme", 1))
	sh.Notify()
	eventually(t, 5*time.Second, "refused deliveries", func() bool {
		return metric(t, reg, "oz_audit_outbox_delivery_failures_total") >= 2
	})
	if left, _ := ob.Backlog(context.Background()); left != 1 {
		t.Errorf("backlog: got %d, want 1", left)
	}
}
