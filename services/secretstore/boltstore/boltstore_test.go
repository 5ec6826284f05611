package boltstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/boltstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

// open opens a store at path and, at cleanup, checks the file's
// consistency and closes it.
func open(t testing.TB, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("consistency check of %s: %v", path, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) secretstore.Store {
		return open(t, filepath.Join(t.TempDir(), "secretstore.db"))
	})
}

var (
	admin = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	clock = func() time.Time { return time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC) }
)

func newService(t testing.TB, s secretstore.Store, kr *keyring.Keyring) *secretstore.Service {
	t.Helper()
	return secretstore.NewService(secretstore.Config{Store: s, Keyring: kr, Now: clock})
}

func newKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "secretstore.db")
	kr := newKeyring(t)

	s1, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, s1, kr)
	want := map[string]*secretstore.Secret{}
	for _, req := range []secretstore.CreateRequest{
		{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte("v-api"), Description: "the API key"},
		{Parent: "teams/acme", SecretID: "DB_PASSWORD", Value: []byte("v-db")},
		{Parent: "users/me", SecretID: "MY_TOKEN", Value: []byte("v-mine")},
	} {
		sec, err := svc.Create(ctx, admin, req)
		if err != nil {
			t.Fatalf("Create %s: %v", req.SecretID, err)
		}
		want[sec.ResourceName()] = sec
	}
	upd, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: "teams/acme/secrets/DB_PASSWORD", Value: []byte("v-db-2")})
	if err != nil {
		t.Fatal(err)
	}
	want[upd.ResourceName()] = upd
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, path)
	svc = newService(t, s2, kr)
	for name, w := range want {
		got, err := svc.Get(ctx, admin, name)
		if err != nil {
			t.Fatalf("Get %s after reopen: %v", name, err)
		}
		if d := storetest.Diff(got, w); d != "" {
			t.Errorf("%s after reopen: %s", name, d)
		}
	}
	vals, missing, err := svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"API_KEY", "DB_PASSWORD"})
	if err != nil || len(missing) != 0 {
		t.Fatalf("UnsealValues after reopen: %v, missing %v", err, missing)
	}
	if got := string(vals[0].Value.Bytes()) + "," + string(vals[1].Value.Bytes()); got != "v-api,v-db-2" {
		t.Fatalf("values after reopen: got %q, want %q", got, "v-api,v-db-2")
	}
	if vals[1].ValueVersion != 2 {
		t.Fatalf("DB_PASSWORD value version: got %d, want 2", vals[1].ValueVersion)
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secretstore.db")
	open(t, path)
	start := time.Now()
	_, err := boltstore.Open(path, &boltstore.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open of a locked file: got no error")
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("second Open: got %q, want it to say the file is locked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v; the timeout was not applied", d)
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secretstore.db")
	open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode of the database file: got %v, want 0600", got)
	}
}

func TestUnknownSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secretstore.db")
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
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := boltstore.Open(path, nil); err == nil {
		s.Close()
		t.Fatal("Open of a file with an unknown schema version: got no error")
	}
}

// TestNoPlaintextOnDisk writes, updates and deletes secrets holding a
// canary and then searches the raw file (all pages, free ones included).
func TestNoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	const canary = "CANARY-7d1f0c2e-plaintext-must-never-be-stored"
	path := filepath.Join(t.TempDir(), "secretstore.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, s, newKeyring(t))
	for i, parent := range []string{"teams/acme", "users/me"} {
		name := "SECRET" + string(rune('A'+i))
		if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: parent, SecretID: name, Value: []byte(canary + "\nline 2")}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: parent + "/secrets/" + name, Value: []byte("v2 " + canary)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "GONE", Value: []byte(canary)}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, admin, secretstore.DeleteRequest{Name: "teams/acme/secrets/GONE"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), "CANARY-7d1f0c2e"} {
		if bytes.Contains(raw, []byte(form)) {
			t.Errorf("the database file contains %q", form)
		}
	}
	if !bytes.Contains(raw, []byte("SECRETA")) {
		t.Error("the database file does not contain the secret's name; is this the right file?")
	}
}

func TestSealingKeysConformance(t *testing.T) {
	storetest.RunSealingKeys(t, func(t *testing.T) sealing.Store {
		return open(t, filepath.Join(t.TempDir(), "secretstore.db"))
	})
}

// TestSealingKeysSurviveReopen checks that sealing keys are durable and
// live beside the secrets in the one file.
func TestSealingKeysSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secretstore.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := storetest.NewSealingKey("x25519-1")
	k.RetireTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.UpdateSealingKeys(context.Background(), func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return []*sealing.Key{k}, storetest.NewSealingEvent("sealing_key.create"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, path).SealingKey(context.Background(), "x25519-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.SealingKeyDiff(got, k); d != "" {
		t.Fatalf("after reopening: %s", d)
	}
}
