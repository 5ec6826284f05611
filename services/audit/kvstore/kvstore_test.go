package kvstore_test

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
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/audit/storetest"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
)

var ctx = context.Background()

var now = time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC)

// openBoltKV opens a new bbolt file as a kv.Store; cleanup closes it and
// runs bbolt's consistency check over the file.
func openBoltKV(t testing.TB, path string) kv.Store {
	t.Helper()
	s, _, err := kvstore.OpenBoltKV(path, 0)
	if err != nil {
		t.Fatalf("OpenBoltKV: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		checkBolt(t, path)
	})
	return s
}

// checkBolt runs bbolt's consistency check over the file at path.
func checkBolt(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("consistency check: %v", err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Errorf("consistency check: %v", err)
	}
}

func newStore(t testing.TB, s kv.Store, opts kvstore.Options) *kvstore.Store {
	t.Helper()
	st, err := kvstore.New(ctx, s, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st
}

// openEtcdKV opens the audit log under namespace ns of cli as a kv.Store.
func openEtcdKV(t testing.TB, cli *clientv3.Client, ns string) kv.Store {
	t.Helper()
	s, err := kvstore.NewEtcdKV(ctx, cli, ns)
	if err != nil {
		t.Fatalf("NewEtcdKV: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The options the stores are tested with: bbolt's own (one Apply per
// Append), kv's portable ones (Applies of at most 128 conditions and
// writes), and a tiny bound that splits every Append.
var boltVariants = []struct {
	name string
	opts kvstore.Options
}{
	{"Bolt", kvstore.BoltOptions},
	{"BoltPortable", kvstore.Options{}},
	{"BoltTiny", kvstore.Options{MaxOps: 11, MaxBytes: 4 << 10}},
}

func TestBolt(t *testing.T) {
	for _, v := range boltVariants {
		t.Run(v.name, func(t *testing.T) {
			open := func(t *testing.T) *kvstore.Store {
				return newStore(t, openBoltKV(t, filepath.Join(t.TempDir(), "audit.db")), v.opts)
			}
			t.Run("Conformance", func(t *testing.T) {
				storetest.Run(t, func(t *testing.T) audit.Store { return open(t) })
			})
			t.Run("WritersDoNotFork", func(t *testing.T) {
				testWriters(t, func(t *testing.T) (audit.Store, audit.Store) {
					s := openBoltKV(t, filepath.Join(t.TempDir(), "audit.db"))
					return newStore(t, s, v.opts), newStore(t, s, v.opts)
				})
			})
			t.Run("StaleHeadIsRelinked", func(t *testing.T) {
				s := openBoltKV(t, filepath.Join(t.TempDir(), "audit.db"))
				testStaleHead(t, newStore(t, s, v.opts), newStore(t, s, v.opts))
			})
		})
	}
	t.Run("ReopenKeepsChains", testReopen)
	t.Run("OpenLocked", testOpenLocked)
	t.Run("Layout", func(t *testing.T) {
		s := openBoltKV(t, filepath.Join(t.TempDir(), "audit.db"))
		testLayout(t, s, newStore(t, s, kvstore.BoltOptions))
	})
	t.Run("RefusesOtherStores", testRefuses)
}

// TestEtcd runs the tests against one embedded etcd, each store under its
// own namespace.
func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	open := func(t *testing.T) *kvstore.Store {
		return newStore(t, openEtcdKV(t, cli, etcdtest.Prefix()), kvstore.Options{})
	}
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) audit.Store { return open(t) })
	})
	t.Run("ReplicasDoNotFork", func(t *testing.T) {
		// Two replicas, each with its own client.
		testWriters(t, func(t *testing.T) (audit.Store, audit.Store) {
			ns := etcdtest.Prefix()
			return newStore(t, openEtcdKV(t, srv.Client(t), ns), kvstore.Options{}),
				newStore(t, openEtcdKV(t, srv.Client(t), ns), kvstore.Options{})
		})
	})
	t.Run("StaleHeadIsRelinked", func(t *testing.T) {
		ns := etcdtest.Prefix()
		testStaleHead(t, newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{}), newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{}))
	})
	t.Run("Layout", func(t *testing.T) {
		s := openEtcdKV(t, cli, etcdtest.Prefix())
		testLayout(t, s, newStore(t, s, kvstore.Options{}))
	})
	t.Run("Close", func(t *testing.T) {
		s, err := kvstore.OpenEtcdKV(ctx, srv.Config(), etcdtest.Prefix())
		if err != nil {
			t.Fatal(err)
		}
		st := newStore(t, s, kvstore.Options{})
		if _, err := st.Append(ctx, []*auditv1.Event{storetest.NewEvent("acme", 1)}, now); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := st.Head(ctx, "acme"); err == nil {
			t.Errorf("Head after Close: got nil error")
		}
		if _, err := st.Append(ctx, []*auditv1.Event{storetest.NewEvent("acme", 2)}, now); err == nil {
			t.Errorf("Append after Close: got nil error")
		}
	})
	t.Run("BadNamespace", func(t *testing.T) {
		for _, bad := range []string{"", "/oz/audit"} {
			if _, err := kvstore.NewEtcdKV(ctx, cli, bad); err == nil || !strings.Contains(err.Error(), `end with "/"`) {
				t.Errorf("NewEtcdKV(%q): got %v, want an error naming the rule", bad, err)
			}
		}
	})
}

// testWriters: two Stores on one kv.Store (two replicas on one etcd), with
// several goroutines each, append at once events that only one goroutine
// sends and events that every goroutine sends, in different orders, in
// small batches (one Apply each) and in large ones (several Applies, ids
// looked up before). Each team's chain verifies, unforked, each id is
// stored exactly once, and the calls' counts add up.
func testWriters(t *testing.T, open func(t *testing.T) (a, b audit.Store)) {
	for _, tc := range []struct {
		name        string
		shared, own int // events every goroutine sends, and of one goroutine, per batch
		rounds      int
	}{
		{"SmallBatches", 5, 3, 12},
		{"LargeBatches", 50, 40, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			testWritersBatches(t, []audit.Store{a, b}, tc.shared, tc.own, tc.rounds)
		})
	}
}

func testWritersBatches(t *testing.T, replicas []audit.Store, sharedPerBatch, ownPerBatch, rounds int) {
	teams := []string{"acme", "beta", ""}
	const perReplica = 4
	shared := 12 * sharedPerBatch // events every goroutine sends: ids 0..shared-1
	// A shared event's team depends on who sends it: the same id comes for
	// different chains, which only the id's uniqueness keeps out of both.
	sharedEvent := func(w, i int) *auditv1.Event { return storetest.NewEvent(teams[(i+w)%len(teams)], i) }
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
					for k := range sharedPerBatch {
						// Every goroutine walks the shared events from its
						// own offset, so that they race for the same ids.
						batch = append(batch, sharedEvent(w, (w*17+round*sharedPerBatch+k)%shared))
					}
					for k := range ownPerBatch {
						i := 100000 + w*1000 + round*ownPerBatch + k
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
	want := map[string]bool{}
	for w := range 2 * perReplica {
		for round := range rounds {
			for k := range sharedPerBatch {
				want[sharedEvent(w, (w*17+round*sharedPerBatch+k)%shared).GetId()] = true
			}
			for k := range ownPerBatch {
				want[storetest.NewEvent("", 100000+w*1000+round*ownPerBatch+k).GetId()] = true
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

// testStaleHead: a writer whose remembered head another writer has moved
// since links its next events after the other's.
func testStaleHead(t *testing.T, a, b audit.Store) {
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

// testLayout: the keys an append writes are the documented ones.
func testLayout(t *testing.T, s kv.Store, st *kvstore.Store) {
	batch := []*auditv1.Event{storetest.NewEvent("acme", 1), storetest.NewEvent("", 2), storetest.NewEvent("acme", 3)}
	if _, err := st.Append(ctx, batch, now); err != nil {
		t.Fatal(err)
	}
	kvs, err := s.Scan(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	values := map[string]string{}
	for _, e := range kvs {
		keys = append(keys, e.Key)
		values[e.Key] = string(e.Value)
	}
	want := []string{
		"events/system/00000000000000000001",
		"events/teams/acme/00000000000000000001",
		"events/teams/acme/00000000000000000002",
		"heads/system",
		"heads/teams/acme",
		"ids/" + batch[0].GetId(),
		"ids/" + batch[1].GetId(),
		"ids/" + batch[2].GetId(),
		"meta/layout",
	}
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	if got := values["ids/"+batch[2].GetId()]; got != "teams/acme/2" {
		t.Errorf("id of the third event: got %q, want where its event is", got)
	}
	if got := values["meta/layout"]; got != "audit/2" {
		t.Errorf("meta/layout: got %q, want audit/2", got)
	}
	if got := len(values["heads/teams/acme"]); got != 40 {
		t.Errorf("head of acme: %d bytes, want 40 (seq, hash)", got)
	}
}

func testReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, _, err := kvstore.OpenBoltKV(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := []*auditv1.Event{storetest.NewEvent("acme", 1), storetest.NewEvent("acme", 2)}
	if _, err := newStore(t, s, kvstore.BoltOptions).Append(ctx, first, now); err != nil {
		t.Fatal(err)
	}
	s.Close()

	st := newStore(t, openBoltKV(t, path), kvstore.BoltOptions)
	res, err := st.Append(ctx, []*auditv1.Event{first[1], storetest.NewEvent("acme", 3)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Appended != 1 || res.Duplicates != 1 {
		t.Errorf("after reopen: got %+v, want 1 appended, 1 duplicate", res)
	}
	if all := storetest.Verify(t, st, "acme"); len(all) != 3 {
		t.Errorf("got %d events, want 3", len(all))
	}
}

func testOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	openBoltKV(t, path)
	_, _, err := kvstore.OpenBoltKV(path, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open of a locked file: got %v, want an error naming the file and the lock", err)
	}
}

// testRefuses: New refuses a store with records that are not an audit
// log, or an audit log of another layout.
func testRefuses(t *testing.T) {
	for name, write := range map[string]kv.Write{
		"Foreign":     kv.Put("teams/acme", []byte(`{"id":"acme"}`)),
		"OtherLayout": kv.Put("meta/layout", []byte("audit/3")),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			s, err := boltkv.Open(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Apply(ctx, nil, []kv.Write{write}); err != nil {
				t.Fatal(err)
			}
			_, err = kvstore.New(ctx, s, kvstore.BoltOptions)
			if err == nil || !strings.Contains(err.Error(), "layout") {
				t.Errorf("New: got %v, want a refusal naming the layout", err)
			}
			if kvs, _ := s.Scan(ctx, "", "", 0); len(kvs) != 1 {
				t.Errorf("New wrote to the store it refused: %d records", len(kvs))
			}
		})
	}
	if _, err := kvstore.New(ctx, openBoltKV(t, filepath.Join(t.TempDir(), "a.db")), kvstore.Options{MaxOps: 4}); err == nil {
		t.Errorf("New with MaxOps 4: got nil, want an error")
	}
}

// BenchmarkAppend appends batches of 1, 100 and 1,000 events from one and
// four goroutines, to a bbolt file and to etcd of one and three members
// (storetest.Bench):
//
//	go test -run '^$' -bench Append ./audit/kvstore
func BenchmarkAppend(b *testing.B) {
	b.Run("bolt", func(b *testing.B) {
		storetest.Bench(b, func(b *testing.B) audit.Store {
			return newStore(b, openBoltKV(b, filepath.Join(b.TempDir(), "audit.db")), kvstore.BoltOptions)
		})
	})
	b.Run("etcd1", func(b *testing.B) {
		storetest.Bench(b, func(b *testing.B) audit.Store {
			return newStore(b, openEtcdKV(b, etcdtest.Start(b).Client(b), kvstore.Namespace), kvstore.Options{})
		})
	})
	b.Run("etcd3", func(b *testing.B) {
		storetest.Bench(b, func(b *testing.B) audit.Store {
			return newStore(b, openEtcdKV(b, etcdtest.StartCluster(b, 3).Client(b), kvstore.Namespace), kvstore.Options{})
		})
	})
}

// TestListAcrossGaps: List reads a chain downwards from its head in windows
// of seqs; events removed from the chain (what VerifyChain reports) are
// skipped, and paging still ends.
func TestListAcrossGaps(t *testing.T) {
	s := openBoltKV(t, filepath.Join(t.TempDir(), "audit.db"))
	st := newStore(t, s, kvstore.BoltOptions)
	var batch []*auditv1.Event
	for i := range 60 {
		batch = append(batch, storetest.NewEvent("acme", i))
	}
	if _, err := st.Append(ctx, batch, now); err != nil {
		t.Fatal(err)
	}
	var removed []kv.Write
	for _, seq := range []int{60, 59, 30, 31, 32, 1} { // the end, the middle, the first
		removed = append(removed, kv.Delete(fmt.Sprintf("events/teams/acme/%020d", seq)))
	}
	if err := s.Apply(ctx, nil, removed); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 7, 100} {
		var got []int64
		q := audit.Query{Team: "acme", Limit: limit, ScanLimit: 1000}
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, err := st.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				got = append(got, ev.GetSeq())
			}
			if page.NextBeforeSeq == 0 {
				break
			}
			q.BeforeSeq = page.NextBeforeSeq
		}
		var want []int64
		for seq := int64(58); seq >= 2; seq-- {
			if seq < 30 || seq > 32 {
				want = append(want, seq)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %v, want %v", limit, got, want)
		}
	}
}
