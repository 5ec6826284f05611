package storeid_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storeid"
)

// cfg is the audit store's check in dir.
func cfg(dir string, init bool) storeid.Config {
	return storeid.Config{
		DataDir: dir, Name: "audit", Init: init,
		Store: storeflag.Config{Kind: storeflag.Bolt, Path: filepath.Join(dir, "audit.db")},
	}
}

func check(t *testing.T, c storeid.Config, wants ...string) {
	t.Helper()
	err := storeid.Check(context.Background(), c)
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("check passed, want an error saying %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestFirstStart(t *testing.T) {
	dir := t.TempDir()
	check(t, cfg(dir, false), "run with --init")
	if _, err := os.Stat(filepath.Join(dir, "audit.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start made the store: %v", err)
	}
	check(t, cfg(dir, true))
	manifest := filepath.Join(dir, storeid.ManifestName)
	first, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false))
	// --init again (a deployment that keeps it set): an ordinary start
	// on the store it made, no new id.
	check(t, cfg(dir, true))
	if again, _ := os.ReadFile(manifest); string(again) != string(first) {
		t.Errorf("a second --init changed the manifest:\n%s\nwas:\n%s", again, first)
	}
	fi, err := os.Stat(filepath.Join(dir, storeid.ManifestName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest: %v, %v", fi, err)
	}
}

func TestInitAdoptsExistingStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.db")
	s, err := boltkv.Open(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := boltkv.WriteID(db, "0123", 0); err != nil {
		t.Fatal(err)
	}
	// The store is kept, with its id, not replaced by a new one.
	check(t, cfg(dir, true))
	check(t, cfg(dir, false))
	if id, err := boltkv.ReadID(db, 0); err != nil || id != "0123" {
		t.Fatalf("store id after --init on an existing store: %q, %v; want 0123 kept", id, err)
	}
}

func TestMissingEmptyForeign(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	check(t, cfg(dir, true))
	check(t, cfg(other, true))
	db := filepath.Join(dir, "audit.db")

	foreign, err := os.ReadFile(filepath.Join(other, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false), db, "not the one this data directory held", storeid.ManifestName)

	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false), db, "empty (0 bytes)", "restore")

	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false), db, "is missing", "restore")
	check(t, cfg(dir, true), db, "is missing", "--init does not replace a lost store")
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start made the store: %v", err)
	}

	if err := os.WriteFile(db, mine, 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false)) // restored from a backup
}

func TestAdoptsEarlierBuildsStore(t *testing.T) {
	dir := t.TempDir()
	s, err := boltkv.Open(filepath.Join(dir, "audit.db"), 0) // no id, no manifest
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	check(t, cfg(dir, false))
	id, err := boltkv.ReadID(filepath.Join(dir, "audit.db"), 0)
	if err != nil || id == "" {
		t.Fatalf("adopted store's id %q, %v", id, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, storeid.ManifestName))
	if err != nil || !strings.Contains(string(data), id) {
		t.Fatalf("manifest %s (%v) does not name %s", data, err, id)
	}
	check(t, cfg(dir, false))
}

func TestDamagedFileIsNotWritten(t *testing.T) {
	dir := t.TempDir()
	check(t, cfg(dir, true))
	db := filepath.Join(dir, "audit.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data { // every page garbage, the meta pages too
		data[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, cfg(dir, false), db, "cannot be read")
	if now, _ := os.ReadFile(db); string(now) != string(data) {
		t.Fatal("the check wrote to the damaged file")
	}
}
