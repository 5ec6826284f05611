package kvstore_test

// Benchmarks for `make bench`: durable creates through the Service, with
// audit events and without, at 1 and 64 concurrent writers, on a bbolt
// file beside a raw bbolt baseline of the same record size, and on
// embedded etcd (one member, and a three-member cluster on this machine).
// No timed assertions: the numbers are for people to compare.
//
//	go test -run '^$' -bench 'CreateBolt|RawBatchBolt' ./secretstore/kvstore/
//	go test -run '^$' -bench 'CreateEtcd' ./secretstore/kvstore/

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

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/groupcommit"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

// benchValue is the size of the values created: a typical API key or a
// small JSON credential.
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

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// benchCreates creates b.N secrets through a Service over the records in
// s, over g goroutines: validation, sealing with a fresh data key, and one
// durable Apply of the secret if its folded name is absent, with its audit
// event (secret.create) into the outbox. audit=off drops the event
// (kvstore.DiscardEvents, a benchmark-only switch), so that one run shows
// what auditing costs.
func benchCreates(b *testing.B, s kv.Store, audit bool, g int) {
	kr, err := keyring.Generate()
	if err != nil {
		b.Fatal(err)
	}
	store, err := kvstore.Open(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if !audit {
		kvstore.DiscardEvents(store)
	}
	p := &auth.Principal{Kind: auth.KindUser, Name: "users/bench", ID: "bench", Teams: map[string]auth.Role{"bench": auth.RoleAdmin}}
	svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr})
	b.SetBytes(int64(len(benchValue)))
	runPool(b, g, func(i int64) error {
		_, err := svc.Create(context.Background(), p, secretstore.CreateRequest{
			Parent: "teams/bench", SecretID: fmt.Sprintf("SECRET_%09d", i), Value: benchValue, Description: "benchmark secret",
		})
		return err
	})
	if n, err := store.Outbox().(outbox.Counter).Backlog(context.Background()); err != nil || (audit && n != b.N) || (!audit && n != 0) {
		b.Fatalf("outbox after %d creates (audit %s): %d events, %v", b.N, onOff(audit), n, err)
	}
}

// BenchmarkCreateBolt: creates on a bbolt file (boltkv: concurrent Applies
// share a transaction and its fsync).
func BenchmarkCreateBolt(b *testing.B) {
	for _, audit := range []bool{true, false} {
		for _, g := range benchConcurrency {
			b.Run(fmt.Sprintf("audit=%s/goroutines=%d", onOff(audit), g), func(b *testing.B) {
				s, _, err := kvstore.OpenBoltKV(filepath.Join(b.TempDir(), "bench.db"), time.Second)
				if err != nil {
					b.Fatal(err)
				}
				benchCreates(b, s, audit, g)
			})
		}
	}
}

// BenchmarkRawBatchBolt is the baseline of BenchmarkCreateBolt: raw bbolt
// puts of records of the size it writes, with the same key shape, through
// the group commit boltkv's writes use.
func BenchmarkRawBatchBolt(b *testing.B) {
	kr, err := keyring.Generate()
	if err != nil {
		b.Fatal(err)
	}
	env, err := kr.Seal(benchValue, secretstore.ValueAD(secretstore.Team("bench"), "SECRET_000000000", 1))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	rec, err := kvstore.Encode(&secretstore.Secret{
		Owner: secretstore.Team("bench"), Name: "SECRET_000000000", Description: "benchmark secret", ValueVersion: 1,
		CreateTime: now, UpdateTime: now, ValueUpdateTime: now,
		CreateBy: "users/bench", UpdateBy: "users/bench", Etag: "0123456789abcdef", Value: env,
	})
	if err != nil {
		b.Fatal(err)
	}
	bucket := []byte("records")
	for _, g := range benchConcurrency {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
				b.Fatal(err)
			}
			commit := groupcommit.New(db)
			b.SetBytes(int64(len(benchValue)))
			runPool(b, g, func(i int64) error {
				k := fmt.Appendf(nil, "secrets/teams/bench\x00SECRET_%09d", i)
				return commit.Do(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k, rec) })
			})
		})
	}
}

// BenchmarkCreateEtcd: the same creates on embedded etcd (etcdkv: one
// transaction per Apply, concurrent ones sharing transactions), each run
// in a namespace of its own.
func BenchmarkCreateEtcd(b *testing.B) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			cluster := etcdtest.StartCluster(b, members)
			cli := cluster.Client(b)
			for _, audit := range []bool{true, false} {
				for _, g := range benchConcurrency {
					b.Run(fmt.Sprintf("audit=%s/goroutines=%d", onOff(audit), g), func(b *testing.B) {
						s, err := etcdkv.New(context.Background(), cli, etcdtest.Prefix())
						if err != nil {
							b.Fatal(err)
						}
						benchCreates(b, s, audit, g)
					})
				}
			}
		})
	}
}

// BenchmarkListBolt: a listing of 1,000 secrets of a team, stored as
// protobuf records (what the secretstore writes) and as JSON (what it
// wrote before, still read): the same-run baseline of the records' format.
//
//	go test -run '^$' -bench 'ListBolt' ./secretstore/kvstore/
func BenchmarkListBolt(b *testing.B) {
	const n = 1000
	for _, format := range []string{"protobuf", "json"} {
		b.Run("records="+format, func(b *testing.B) {
			raw, err := boltkv.Open(filepath.Join(b.TempDir(), "bench.db"), time.Second)
			if err != nil {
				b.Fatal(err)
			}
			s, err := kvstore.Open(context.Background(), raw)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			owner := secretstore.Team("bench")
			var writes []kv.Write
			for i := range n {
				sec := storetest.NewSecret(owner, fmt.Sprintf("SECRET_%04d", i))
				sec.Value.Ciphertext = bytes.Repeat([]byte{byte(i)}, 64)
				enc := kvstore.Encode
				if format == "json" {
					enc = kvstore.EncodeJSON
				}
				v, err := enc(sec)
				if err != nil {
					b.Fatal(err)
				}
				writes = append(writes, kv.Put(kvstore.SecretKey(owner, sec.Name), v))
			}
			if err := raw.Apply(context.Background(), nil, writes); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				got, err := s.List(context.Background(), owner, "", n)
				if err != nil || len(got) != n {
					b.Fatalf("List: %d, %v", len(got), err)
				}
			}
		})
	}
}
