package etcdstore

// Benchmarks to compare with boltstore's: durable creates through the
// Service on embedded etcd (one member, and a three-member cluster on this
// machine), each at 1 and 64 concurrent writers. No timed assertions: the
// numbers are for people to compare.
//
//	go test -run '^$' -bench . ./secretstore/etcdstore/

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// benchValue is the size of the values created, as boltstore's benchmark.
var benchValue = bytes.Repeat([]byte("v"), 256)

var benchConcurrency = []int{1, 64}

// runPool runs op b.N times in total over g goroutines and reports
// writes/s.
func runPool(b *testing.B, g int, op func(i int64) error) {
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
}

// BenchmarkCreate creates secrets through the Service: validation, sealing
// with a fresh data key, and one etcd transaction putting the secret if
// absent and its audit event (secret.create) into the outbox. audit=off
// removes the outbox put (Store.noEvents, a benchmark-only switch). Each
// run has a namespace of its own on the cluster.
func BenchmarkCreate(b *testing.B) {
	p := &auth.Principal{Kind: auth.KindUser, Name: "users/bench", ID: "bench", Teams: map[string]auth.Role{"bench": auth.RoleAdmin}}
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			cluster := etcdtest.StartCluster(b, members)
			cli := cluster.Client(b)
			for _, audit := range []bool{true, false} {
				for _, g := range benchConcurrency {
					b.Run(fmt.Sprintf("audit=%s/goroutines=%d", onOff(audit), g), func(b *testing.B) {
						kr, err := keyring.Generate()
						if err != nil {
							b.Fatal(err)
						}
						store, err := New(context.Background(), cli, etcdtest.Prefix())
						if err != nil {
							b.Fatal(err)
						}
						defer store.Close()
						store.noEvents = !audit
						svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr})
						b.SetBytes(int64(len(benchValue)))
						runPool(b, g, func(i int64) error {
							_, err := svc.Create(context.Background(), p, secretstore.CreateRequest{
								Parent: "teams/bench", SecretID: fmt.Sprintf("SECRET_%09d", i), Value: benchValue, Description: "benchmark secret",
							})
							return err
						})
						if n, err := store.ob.Backlog(context.Background()); err != nil || (audit && n != b.N) || (!audit && n != 0) {
							b.Fatalf("outbox after %d creates (audit %s): %d events, %v", b.N, onOff(audit), n, err)
						}
					})
				}
			}
		})
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
