package etcdstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/boltstore"
	"github.com/ozsecrets/oz/services/audit/etcdstore"
	"github.com/ozsecrets/oz/services/audit/storetest"
)

var ctx = context.Background()

var now = time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC)

func newStore(t testing.TB, cli *clientv3.Client, ns string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(ctx, cli, ns)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestEtcd runs every test of the package against one embedded etcd, each
// store under its own namespace.
func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	open := func(t *testing.T) *etcdstore.Store { return newStore(t, cli, etcdtest.Prefix()) }
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) audit.Store { return open(t) })
	})
	t.Run("ReplicasDoNotFork", func(t *testing.T) { testReplicas(t, srv) })
	t.Run("LargeAppendIsSplit", func(t *testing.T) { testLargeAppend(t, open(t)) })
	t.Run("LargeEventsAreSplit", func(t *testing.T) { testLargeEvents(t, open(t)) })
	t.Run("StaleHeadIsRelinked", func(t *testing.T) { testStaleHead(t, cli) })
	t.Run("LayoutMirrorsBolt", func(t *testing.T) { testLayout(t, cli) })
	t.Run("Schema", func(t *testing.T) { testSchema(t, cli) })
	t.Run("Close", func(t *testing.T) { testClose(t, srv) })
}

// testReplicas: two stores ("replicas") on one namespace, each with its
// own client, append from several goroutines at once events that only one
// goroutine sends and events that every goroutine sends, in different
// orders. Each team's chain verifies, unforked, each id is stored exactly
// once, and the calls' counts add up.
func testReplicas(t *testing.T, srv *etcdtest.Cluster) {
	ns := etcdtest.Prefix()
	replicas := []*etcdstore.Store{newStore(t, srv.Client(t), ns), newStore(t, srv.Client(t), ns)}
	teams := []string{"acme", "beta", ""}
	const (
		perReplica = 4
		rounds     = 12
		shared     = 60 // events every goroutine sends: ids 0..59
	)
	sharedEvent := func(i int) *auditv1.Event { return storetest.NewEvent(teams[i%len(teams)], i) }
	var appended, duplicates, sent atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 2*perReplica)
	for r, s := range replicas {
		for g := range perReplica {
			w := r*perReplica + g
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range rounds {
					var batch []*auditv1.Event
					for k := range 5 {
						// Every goroutine walks the shared events from its
						// own offset, so that they race for the same ids.
						batch = append(batch, sharedEvent((w*17+round*5+k)%shared))
					}
					for k := range 3 {
						i := 1000 + w*100 + round*3 + k
						batch = append(batch, storetest.NewEvent(teams[(w+k)%len(teams)], i))
					}
					res, err := s.Append(ctx, batch, now)
					if err != nil {
						errc <- err
						return
					}
					appended.Add(int64(res.Appended))
					duplicates.Add(int64(res.Duplicates))
					sent.Add(int64(len(batch)))
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("Append: %v", err)
	}
	// The goroutines sent (offsets aside) every shared id at least once?
	want := map[string]bool{}
	for w := range 2 * perReplica {
		for round := range rounds {
			for k := range 5 {
				want[sharedEvent((w*17+round*5+k)%shared).GetId()] = true
			}
			for k := range 3 {
				want[storetest.NewEvent("", 1000+w*100+round*3+k).GetId()] = true
			}
		}
	}
	if got := appended.Load(); got != int64(len(want)) {
		t.Errorf("Appended summed over calls: got %d, want %d distinct ids", got, len(want))
	}
	if got := appended.Load() + duplicates.Load(); got != sent.Load() {
		t.Errorf("Appended + Duplicates: got %d, want the %d events sent", got, sent.Load())
	}
	seen := map[string]string{}
	for _, team := range teams {
		for _, s := range replicas { // the same chain through either replica
			for _, ev := range storetest.Verify(t, s, team) {
				if ev.GetTeam() != team {
					t.Fatalf("chain %q holds an event of %q", team, ev.GetTeam())
				}
				if s != replicas[0] {
					continue
				}
				if other, ok := seen[ev.GetId()]; ok {
					t.Fatalf("event %s stored twice (chains %q and %q)", ev.GetId(), other, team)
				}
				seen[ev.GetId()] = team
			}
		}
	}
	if len(seen) != len(want) {
		t.Errorf("got %d events in the chains, want %d", len(seen), len(want))
	}
	for id := range want {
		if _, ok := seen[id]; !ok {
			t.Errorf("event %s is missing", id)
		}
	}
}

// testLargeAppend: one Append of audit.MaxBatch events over many chains,
// far more than one etcd transaction takes, stores every event, in order.
func testLargeAppend(t *testing.T, s audit.Store) {
	var batch []*auditv1.Event
	per := map[string][]string{}
	for i := range audit.MaxBatch {
		team := fmt.Sprintf("team-%02d", i%50)
		ev := storetest.NewEvent(team, i)
		batch = append(batch, ev)
		per[team] = append(per[team], ev.GetId())
	}
	batch = append(batch, batch[3]) // a repeat, in a later transaction
	res, err := s.Append(ctx, batch, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Appended != audit.MaxBatch || res.Duplicates != 1 {
		t.Errorf("got %+v, want %d appended, 1 duplicate", res, audit.MaxBatch)
	}
	for team, want := range per {
		var got []string
		for _, ev := range storetest.Verify(t, s, team) {
			got = append(got, ev.GetId())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("chain %s: got %v, want %v", team, got, want)
		}
	}
	// Again: every one a duplicate.
	if res, err := s.Append(ctx, batch, now); err != nil || res.Appended != 0 || res.Duplicates != len(batch) {
		t.Errorf("again: got %+v, %v; want %d duplicates", res, err, len(batch))
	}
}

// testLargeEvents: events whose sizes add up past etcd's request limit go
// in several transactions.
func testLargeEvents(t *testing.T, s audit.Store) {
	var batch []*auditv1.Event
	for i := range 40 {
		ev := storetest.NewEvent("acme", i)
		ev.Details["big"] = strings.Repeat("x", audit.MaxEventBytes-2048)
		batch = append(batch, ev)
	}
	res, err := s.Append(ctx, batch, now)
	if err != nil || res.Appended != len(batch) {
		t.Fatalf("got %+v, %v; want %d appended", res, err, len(batch))
	}
	if all := storetest.Verify(t, s, "acme"); len(all) != len(batch) {
		t.Errorf("got %d events, want %d", len(all), len(batch))
	}
}

// testStaleHead: a replica whose remembered head another replica has moved
// since links its next events after the other's.
func testStaleHead(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	a, b := newStore(t, cli, ns), newStore(t, cli, ns)
	for i := range 6 {
		s := a
		if i%3 == 2 {
			s = b
		}
		if res, err := s.Append(ctx, []*auditv1.Event{storetest.NewEvent("acme", 2*i), storetest.NewEvent("acme", 2*i+1)}, now); err != nil || res.Appended != 2 {
			t.Fatalf("append %d: got %+v, %v", i, res, err)
		}
	}
	if all := storetest.Verify(t, a, "acme"); len(all) != 12 {
		t.Errorf("got %d events, want 12", len(all))
	}
}

// testLayout: the same appends to the bbolt store and to etcd leave, bucket
// for bucket, the same keys and values: bucket B, key K is <ns>B/K.
func testLayout(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	es := newStore(t, cli, ns)
	path := filepath.Join(t.TempDir(), "audit.db")
	bs, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	batches := [][]*auditv1.Event{
		{storetest.NewEvent("acme", 1), storetest.NewEvent("", 2), storetest.NewEvent("acme-2", 3)},
		{storetest.NewEvent("acme", 4), storetest.NewEvent("acme", 1), storetest.NewEvent("beta", 5)},
	}
	for _, batch := range batches {
		for _, s := range []audit.Store{bs, es} {
			if _, err := s.Append(ctx, batch, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	bs.Close()

	want := map[string]string{}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				want[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, ns, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key[len(ns):])] = string(kv.Value)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("key %q: in bbolt, not in etcd", k)
		} else if g != v {
			t.Errorf("key %q: etcd holds %x, bbolt %x", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q: in etcd, not in bbolt", k)
		}
	}
	if len(want) != 5*2+4+1 { // 5 events and ids, 4 heads, the schema
		t.Errorf("bbolt holds %d keys, want 15", len(want))
	}
	if got["meta/schema"] != "1" {
		t.Errorf("meta/schema: got %q, want \"1\"", got["meta/schema"])
	}
}

// testSchema: a namespace with another schema version is refused, and a
// bad namespace too.
func testSchema(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	if _, err := cli.Put(ctx, ns+"meta/schema", "99"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdstore.New(ctx, cli, ns); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("New: got %v, want a schema version error", err)
	}
	for _, bad := range []string{"", "/oz/audit"} {
		if _, err := etcdstore.New(ctx, cli, bad); err == nil || !strings.Contains(err.Error(), `end with "/"`) {
			t.Errorf("New(%q): got %v, want an error naming the rule", bad, err)
		}
	}
}

// testClose: a store made by Open closes its client; calls after Close
// fail.
func testClose(t *testing.T, srv *etcdtest.Cluster) {
	s, err := etcdstore.Open(ctx, srv.Config(), etcdtest.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*auditv1.Event{storetest.NewEvent("acme", 1)}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Head(ctx, "acme"); err == nil {
		t.Errorf("Head after Close: got nil error")
	}
	if _, err := s.Append(ctx, []*auditv1.Event{storetest.NewEvent("acme", 2)}, now); err == nil {
		t.Errorf("Append after Close: got nil error")
	}
}

// BenchmarkAppend appends batches of 16 events (over 4 chains) from 1 and
// 8 goroutines, to the bbolt store and to etcd of 1 and 3 members.
//
//	go test -run '^$' -bench Append ./audit/etcdstore
func BenchmarkAppend(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) audit.Store
	}{
		{"bolt", func(b *testing.B) audit.Store {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "audit.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"etcd1", func(b *testing.B) audit.Store {
			return newStore(b, etcdtest.Start(b).Client(b), etcdstore.Namespace)
		}},
		{"etcd3", func(b *testing.B) audit.Store {
			return newStore(b, etcdtest.StartCluster(b, 3).Client(b), etcdstore.Namespace)
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			for _, workers := range []int{1, 8} {
				b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) { benchAppend(b, s, workers) })
			}
		})
	}
}

var benchIDs atomic.Int64

func benchAppend(b *testing.B, s audit.Store, workers int) {
	const batchSize = 16
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
					batch[i] = storetest.NewEvent(teams[i%len(teams)], int(benchIDs.Add(1)))
				}
				if _, err := s.Append(ctx, batch, time.Now()); err != nil {
					errc <- err
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
