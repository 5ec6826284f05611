package etcdkv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// TestSharedTransactions: concurrent Applies share transactions, and each
// still gets its own answer: those whose conditions hold are made, with
// their values, and those whose conditions fail get a *ConflictError
// naming the condition, even when they were queued with the others.
func TestSharedTransactions(t *testing.T) {
	c := etcdtest.Start(t)
	s, err := New(context.Background(), c.Client(t), Namespace)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("taken", []byte("x"))}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 64, 20
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("k/%02d/%02d", g, i)
				cond := kv.Absent(k)
				if (g+i)%4 == 0 { // refused: "taken" is there
					cond = kv.Absent("taken")
				}
				err := s.Apply(ctx, []kv.Cond{kv.Present("taken"), cond}, []kv.Write{kv.Put(k, []byte(k))})
				var ce *kv.ConflictError
				switch {
				case (g+i)%4 == 0 && (!errors.As(err, &ce) || ce.Index != 1 || ce.Cond.Key != "taken"):
					t.Errorf("%s: Apply = %v, want a *ConflictError on condition 1 (taken)", k, err)
				case (g+i)%4 != 0 && err != nil:
					t.Errorf("%s: Apply = %v", k, err)
				}
			}
		})
	}
	wg.Wait()
	kvs, err := s.Scan(ctx, "k/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	for g := range workers {
		for i := range each {
			k := fmt.Sprintf("k/%02d/%02d", g, i)
			if want := (g+i)%4 != 0; (got[k] == k) != want {
				t.Errorf("%s stored: %q, want stored %v", k, got[k], want)
			}
		}
	}
	if len(got) != workers*each*3/4 {
		t.Errorf("%d keys stored, want %d", len(got), workers*each*3/4)
	}
	if n := s.batch.sharedTxns.Load(); n == 0 {
		t.Errorf("no shared transaction in %d concurrent Applies", workers*each)
	} else {
		t.Logf("%d Applies, %d shared transactions", workers*each, n)
	}
}

// TestDisjoint: Applies share a transaction only when neither writes what
// the other writes or reads.
func TestDisjoint(t *testing.T) {
	mk := func(writes, conds []string, ranges ...[2]string) *txn {
		return &txn{writeKeys: writes, condKeys: conds, condRanges: ranges}
	}
	set := func(ks ...string) map[string]bool {
		m := map[string]bool{}
		for _, k := range ks {
			m[k] = true
		}
		return m
	}
	tests := []struct {
		name          string
		t             *txn
		writes, conds map[string]bool
		ranges        [][2]string
		want          bool
	}{
		{"disjoint", mk([]string{"a"}, []string{"b"}), set("c"), set("d"), nil, true},
		{"same write", mk([]string{"a"}, nil), set("a"), nil, nil, false},
		{"writes what the batch reads", mk([]string{"a"}, nil), nil, set("a"), nil, false},
		{"writes into a range the batch reads", mk([]string{"r/5"}, nil), nil, nil, [][2]string{{"r/", "r0"}}, false},
		{"reads what the batch writes", mk(nil, []string{"a"}), set("a"), nil, nil, false},
		{"reads a range the batch writes into", mk(nil, nil, [2]string{"r/", "r0"}), set("r/5"), nil, nil, false},
		{"both read the same", mk([]string{"x"}, []string{"a"}, [2]string{"r/", "r0"}), set("y"), set("a"), [][2]string{{"r/", "r0"}}, true},
		{"write just past a range", mk([]string{"r0"}, nil), nil, nil, [][2]string{{"r/", "r0"}}, true},
	}
	for _, tt := range tests {
		if got := disjoint(tt.t, tt.writes, tt.conds, tt.ranges); got != tt.want {
			t.Errorf("%s: disjoint = %v, want %v", tt.name, got, tt.want)
		}
	}
}
