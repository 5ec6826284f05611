package runs_test

// Benchmarks for `make bench`: run resolutions with auditing on against
// the same with the outbox write removed, each at 1 and 64 concurrent
// runners. No timed assertions: the numbers are for people to compare.
//
//	go test -run '^$' -bench ResolveRun ./resolver/runs/

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// BenchmarkResolveRun starts runs and resolves them as a runner does, over
// the fixture of the run tests (newRunsFixture): real bbolt files for the
// resolver and the secretstore, and the secretstore's Service and
// RunSecretsServer in process. Each run is started (its record and ticket,
// one Apply) and resolved: the resolution reads the identity and
// environment, lists the candidates, decides, has the secretstore seal the
// injected values (one HPKE encapsulation), and durably commits the run
// record with its run.resolve event (one Apply, batched). audit=off
// removes the outbox write (outbox.KV.DiscardEvents, a benchmark-only
// switch), so that one run shows what auditing costs.
func BenchmarkResolveRun(b *testing.B) {
	// A user's CLI run with an environment: two team secrets and alice's
	// personal ones injected, one reference unresolved.
	rc := runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice", Environment: "ops-tools"}
	for _, audit := range []bool{true, false} {
		for _, g := range []int{1, 64} {
			b.Run(fmt.Sprintf("audit=%s/goroutines=%d", onOff(audit), g), func(b *testing.B) {
				f := newRunsFixture(b)
				if !audit {
					f.dir.Store().Outbox().DiscardEvents()
				}
				ctx := context.Background()
				before, err := f.dir.Store().Outbox().Backlog(ctx)
				if err != nil {
					b.Fatal(err)
				}
				runPool(b, g, "runs/s", func(int64) error {
					res, err := f.resolve(f.runnerA, "acme", rc, "")
					if err == nil && len(res.Run.Injected) == 0 {
						err = fmt.Errorf("run %s injected nothing", res.Run.ID)
					}
					return err
				})
				after, err := f.dir.Store().Outbox().Backlog(ctx)
				if err != nil {
					b.Fatal(err)
				}
				want := 0
				if audit {
					want = 2 * b.N // run.start and run.resolve
				}
				if got := after - before; got != want && after < 100_000 { // Backlog counts up to 100,000
					b.Fatalf("outbox after %d resolutions (audit %s): %d new events, want %d", b.N, onOff(audit), got, want)
				}
			})
		}
	}
}

// runPool runs op b.N times in total over g goroutines and reports the
// throughput as unit.
func runPool(b *testing.B, g int, unit string, op func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range g {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
