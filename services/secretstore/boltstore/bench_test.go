package boltstore

// Benchmarks for `make bench`: durable creates through the Service beside a
// raw bbolt baseline of the same record size, each at 1 and 64 concurrent
// writers. No timed assertions: the numbers are for people to compare.
//
//	go test -run '^$' -bench . ./secretstore/boltstore/

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// benchValue is the size of the values created: a typical API key or a
// small JSON credential.
var benchValue = bytes.Repeat([]byte("v"), 256)

var benchConcurrency = []int{1, 64}

// runPool runs op b.N times in total over g goroutines.
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

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkCreate creates secrets through the Service: validation, sealing
// with a fresh data key, and a durable (fsynced) batched write of the
// secret and its audit event (secret.create, into the outbox in the same
// transaction). audit=off removes the outbox write (Store.noEvents, a
// benchmark-only switch), so that one run shows what auditing costs.
func BenchmarkCreate(b *testing.B) {
	p := &auth.Principal{Kind: auth.KindUser, Name: "users/bench", ID: "bench", Teams: map[string]auth.Role{"bench": auth.RoleAdmin}}
	for _, audit := range []bool{true, false} {
		for _, g := range benchConcurrency {
			b.Run(fmt.Sprintf("audit=%s/goroutines=%d", onOff(audit), g), func(b *testing.B) {
				kr, err := keyring.Generate()
				if err != nil {
					b.Fatal(err)
				}
				store := benchStore(b)
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
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// BenchmarkRawBatch is the baseline: raw puts of records of the size
// BenchmarkCreate writes, with the same key shape, through the store's
// group commit (what the store's writes use instead of db.Batch).
func BenchmarkRawBatch(b *testing.B) {
	kr, err := keyring.Generate()
	if err != nil {
		b.Fatal(err)
	}
	env, err := kr.Seal(benchValue, secretstore.ValueAD(secretstore.Team("bench"), "SECRET_000000000", 1))
	if err != nil {
		b.Fatal(err)
	}
	rec, err := encode(&secretstore.Secret{
		Owner: secretstore.Team("bench"), Name: "SECRET_000000000", Description: "benchmark secret", ValueVersion: 1,
		CreateTime: time.Now().UTC(), UpdateTime: time.Now().UTC(), ValueUpdateTime: time.Now().UTC(),
		CreateBy: "users/bench", UpdateBy: "users/bench", Etag: "0123456789abcdef", Value: env,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range benchConcurrency {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := benchStore(b)
			b.SetBytes(int64(len(benchValue)))
			runPool(b, g, func(i int64) error {
				k := key(secretstore.Team("bench"), fmt.Sprintf("SECRET_%09d", i))
				return s.commit.Do(func(tx *bolt.Tx) error {
					return tx.Bucket(bucketSecrets).Put(k, rec)
				})
			})
		})
	}
}
