package groupcommit_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ozsecrets/oz/services/internal/groupcommit"
)

var bucket = []byte("b")

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

func count(t *testing.T, db *bolt.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// Concurrent writes all commit, and share transactions.
func TestConcurrentWritesShareTransactions(t *testing.T) {
	db := openDB(t)
	c := groupcommit.New(db)
	const writers, each = 32, 50
	var mu sync.Mutex
	txs := map[int]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := c.Do(func(tx *bolt.Tx) error {
					mu.Lock()
					txs[tx.ID()] = true
					mu.Unlock()
					return tx.Bucket(bucket).Put(fmt.Appendf(nil, "%02d-%03d", w, i), []byte("v"))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := count(t, db); n != writers*each {
		t.Fatalf("%d keys stored, want %d", n, writers*each)
	}
	if len(txs) >= writers*each {
		t.Errorf("%d writes took %d transactions: none were grouped", writers*each, len(txs))
	}
	t.Logf("%d writes in %d transactions", writers*each, len(txs))
}

// A failing write gets its own error and stores nothing; the writes
// grouped with it are committed.
func TestFailingWriteIsIsolated(t *testing.T) {
	db := openDB(t)
	c := groupcommit.New(db)
	errBad := errors.New("bad write")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			errs[i] = c.Do(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucket).Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
					return err
				}
				switch i % 10 {
				case 3:
					return errBad
				case 7:
					panic("boom")
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch i % 10 {
		case 3:
			if !errors.Is(err, errBad) {
				t.Errorf("write %d: %v, want its own error", i, err)
			}
		case 7:
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Errorf("write %d: %v, want a panic error", i, err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
	}
	if err := db.View(func(tx *bolt.Tx) error {
		for i := range errs {
			got := tx.Bucket(bucket).Get(fmt.Appendf(nil, "k%02d", i)) != nil
			if want := i%10 != 3 && i%10 != 7; got != want {
				t.Errorf("key %d stored %v, want %v", i, got, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Writes after a failed one still commit (the committer is not stuck).
func TestSequentialWrites(t *testing.T) {
	db := openDB(t)
	c := groupcommit.New(db)
	if err := c.Do(func(*bolt.Tx) error { return errors.New("no") }); err == nil {
		t.Fatal("want an error")
	}
	for i := range 5 {
		if err := c.Do(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(fmt.Appendf(nil, "%d", i), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db); n != 5 {
		t.Fatalf("%d keys, want 5", n)
	}
}
