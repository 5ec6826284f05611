package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ozsecrets/oz/e2e/harness"
)

// A missing, empty, damaged or foreign store stops the service that owns
// it, with a message naming the file and what to do; it never starts
// empty (issue 15). Each test runs the real services over a real data
// directory, breaks one file the way an operator's mistake or a failing
// disk would, and starts the service again.

// startServicesIn runs the four services as separate processes in a fresh
// data directory, made by ozdev (its first start, with --init), and stops
// them when the test ends.
func startServicesIn(t *testing.T) *harness.Services {
	t.Helper()
	svc, err := harness.StartServices(binDir, filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("start services: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	return svc
}

// refusedStart stops the service name, lets break change the data
// directory, starts the service again and wants it to refuse: it returns
// what the service logged on that start.
func refusedStart(t *testing.T, svc *harness.Services, name string, brk func()) string {
	t.Helper()
	p := svc.Proc(name)
	if err := p.Stop(); err != nil {
		t.Fatalf("stop %s: %v", name, err)
	}
	before, _ := os.ReadFile(p.LogPath)
	brk()
	err := p.Start()
	after, _ := os.ReadFile(p.LogPath)
	logged := string(after[len(before):])
	if err == nil {
		t.Fatalf("%s started on a broken store; it logged:\n%s", name, logged)
	}
	if strings.Contains(logged, "goroutine ") || strings.Contains(logged, "panic:") {
		t.Errorf("%s crashed instead of refusing:\n%s", name, logged)
	}
	return logged
}

// wantAll fails the test unless s contains each of wants.
func wantAll(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, s)
		}
	}
}

func TestStateDeletedAuditStoreRefused(t *testing.T) {
	svc := startServicesIn(t)
	tm := newTeam(t, svc.System)
	ozOK(t, svc.System, tm.alice, "v\n", "secret", "create", "--team", "KEPT")
	db := filepath.Join(svc.DataDir, "audit.db")
	logged := refusedStart(t, svc, "audit", func() {
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
	})
	wantAll(t, "the refusal", logged, db, "is missing", "restore", "--init")
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the refused start made a new %s (stat: %v)", db, err)
	}
}

func TestStateEmptiedResolverStoreRefused(t *testing.T) {
	svc := startServicesIn(t)
	db := filepath.Join(svc.DataDir, "resolver.db")
	token, err := os.ReadFile(filepath.Join(svc.DataDir, "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	logged := refusedStart(t, svc, "resolver", func() {
		if err := os.Truncate(db, 0); err != nil {
			t.Fatal(err)
		}
	})
	wantAll(t, "the refusal", logged, db, "empty (0 bytes)", "restore")
	if fi, err := os.Stat(db); err != nil || fi.Size() != 0 {
		t.Errorf("the refused start wrote to %s: %v, %v", db, fi, err)
	}
	if now, _ := os.ReadFile(filepath.Join(svc.DataDir, "bootstrap-token")); !bytes.Equal(now, token) {
		t.Error("the refused start replaced the bootstrap token")
	}
}

func TestStateForeignSecretstoreStoreRefused(t *testing.T) {
	svc := startServicesIn(t)
	// Another data directory's store file, as a wrong restore would put it.
	other := filepath.Join(t.TempDir(), "other")
	sys, err := harness.Start(binDir, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Stop(); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(filepath.Join(other, "secretstore.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(svc.DataDir, "secretstore.db")
	logged := refusedStart(t, svc, "secretstore", func() {
		if err := os.WriteFile(db, foreign, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	wantAll(t, "the refusal", logged, db, "is not the one this data directory held", "oz-manifest.json")
	if now, _ := os.ReadFile(db); !bytes.Equal(now, foreign) {
		t.Errorf("the refused start wrote to %s", db)
	}
}

func TestStateDevRefusalWritesNoKeyring(t *testing.T) {
	svc := startServicesIn(t)
	tm := newTeam(t, svc.System)
	ozOK(t, svc.System, tm.alice, "v\n", "secret", "create", "--team", "SEALED")
	kr := filepath.Join(svc.DataDir, "keyring.json")
	logged := refusedStart(t, svc, "secretstore", func() {
		if err := os.Remove(kr); err != nil {
			t.Fatal(err)
		}
	})
	wantAll(t, "the refusal", logged, kr, "restore the keyring")
	if _, err := os.Stat(kr); !os.IsNotExist(err) {
		t.Errorf("the refused --dev start left %s behind (stat: %v)", kr, err)
	}
}

func TestStateFirstStartNeedsInit(t *testing.T) {
	svc := startServicesIn(t)
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	// A data directory with its PKI but no stores: what a lost disk, or a
	// wrong --data-dir, looks like to a service.
	for _, f := range []string{"audit.db", "resolver.db", "secretstore.db", "oz-manifest.json"} {
		if err := os.Remove(filepath.Join(svc.DataDir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	db := filepath.Join(svc.DataDir, "audit.db")
	logged := refusedStart(t, svc, "audit", func() {})
	wantAll(t, "the refusal", logged, db, "run with --init")
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the refused start made %s (stat: %v)", db, err)
	}
}

// --init creates a store only where none ever was: on a data directory
// that lost its audit store it is refused all the same, and makes nothing.
func TestStateInitDoesNotReplaceLostStore(t *testing.T) {
	svc := startServicesIn(t)
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(svc.DataDir, "audit.db")
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	out, err := runDaemon(t, "ozauditd", "--data-dir", svc.DataDir, "--listen", "127.0.0.1:0", "--init")
	if err == nil {
		t.Fatalf("ozauditd --init started in place of a lost store:\n%s", out)
	}
	wantAll(t, "the refusal", out, db, "is missing", "restore the file from a backup", "--init does not replace a lost store")
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the refused --init start made %s (stat: %v)", db, err)
	}
}

func TestStateOldDataDirAdopted(t *testing.T) {
	svc := startServicesIn(t)
	tm := newTeam(t, svc.System)
	ozOK(t, svc.System, tm.alice, "old-value\n", "secret", "create", "--team", "FROM_BEFORE")
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	// What an earlier build left: store files without ids, no manifest.
	manifest := filepath.Join(svc.DataDir, "oz-manifest.json")
	if err := os.Remove(manifest); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, name := range []string{"audit", "resolver", "secretstore"} {
		stripStoreID(t, filepath.Join(svc.DataDir, name+".db"))
	}
	for _, name := range []string{"resolver", "audit", "secretstore", "gateway"} {
		if err := svc.Proc(name).Start(); err != nil {
			t.Fatalf("start %s on an earlier build's data directory: %v", name, err)
		}
	}
	list := ozOK(t, svc.System, tm.alice, "", "secret", "list")
	wantAll(t, "oz secret list", list.Stdout, "FROM_BEFORE")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatalf("no manifest after adopting: %v", err)
	}
	var m struct {
		Stores map[string]struct{ ID string } `json:"stores"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"audit", "resolver", "secretstore"} {
		if m.Stores[name].ID == "" {
			t.Errorf("the manifest has no id for the %s store:\n%s", name, data)
		}
	}
	if fi, err := os.Stat(manifest); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v, want 0600", fi.Mode().Perm())
	}
}

// stripStoreID removes the store id from a bbolt store, as an earlier
// build made it.
func stripStoreID(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("meta")); b != nil {
			return b.Delete([]byte("store-id"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// runDaemon runs the binary bin with args until it exits, and returns
// what it printed and how it exited; a binary still running after a
// minute (serving, where it should have refused) fails the test.
func runDaemon(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not exit: it serves:\n%s", bin, args, out)
	}
	return string(out), err
}

func TestStateDamagedStoreRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, path string)
	}{
		// Garbage over the page the live meta page names as the root of
		// the buckets: bbolt panics on it ("Page expected to be …").
		{"garbage root page", func(t *testing.T, path string) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			size, root := boltRoot(t, data)
			for i := root * size; i < (root+1)*size; i++ {
				data[i] = byte(0xA5 ^ i)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		// Half the file gone, as a failed copy leaves it: pages past the
		// end fault (SIGBUS) when read.
		{"half truncated", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := startServicesIn(t)
			tm := newTeam(t, svc.System)
			for i := range 20 {
				ozOK(t, svc.System, tm.alice, strings.Repeat("v", 2000)+"\n", "secret", "create", "--team", "S"+strconvItoa(i))
			}
			db := filepath.Join(svc.DataDir, "audit.db")
			var broken []byte
			logged := refusedStart(t, svc, "audit", func() {
				tc.breakIt(t, db)
				var err error
				if broken, err = os.ReadFile(db); err != nil {
					t.Fatal(err)
				}
			})
			wantAll(t, "the refusal", logged, db, "damaged", "restore")
			if now, _ := os.ReadFile(db); !bytes.Equal(now, broken) {
				t.Errorf("the refused start wrote to the damaged %s", db)
			}
		})
	}
}

// boltRoot returns a bbolt file's page size and the root page of its
// buckets, from its live meta page (of the two, the one with the higher
// transaction id): the layout of bbolt's meta page, after the page's
// 16-byte header: magic, version, page size, flags (4 bytes each), the
// root bucket (root page, sequence: 8 each), freelist, pgid, txid.
func boltRoot(t *testing.T, data []byte) (pageSize, root int) {
	t.Helper()
	le := func(b []byte) int {
		n := 0
		for i := len(b) - 1; i >= 0; i-- {
			n = n<<8 | int(b[i])
		}
		return n
	}
	pageSize = le(data[16+8 : 16+12])
	var txid int
	for _, off := range []int{0, pageSize} {
		m := data[off+16:]
		if tx := le(m[48:56]); tx >= txid {
			txid, root = tx, le(m[16:24])
		}
	}
	if pageSize < 512 || root < 2 || (root+1)*pageSize > len(data) {
		t.Fatalf("not a bbolt file as expected: page size %d, root page %d, %d bytes", pageSize, root, len(data))
	}
	return pageSize, root
}

func strconvItoa(i int) string { return strconv.Itoa(i) }
