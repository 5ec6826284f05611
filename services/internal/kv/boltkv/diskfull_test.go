package boltkv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ozsecrets/oz/lib/tmpfstest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// TestDiskFull fills the disk under a store (a real tmpfs) while writers
// write: a write that finds no room is DiskFull (ResourceExhausted, naming
// the file for the log, never a value), reads go on, the same handle
// writes again once the space is back, and every acknowledged write is
// there, in a file that passes bbolt's check.
func TestDiskFull(t *testing.T) {
	dir := tmpfstest.Mount(t, 1<<20)
	path := filepath.Join(dir, "kv.db")
	s := open(t, path)
	ctx := context.Background()
	const canary = "canary-value-4c1f9e"
	value := []byte(canary + strings.Repeat("v", 2000))

	tmpfstest.Fill(t, dir)
	// Writers until each has been refused: the file's free pages take
	// the first writes.
	var (
		mu      sync.Mutex
		acked   []string
		refused []error
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := range 10000 {
				key := fmt.Sprintf("k/%d/%05d", w, i)
				err := s.Apply(ctx, []kv.Cond{kv.Absent(key)}, []kv.Write{kv.Put(key, value)})
				mu.Lock()
				if err == nil {
					acked = append(acked, key)
				} else {
					refused = append(refused, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(refused) != 8 {
		t.Fatalf("refused writes: got %d, want one per writer (8)", len(refused))
	}
	for _, err := range refused {
		if !errors.Is(err, errs.ResourceExhausted) {
			t.Fatalf("a write on a full disk: got %v (kind %v), want kind %v", err, errs.KindOf(err), errs.KindResourceExhausted)
		}
		var full *kv.DiskFullError
		if !errors.As(err, &full) || full.Where != path {
			t.Errorf("a write on a full disk: got %v, want a *kv.DiskFullError at %s", err, path)
		}
		if st := errs.ToStatus(err); st.Message() != kv.DiskFullMessage {
			t.Errorf("status message: got %q, want %q", st.Message(), kv.DiskFullMessage)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error holds the value: %v", err)
		}
	}

	// Reads go on while the disk is full.
	checkAll(t, s, acked, value)

	// Space is back: the same handle writes again.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		key := fmt.Sprintf("after/%03d", i)
		if err := s.Apply(ctx, nil, []kv.Write{kv.Put(key, value)}); err != nil {
			t.Fatalf("write %d after space came back: %v", i, err)
		}
		acked = append(acked, key)
	}
	checkAll(t, s, acked, value)

	// And all of it is on disk: reopened (the cleanup also checks the
	// file's consistency).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, open(t, path), acked, value)
}

// checkAll fails the test unless s holds every key of keys, with value,
// and nothing else.
func checkAll(t *testing.T, s kv.Store, keys []string, value []byte) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keys {
		v, err := s.Get(ctx, k)
		if err != nil || string(v) != string(value) {
			t.Fatalf("Get %s: got %d bytes, %v; want the value written", k, len(v), err)
		}
	}
	all, err := s.Scan(ctx, "", "", 0)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(all) != len(keys) {
		t.Fatalf("Scan: got %d entries, want %d", len(all), len(keys))
	}
}
