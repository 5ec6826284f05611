package boltkv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/kvtest"
)

// open opens a store at path and, at cleanup, closes it and checks the
// file's consistency.
func open(t *testing.T, path string) *boltkv.Store {
	t.Helper()
	s, err := boltkv.Open(path, time.Second)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		check(t, path)
	})
	return s
}

// check runs bbolt's consistency check on the (closed) file at path.
func check(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("open for check: %v", err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("consistency check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check: %v", err)
	}
}

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store {
		return open(t, filepath.Join(t.TempDir(), "kv.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "kv.db")
	s, err := boltkv.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("teams/red", []byte(`{"id":"red"}`))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode: got %v, want 0600", got)
	}

	s = open(t, path)
	got, err := s.Get(ctx, "teams/red")
	if err != nil || string(got) != `{"id":"red"}` {
		t.Errorf("after reopen: got %q (%v), want %q", got, err, `{"id":"red"}`)
	}
}

func TestOpenLockedTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	open(t, path)
	_, err := boltkv.Open(path, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("second Open: got %v, want a 'locked' error", err)
	}
}

func TestOpenRefusesOtherSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := boltkv.Open(path, time.Second); err == nil {
		s.Close()
		t.Fatalf("Open: got nil error, want a schema version error")
	} else if !strings.Contains(err.Error(), "schema") {
		t.Errorf("Open: got %v, want a schema version error", err)
	}
}
