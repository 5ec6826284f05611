package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
)

// benchIDs numbers the events of every benchmark of the process: each
// event appended is new.
var benchIDs atomic.Int64

// Bench measures Append on a store made by open (one store for all the
// sub-benchmarks): batches of 1, 100 and 1,000 new events over four
// chains, from one goroutine and from four at once, reporting events/s.
// A store's tests call it from a Benchmark function:
//
//	func BenchmarkAppend(b *testing.B) { storetest.Bench(b, openMine) }
func Bench(b *testing.B, open func(b *testing.B) audit.Store) {
	s := open(b)
	for _, batch := range []int{1, 100, 1000} {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/goroutines=%d", batch, workers), func(b *testing.B) {
				benchAppend(b, s, batch, workers)
			})
		}
	}
}

func benchAppend(b *testing.B, s audit.Store, batchSize, workers int) {
	teams := []string{"acme", "beta", "gamma", ""}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	b.ResetTimer()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				batch := make([]*auditv1.Event, batchSize)
				for i := range batch {
					batch[i] = NewEvent(teams[i%len(teams)], int(benchIDs.Add(1)))
				}
				res, err := s.Append(context.Background(), batch, time.Now())
				if err != nil {
					errc <- err
					return
				}
				if res.Appended != batchSize {
					errc <- fmt.Errorf("appended %d of %d", res.Appended, batchSize)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}
