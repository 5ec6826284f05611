// Package kvtest is the conformance suite of kv.Store: every
// implementation (kv/boltkv, kv/etcdkv) runs Run from its tests and must
// pass it unchanged.
package kvtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/ozsecrets/oz/services/internal/suite"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Run exercises the Store contract on stores made by open. open returns a
// new, empty store and arranges (t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) kv.Store) {
	suite.Run(t, open,
		testGetMissing, testPutGetOverwriteDelete, testGetMany, testScanPrefixes, testScan, testConditions, testConflictIndex,
		testWritesInOrder, testInvalidWrites, testValuesAreCopies, testCancelledContext,
		testConcurrentCreate, testConcurrentCAS, testReadSetUnchanged,
	)
}

var ctx = context.Background()

func put(t *testing.T, s kv.Store, pairs ...string) {
	t.Helper()
	var ws []kv.Write
	for i := 0; i+1 < len(pairs); i += 2 {
		ws = append(ws, kv.Put(pairs[i], []byte(pairs[i+1])))
	}
	if err := s.Apply(ctx, nil, ws); err != nil {
		t.Fatalf("Apply(puts): %v", err)
	}
}

// value returns the value at key, "" when absent.
func value(t *testing.T, s kv.Store, key string) string {
	t.Helper()
	v, err := s.Get(ctx, key)
	if errors.Is(err, errs.NotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v)
}

func testGetMissing(t *testing.T, s kv.Store) {
	_, err := s.Get(ctx, "teams/nope")
	if !errors.Is(err, errs.NotFound) {
		t.Fatalf("Get(missing): got %v, want a NotFound error", err)
	}
}

func testPutGetOverwriteDelete(t *testing.T, s kv.Store) {
	put(t, s, "a/1", "one")
	if got := value(t, s, "a/1"); got != "one" {
		t.Fatalf("after put: got %q, want %q", got, "one")
	}
	put(t, s, "a/1", "uno")
	if got := value(t, s, "a/1"); got != "uno" {
		t.Fatalf("after overwrite: got %q, want %q", got, "uno")
	}
	if err := s.Apply(ctx, nil, []kv.Write{kv.Delete("a/1"), kv.Delete("a/never")}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := value(t, s, "a/1"); got != "" {
		t.Fatalf("after delete: got %q, want absent", got)
	}
}

func keysOf(kvs []kv.KV) []string {
	keys := []string{}
	for _, e := range kvs {
		keys = append(keys, e.Key)
	}
	return keys
}

func testScan(t *testing.T, s kv.Store) {
	put(t, s, "a/2", "2", "a/1", "1", "a/3", "3", "ab/1", "x", "a", "x", "b/1", "x", "a/10", "10")
	tests := []struct {
		name          string
		prefix, after string
		limit         int
		want          []string
	}{
		{"All", "a/", "", 0, []string{"a/1", "a/10", "a/2", "a/3"}},
		{"Limit", "a/", "", 2, []string{"a/1", "a/10"}},
		{"AfterExisting", "a/", "a/10", 0, []string{"a/2", "a/3"}},
		{"AfterMissing", "a/", "a/15", 0, []string{"a/2", "a/3"}},
		{"AfterAndLimit", "a/", "a/1", 1, []string{"a/10"}},
		{"AfterLast", "a/", "a/3", 0, []string{}},
		{"AfterBeforePrefix", "a/", "a", 0, []string{"a/1", "a/10", "a/2", "a/3"}},
		{"NoMatch", "c/", "", 0, []string{}},
		{"OtherPrefix", "b/", "", 0, []string{"b/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kvs, err := s.Scan(ctx, tt.prefix, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if got := keysOf(kvs); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q, %q, %d): got %q, want %q", tt.prefix, tt.after, tt.limit, got, tt.want)
			}
			for _, e := range kvs {
				if e.Key == "a/10" && string(e.Value) != "10" {
					t.Errorf("value of a/10: got %q, want %q", e.Value, "10")
				}
			}
		})
	}
}

func testConditions(t *testing.T, s kv.Store) {
	put(t, s, "k/present", "v")
	tests := []struct {
		name string
		cond kv.Cond
		want bool
	}{
		{"AbsentOnMissing", kv.Absent("k/missing"), true},
		{"AbsentOnPresent", kv.Absent("k/present"), false},
		{"PresentOnPresent", kv.Present("k/present"), true},
		{"PresentOnMissing", kv.Present("k/missing"), false},
		{"EqualSame", kv.Equal("k/present", []byte("v")), true},
		{"EqualDifferent", kv.Equal("k/present", []byte("w")), false},
		{"EqualPrefixOfValue", kv.Equal("k/present", []byte("")), false},
		{"EqualOnMissing", kv.Equal("k/missing", []byte("v")), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("out/%d", i)
			err := s.Apply(ctx, []kv.Cond{tt.cond}, []kv.Write{kv.Put(key, []byte("written"))})
			var ce *kv.ConflictError
			switch {
			case tt.want && err != nil:
				t.Fatalf("Apply: got %v, want success", err)
			case !tt.want && !errors.As(err, &ce):
				t.Fatalf("Apply: got %v, want a *ConflictError", err)
			}
			wantValue := ""
			if tt.want {
				wantValue = "written"
			}
			if got := value(t, s, key); got != wantValue {
				t.Errorf("value written by Apply: got %q, want %q", got, wantValue)
			}
		})
	}
}

func testConflictIndex(t *testing.T, s kv.Store) {
	put(t, s, "c/a", "1")
	conds := []kv.Cond{kv.Present("c/a"), kv.Absent("c/a"), kv.Present("c/missing")}
	err := s.Apply(ctx, conds, []kv.Write{kv.Put("c/b", []byte("1")), kv.Delete("c/a")})
	var ce *kv.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Apply: got %v, want a *ConflictError", err)
	}
	if ce.Index != 1 || ce.Cond.Key != "c/a" {
		t.Errorf("conflict: got index %d key %q, want index 1 key %q", ce.Index, ce.Cond.Key, "c/a")
	}
	if got := value(t, s, "c/b"); got != "" {
		t.Errorf("c/b after a failed Apply: got %q, want absent", got)
	}
	if got := value(t, s, "c/a"); got != "1" {
		t.Errorf("c/a after a failed Apply: got %q, want %q", got, "1")
	}
}

func testWritesInOrder(t *testing.T, s kv.Store) {
	err := s.Apply(ctx, nil, []kv.Write{
		kv.Put("o/1", []byte("x")), kv.Delete("o/1"),
		kv.Delete("o/2"), kv.Put("o/2", []byte("y")),
		kv.Put("o/3", []byte("first")), kv.Put("o/3", []byte("second")),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for key, want := range map[string]string{"o/1": "", "o/2": "y", "o/3": "second"} {
		if got := value(t, s, key); got != want {
			t.Errorf("%s: got %q, want %q", key, got, want)
		}
	}
}

func testInvalidWrites(t *testing.T, s kv.Store) {
	tests := []struct {
		name   string
		writes []kv.Write
	}{
		{"EmptyKey", []kv.Write{kv.Put("i/ok", []byte("v")), kv.Put("", []byte("v"))}},
		{"EmptyValue", []kv.Write{kv.Put("i/ok", []byte("v")), kv.Put("i/empty", nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Apply(ctx, nil, tt.writes); err == nil {
				t.Fatalf("Apply: got nil, want an error")
			}
			if got := value(t, s, "i/ok"); got != "" {
				t.Errorf("i/ok after a refused Apply: got %q, want absent", got)
			}
		})
	}
}

func testValuesAreCopies(t *testing.T, s kv.Store) {
	in := []byte("original")
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("v/1", in)}); err != nil {
		t.Fatal(err)
	}
	copy(in, "MUTATED!")
	got, err := s.Get(ctx, "v/1")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "original" {
		t.Fatalf("after changing the slice given to Put: got %q, want %q", got, "original")
	}
	copy(got, "MUTATED!")
	kvs, err := s.Scan(ctx, "v/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 1 || string(kvs[0].Value) != "original" {
		t.Fatalf("after changing the slice from Get: got %v, want one value %q", kvs, "original")
	}
	copy(kvs[0].Value, "MUTATED!")
	if got := value(t, s, "v/1"); got != "original" {
		t.Fatalf("after changing the slice from Scan: got %q, want %q", got, "original")
	}
}

func testCancelledContext(t *testing.T, s kv.Store) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, "x/1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get: got %v, want context.Canceled", err)
	}
	if _, err := s.Scan(cctx, "x/", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan: got %v, want context.Canceled", err)
	}
	if err := s.Apply(cctx, nil, []kv.Write{kv.Put("x/1", []byte("v"))}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply: got %v, want context.Canceled", err)
	}
	if got := value(t, s, "x/1"); got != "" {
		t.Errorf("x/1 after a cancelled Apply: got %q, want absent", got)
	}
}

// testConcurrentCreate: of many writers creating the same key under an
// Absent condition exactly one wins, and writers of distinct keys all do.
func testConcurrentCreate(t *testing.T, s kv.Store) {
	const n = 32
	var wg sync.WaitGroup
	wins := make(chan string, n)
	errc := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id := strconv.Itoa(i)
			err := s.Apply(ctx, []kv.Cond{kv.Absent("lock")}, []kv.Write{
				kv.Put("lock", []byte(id)), kv.Put("winner/"+id, []byte(id))})
			var ce *kv.ConflictError
			switch {
			case err == nil:
				wins <- id
			case !errors.As(err, &ce):
				errc <- err
			}
		}()
		go func() {
			defer wg.Done()
			if err := s.Apply(ctx, nil, []kv.Write{kv.Put(fmt.Sprintf("distinct/%02d", i), []byte("v"))}); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(wins)
	close(errc)
	for err := range errc {
		t.Errorf("Apply: %v", err)
	}
	var winners []string
	for id := range wins {
		winners = append(winners, id)
	}
	if len(winners) != 1 {
		t.Fatalf("writers that created the key: got %d, want 1", len(winners))
	}
	if got := value(t, s, "lock"); got != winners[0] {
		t.Errorf("lock: got %q, want the winner %q", got, winners[0])
	}
	if kvs, err := s.Scan(ctx, "winner/", "", 0); err != nil || len(kvs) != 1 {
		t.Errorf("winner/ entries: got %d (%v), want 1", len(kvs), err)
	}
	if kvs, err := s.Scan(ctx, "distinct/", "", 0); err != nil || len(kvs) != n {
		t.Errorf("distinct/ entries: got %d (%v), want %d", len(kvs), err, n)
	}
}

// testConcurrentCAS: increments by read, then Apply under Equal, retried on
// conflict, lose no update.
func testConcurrentCAS(t *testing.T, s kv.Store) {
	put(t, s, "counter", "0")
	const n = 16
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				old, err := s.Get(ctx, "counter")
				if err != nil {
					errc <- err
					return
				}
				v, _ := strconv.Atoi(string(old))
				err = s.Apply(ctx, []kv.Cond{kv.Equal("counter", old)},
					[]kv.Write{kv.Put("counter", []byte(strconv.Itoa(v+1)))})
				var ce *kv.ConflictError
				if errors.As(err, &ce) {
					continue
				}
				if err != nil {
					errc <- err
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("increment: %v", err)
	}
	if got := value(t, s, "counter"); got != strconv.Itoa(n) {
		t.Errorf("counter: got %s, want %d", got, n)
	}
}

// testReadSetUnchanged: reads made with a ReadSet see what plain reads
// see, and Unchanged holds exactly when nothing they read differs at the
// write: a key read changed, deleted or created, or a key appearing in a
// scanned range, fails it; a change elsewhere does not. (A key rewritten
// with the value it had may fail it or not: stores differ, and either is
// safe.)
func testReadSetUnchanged(t *testing.T, s kv.Store) {
	// read makes the reads of one request: a Get of a/x, a Get of the
	// absent a/none, a full Scan of b/ and a Scan of c/ limited to 2.
	read := func(t *testing.T) *kv.ReadSet {
		t.Helper()
		rctx, rs := kv.WithReadSet(ctx)
		if v, err := s.Get(rctx, "a/x"); err != nil || string(v) != "1" {
			t.Fatalf("Get(a/x) with a ReadSet = %q, %v; want 1", v, err)
		}
		if _, err := s.Get(rctx, "a/none"); !errors.Is(err, errs.NotFound) {
			t.Fatalf("Get(a/none) with a ReadSet: %v, want NotFound", err)
		}
		if kvs, err := s.Scan(rctx, "b/", "", 0); err != nil || !slices.Equal(keysOf(kvs), []string{"b/1", "b/2"}) {
			t.Fatalf("Scan(b/) with a ReadSet = %v, %v", keysOf(kvs), err)
		}
		if kvs, err := s.Scan(rctx, "c/", "", 2); err != nil || !slices.Equal(keysOf(kvs), []string{"c/1", "c/2"}) {
			t.Fatalf("Scan(c/, 2) with a ReadSet = %v, %v", keysOf(kvs), err)
		}
		return rs
	}
	reset := func(t *testing.T) {
		t.Helper()
		var ws []kv.Write
		for _, k := range []string{"a/none", "b/15", "c/15", "w/done", "z/1"} {
			ws = append(ws, kv.Delete(k))
		}
		if err := s.Apply(ctx, nil, ws); err != nil {
			t.Fatal(err)
		}
		put(t, s, "a/x", "1", "b/1", "1", "b/2", "2", "c/1", "1", "c/2", "2", "c/3", "3")
	}
	tests := []struct {
		name   string
		change []kv.Write // made between the reads and the write
		holds  bool
	}{
		{"nothing changed", nil, true},
		{"a key elsewhere written", []kv.Write{kv.Put("z/1", []byte("z"))}, true},
		{"a key after a limited scan's last written", []kv.Write{kv.Put("c/3", []byte("changed"))}, true},
		{"a key read changed", []kv.Write{kv.Put("a/x", []byte("2"))}, false},
		{"a key read deleted", []kv.Write{kv.Delete("a/x")}, false},
		{"a key read absent created", []kv.Write{kv.Put("a/none", []byte("new"))}, false},
		{"a key appeared in a scanned range", []kv.Write{kv.Put("b/15", []byte("new"))}, false},
		{"a scanned key changed", []kv.Write{kv.Put("b/2", []byte("changed"))}, false},
		{"a scanned key deleted", []kv.Write{kv.Delete("b/1")}, false},
		{"a key appeared inside a limited scan", []kv.Write{kv.Put("c/15", []byte("new"))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset(t)
			rs := read(t)
			if tt.change != nil {
				if err := s.Apply(ctx, nil, tt.change); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Apply(ctx, []kv.Cond{kv.Absent("w/done"), kv.Unchanged(rs)}, []kv.Write{kv.Put("w/done", []byte("1"))})
			var ce *kv.ConflictError
			switch {
			case tt.holds && err != nil:
				t.Fatalf("Apply with Unchanged: %v, want it to hold", err)
			case !tt.holds && (!errors.As(err, &ce) || ce.Index != 1 || ce.Cond.Op != kv.IfUnchanged):
				t.Fatalf("Apply with Unchanged: %v, want a *ConflictError at index 1 (IfUnchanged)", err)
			}
			if got, want := value(t, s, "w/done") != "", tt.holds; got != want {
				t.Fatalf("write made: %v, want %v (a failed condition writes nothing)", got, want)
			}
		})
	}
	t.Run("a failed key condition is named first", func(t *testing.T) {
		reset(t)
		rs := read(t)
		put(t, s, "a/x", "2")
		err := s.Apply(ctx, []kv.Cond{kv.Unchanged(rs), kv.Present("a/none")}, []kv.Write{kv.Put("w/done", []byte("1"))})
		var ce *kv.ConflictError
		if !errors.As(err, &ce) || ce.Index != 1 {
			t.Fatalf("Apply: %v, want a *ConflictError at index 1 (the key condition)", err)
		}
	})
}

// testGetMany: values in the order of the keys, nil for an absent one, a
// key asked twice answered twice, copies the caller owns, and more keys
// than one etcd transaction reads.
func testGetMany(t *testing.T, s kv.Store) {
	put(t, s, "a/1", "one", "a/2", "two")
	got, err := s.GetMany(ctx, []string{"a/2", "missing", "a/1", "a/2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"two", "", "one", "two"}
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	for i, w := range want {
		if w == "" && got[i] != nil || string(got[i]) != w {
			t.Errorf("value %d: got %q, want %q", i, got[i], w)
		}
	}
	got[0][0] = 'X' // the caller's: the store is unchanged
	if v, err := s.Get(ctx, "a/2"); err != nil || string(v) != "two" {
		t.Errorf("after changing a returned value: Get = %q, %v; want \"two\"", v, err)
	}
	if got, err := s.GetMany(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetMany of no keys: got %d values, %v", len(got), err)
	}

	n := kv.MaxGetMany*2 + 3
	var ws []kv.Write
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("m/%04d", i)
		if i%3 != 0 {
			ws = append(ws, kv.Put(keys[i], []byte(strconv.Itoa(i))))
		}
		if len(ws) == 100 || i == n-1 {
			if err := s.Apply(ctx, nil, ws); err != nil {
				t.Fatal(err)
			}
			ws = nil
		}
	}
	got, err = s.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if i%3 == 0 && v != nil || i%3 != 0 && string(v) != strconv.Itoa(i) {
			t.Fatalf("key %s: got %q", keys[i], v)
		}
	}
}

// testScanPrefixes: each prefix's entries in key order, an empty slice for
// a prefix without entries, a prefix asked twice answered twice, and
// prefixes nested in one another read each in full.
func testScanPrefixes(t *testing.T, s kv.Store) {
	put(t, s, "t/acme/b", "2", "t/acme/a", "1", "t/acme2/c", "3", "u/alice/x", "4")
	got, err := s.ScanPrefixes(ctx, []string{"u/alice/", "t/acme/", "none/", "t/acme", "u/alice/"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"u/alice/x"}, {"t/acme/a", "t/acme/b"}, {}, {"t/acme/a", "t/acme/b", "t/acme2/c"}, {"u/alice/x"}}
	if len(got) != len(want) {
		t.Fatalf("got %d ranges, want %d", len(got), len(want))
	}
	for i, w := range want {
		var keys []string
		for _, e := range got[i] {
			keys = append(keys, e.Key)
		}
		if got[i] == nil || !slices.Equal(keys, w) {
			t.Errorf("range %d: got %q (nil: %v), want %q", i, keys, got[i] == nil, w)
		}
	}
	if v := got[1][0].Value; string(v) != "1" {
		t.Errorf("t/acme/a: got %q, want \"1\"", v)
	}
}
