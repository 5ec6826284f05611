package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/boltstore"
	"github.com/ozsecrets/oz/services/audit/storetest"
)

// open returns a new store in a temporary directory; cleanup closes it and
// runs bbolt's consistency check.
func open(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "audit.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		s.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.Store { return open(t) })
}

func TestReopenKeepsChains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := []*auditv1.Event{storetest.NewEvent("acme", 1), storetest.NewEvent("acme", 2)}
	if _, err := s.Append(ctx, first, time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Append(ctx, []*auditv1.Event{first[1], storetest.NewEvent("acme", 3)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Appended != 1 || res.Duplicates != 1 {
		t.Errorf("after reopen: got %+v, want 1 appended, 1 duplicate", res)
	}
	if all := storetest.Verify(t, s, "acme"); len(all) != 3 {
		t.Errorf("got %d events, want 3", len(all))
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := boltstore.Open(path, &boltstore.Options{Timeout: 50 * time.Millisecond}); err == nil {
		t.Errorf("second Open of a locked file: got nil, want an error")
	}
}
