package etcdkv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/kv/kvtest"
)

var ctx = context.Background()

// TestEtcd runs every test of the package against one embedded etcd, each
// store under its own namespace.
func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	open := func(t *testing.T) *etcdkv.Store {
		t.Helper()
		s, err := etcdkv.New(ctx, cli, etcdtest.Prefix())
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
	t.Run("Conformance", func(t *testing.T) {
		kvtest.Run(t, func(t *testing.T) kv.Store { return open(t) })
	})
	t.Run("ConcurrentCreateRace", func(t *testing.T) { testCreateRace(t, open(t)) })
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, open(t)) })
	t.Run("ConflictAfterDuplicateConds", func(t *testing.T) { testDuplicateConds(t, open(t)) })
	t.Run("MaxOps", func(t *testing.T) { testMaxOps(t, open(t)) })
	t.Run("ScanPages", func(t *testing.T) { testScanPages(t, open(t)) })
	t.Run("Namespace", func(t *testing.T) { testNamespace(t, cli) })
	t.Run("Schema", func(t *testing.T) { testSchema(t, cli) })
	t.Run("Close", func(t *testing.T) { testClose(t, srv) })
	t.Run("Unreachable", testUnreachable)
}

// testCreateRace: rounds of two writers creating one key under IfAbsent
// at once; in every round exactly one wins, and the loser's other write is
// not made.
func testCreateRace(t *testing.T, s kv.Store) {
	for round := range 20 {
		key := fmt.Sprintf("race/%d", round)
		var wg sync.WaitGroup
		errc := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errc[w] = s.Apply(ctx, []kv.Cond{kv.Absent(key)}, []kv.Write{
					kv.Put(key, []byte(strconv.Itoa(w))),
					kv.Put(fmt.Sprintf("%s/by/%d", key, w), []byte("x")),
				})
			}()
		}
		wg.Wait()
		winner := -1
		for w, err := range errc {
			var ce *kv.ConflictError
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: both writers created %s", round, key)
				}
				winner = w
			case !errors.As(err, &ce) || ce.Index != 0:
				t.Fatalf("round %d, writer %d: got %v, want a *ConflictError on condition 0", round, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer created %s", round, key)
		}
		got, err := s.Get(ctx, key)
		if err != nil || string(got) != strconv.Itoa(winner) {
			t.Errorf("round %d: %s holds %q (%v), want the winner %d", round, key, got, err, winner)
		}
		kvs, err := s.Scan(ctx, key+"/by/", "", 0)
		if err != nil || len(kvs) != 1 || kvs[0].Key != fmt.Sprintf("%s/by/%d", key, winner) {
			t.Errorf("round %d: writes of the writers: got %v (%v), want only the winner's", round, kvs, err)
		}
	}
}

// testAllOrNothing: an Apply whose last condition fails makes none of its
// writes, puts and deletes alike; the same Apply with the condition
// holding makes all of them.
func testAllOrNothing(t *testing.T, s kv.Store) {
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("all/keep", []byte("1")), kv.Put("all/gate", []byte("closed"))}); err != nil {
		t.Fatal(err)
	}
	var writes []kv.Write
	for i := range 100 {
		writes = append(writes, kv.Put(fmt.Sprintf("all/%03d", i), []byte("v")))
	}
	writes = append(writes, kv.Delete("all/keep"))
	conds := []kv.Cond{kv.Present("all/keep"), kv.Absent("all/000"), kv.Equal("all/gate", []byte("open"))}
	err := s.Apply(ctx, conds, writes)
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.Index != 2 {
		t.Fatalf("Apply: got %v, want a *ConflictError on condition 2", err)
	}
	if kvs, err := s.Scan(ctx, "all/", "", 0); err != nil || len(kvs) != 2 {
		t.Fatalf("after a failed Apply: got %d entries (%v), want the 2 from before", len(kvs), err)
	}

	conds[2] = kv.Equal("all/gate", []byte("closed"))
	if err := s.Apply(ctx, conds, writes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	kvs, err := s.Scan(ctx, "all/", "", 0)
	if err != nil || len(kvs) != 101 { // 100 new, the gate; keep deleted
		t.Fatalf("after Apply: got %d entries (%v), want 101", len(kvs), err)
	}
	if _, err := s.Get(ctx, "all/keep"); !errors.Is(err, errs.NotFound) {
		t.Errorf("all/keep: got %v, want NotFound", err)
	}
}

// testDuplicateConds: conditions on one key, read once by the Else branch,
// are each checked in order.
func testDuplicateConds(t *testing.T, s kv.Store) {
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("d/a", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	conds := []kv.Cond{
		kv.Present("d/a"), kv.Equal("d/a", []byte("1")), kv.Absent("d/b"),
		kv.Equal("d/a", []byte("2")), kv.Present("d/b"),
	}
	err := s.Apply(ctx, conds, []kv.Write{kv.Put("d/b", []byte("x"))})
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.Index != 3 {
		t.Fatalf("Apply: got %v, want a *ConflictError on condition 3", err)
	}
}

// testMaxOps: 128 conditions and writes together go in one transaction;
// more are refused, writing nothing.
func testMaxOps(t *testing.T, s kv.Store) {
	var conds []kv.Cond
	var writes []kv.Write
	for i := range etcdkv.MaxOps / 2 {
		conds = append(conds, kv.Absent(fmt.Sprintf("max/%03d", i)))
		writes = append(writes, kv.Put(fmt.Sprintf("max/%03d", i), []byte("v")))
	}
	if err := s.Apply(ctx, conds, writes); err != nil {
		t.Fatalf("Apply of %d: %v", etcdkv.MaxOps, err)
	}
	conds = append(conds, kv.Absent("max/over"))
	writes = append(writes, kv.Put("max/over", []byte("v")))
	err := s.Apply(ctx, conds[len(conds)-64:], writes)
	if err == nil || !strings.Contains(err.Error(), "more than 128") {
		t.Fatalf("Apply of too many: got %v, want an error naming the limit", err)
	}
	if _, err := s.Get(ctx, "max/over"); !errors.Is(err, errs.NotFound) {
		t.Errorf("max/over: got %v, want NotFound", err)
	}
}

// testScanPages: a Scan longer than one etcd range returns every entry,
// once, in order, and honours after and limit across pages.
func testScanPages(t *testing.T, s kv.Store) {
	const n = 1200
	for i := 0; i < n; i += 100 {
		var ws []kv.Write
		for j := i; j < i+100; j++ {
			ws = append(ws, kv.Put(fmt.Sprintf("p/%04d", j), []byte(strconv.Itoa(j))))
		}
		if err := s.Apply(ctx, nil, ws); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		after      string
		limit      int
		first, len int
	}{
		{"All", "", 0, 0, n},
		{"Limit", "", 700, 0, 700},
		{"AfterAndLimit", "p/0099", 600, 100, 600},
		{"AfterToEnd", "p/0099", 0, 100, n - 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kvs, err := s.Scan(ctx, "p/", tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(kvs) != tt.len {
				t.Fatalf("got %d entries, want %d", len(kvs), tt.len)
			}
			for i, kv := range kvs {
				if want := fmt.Sprintf("p/%04d", tt.first+i); kv.Key != want || string(kv.Value) != strconv.Itoa(tt.first+i) {
					t.Fatalf("entry %d: got %s=%s, want %s", i, kv.Key, kv.Value, want)
				}
			}
		})
	}
}

// testNamespace: two stores in one etcd see only their own keys, which
// live under their namespace.
func testNamespace(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	a, err := etcdkv.New(ctx, cli, ns+"a/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := etcdkv.New(ctx, cli, ns+"b/")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, nil, []kv.Write{kv.Put("teams/red", []byte("A"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "teams/red"); !errors.Is(err, errs.NotFound) {
		t.Errorf("other namespace, Get: got %v, want NotFound", err)
	}
	if kvs, err := b.Scan(ctx, "", "", 0); err != nil || len(kvs) != 0 {
		t.Errorf("other namespace, Scan: got %v, %v, want nothing", kvs, err)
	}
	resp, err := cli.Get(ctx, ns+"a/records/teams/red")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "A" {
		t.Errorf("raw etcd key: got %v, %v, want the record", resp, err)
	}
	for _, bad := range []string{"", "/oz/resolver"} {
		if _, err := etcdkv.New(ctx, cli, bad); err == nil || !strings.Contains(err.Error(), `end with "/"`) {
			t.Errorf("New(%q): got %v, want an error naming the rule", bad, err)
		}
	}
}

// testSchema: a namespace with another schema version is refused.
func testSchema(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	if _, err := cli.Put(ctx, ns+"meta/schema", "99"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdkv.New(ctx, cli, ns); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("New: got %v, want a schema version error", err)
	}
	if _, err := etcdkv.New(ctx, cli, etcdtest.Prefix()); err != nil {
		t.Errorf("New on a fresh namespace: %v", err)
	}
}

// testClose: a store made by Open closes its client; calls after Close
// fail.
func testClose(t *testing.T, srv *etcdtest.Cluster) {
	s, err := etcdkv.Open(ctx, srv.Config(), etcdtest.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("k", []byte("v"))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Errorf("Get after Close: got nil error")
	}
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("k", []byte("w"))}); err == nil {
		t.Errorf("Apply after Close: got nil error")
	}
}

// testUnreachable: Open fails, within its context, when no etcd answers.
func testUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	cfg := clientv3.Config{Endpoints: []string{"http://" + addr}, Logger: zap.NewNop()}
	start := time.Now()
	if s, err := etcdkv.Open(cctx, cfg, etcdkv.Namespace); err == nil {
		s.Close()
		t.Fatal("Open: got nil error, want one")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v, want it bounded by its context", d)
	}
}
