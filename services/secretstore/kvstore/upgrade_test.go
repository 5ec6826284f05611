package kvstore_test

import (
	"context"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/lib/sealwire"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// The fixtures in testdata/legacy were written by the secretstore's stores
// of before kv.Store (generate.go says how): a bbolt file, an etcd
// namespace written by two replicas, and the bbolt file copied into etcd by
// ozmigrate; want-*.json says what each holds.

const legacyDir = "testdata/legacy"

type fixtureWant struct {
	Secrets []struct {
		Owner, Name, Description string
		ValueVersion             int64
		Etag, KEKID              string
		Value                    string
	} `json:"secrets"`
	SealingKeys []struct {
		ID      string
		KEMID   uint16
		Current bool
	} `json:"sealing_keys"`
	Events []struct{ ID, Action, Resource string } `json:"events"`
}

func loadWant(t *testing.T, name string) fixtureWant {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(legacyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var w fixtureWant
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func loadKeyring(t *testing.T, name string) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Load(filepath.Join(legacyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// copyBoltFixture copies the bbolt fixture to a new file.
func copyBoltFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(legacyDir, "secretstore.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secretstore.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkBolt(t, path) })
	return path
}

// loadEtcdFixture puts the keys of an etcd fixture under a new namespace.
func loadEtcdFixture(t *testing.T, cli *clientv3.Client, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(legacyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Key, Value string }
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	ns := etcdtest.Prefix()
	for _, e := range entries {
		k, err1 := base64.StdEncoding.DecodeString(e.Key)
		v, err2 := base64.StdEncoding.DecodeString(e.Value)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, ns+string(k), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// upgraded is what an upgrade of the fixture of w must report.
func upgraded(w fixtureWant) kvstore.Upgrade {
	return kvstore.Upgrade{Secrets: len(w.Secrets), SealingKeys: len(w.SealingKeys), Events: len(w.Events)}
}

// checkUpgraded checks that s holds what w says, in full: the secrets
// (values open under kr with their owner, name and version), the sealing
// keys (their private keys open: a value sealed to each current one is
// accepted), and the undelivered events, with their ids, then delivered.
// It leaves s changed (a secret created, events acknowledged).
func checkUpgraded(t *testing.T, s *kvstore.Store, kr *keyring.Keyring, w fixtureWant) {
	t.Helper()
	// Secrets, by owner, as List and Get and Scan show them.
	var owners []secretstore.Owner
	byOwner := map[secretstore.Owner][]string{}
	for _, ws := range w.Secrets {
		o, err := secretstore.ParseOwner(ws.Owner)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byOwner[o]; !ok {
			owners = append(owners, o)
		}
		byOwner[o] = append(byOwner[o], ws.Name)
		got, err := s.Get(ctx, o, ws.Name)
		if err != nil {
			t.Fatalf("Get %s/secrets/%s: %v", ws.Owner, ws.Name, err)
		}
		if got.Description != ws.Description || got.ValueVersion != ws.ValueVersion || got.Etag != ws.Etag || got.Value.KEKID != ws.KEKID {
			t.Errorf("%s: got description %q, version %d, etag %s, key %s; want %q, %d, %s, %s", got.ResourceName(),
				got.Description, got.ValueVersion, got.Etag, got.Value.KEKID, ws.Description, ws.ValueVersion, ws.Etag, ws.KEKID)
		}
		v, err := kr.Open(got.Value, secretstore.ValueAD(got.Owner, got.Name, got.ValueVersion))
		if err != nil || string(v) != ws.Value {
			t.Errorf("%s: the value does not open to the one stored (%v)", got.ResourceName(), err)
		}
	}
	for _, o := range owners {
		secs, err := s.List(ctx, o, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sec := range secs {
			names = append(names, sec.Name)
		}
		if !slices.Equal(names, byOwner[o]) {
			t.Errorf("List(%s): got %v, want %v", o, names, byOwner[o])
		}
	}
	all, err := s.Scan(ctx, secretstore.Owner{}, "", 1000)
	if err != nil || len(all) != len(w.Secrets) {
		t.Errorf("Scan: got %d secrets, %v; want %d", len(all), err, len(w.Secrets))
	}
	svc := secretstore.NewService(secretstore.Config{Store: s, Keyring: kr})
	vals, missing, err := svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"API_KEY", "db_password"})
	if err != nil || len(missing) != 0 || len(vals) != 2 || string(vals[0].Value.Bytes()) != "test value of teams/acme/secrets/API_KEY v2" {
		t.Errorf("UnsealValues after the upgrade: %v, %v", err, missing)
	}
	owner := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	if _, err := svc.Create(ctx, owner, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "api_key", Value: []byte("x")}); errs.KindOf(err) != errs.KindAlreadyExists {
		t.Errorf("Create of api_key beside the upgraded API_KEY: got %v, want AlreadyExists", err)
	}

	// Sealing keys.
	keys, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(w.SealingKeys) {
		t.Fatalf("sealing keys: got %d, want %d", len(keys), len(w.SealingKeys))
	}
	seal := sealing.NewService(sealing.Config{Store: s, Keyring: kr, Grace: 100 * 365 * 24 * time.Hour})
	svc = secretstore.NewService(secretstore.Config{Store: s, Keyring: kr, Sealing: seal})
	for i, wk := range w.SealingKeys {
		k := keys[i]
		if k.ID != wk.ID || k.KEMID != wk.KEMID || k.Current() != wk.Current {
			t.Errorf("sealing key %d: got %s (KEM %d, current %v), want %s (%d, %v)", i, k.ID, k.KEMID, k.Current(), wk.ID, wk.KEMID, wk.Current)
		}
		if !k.Current() {
			continue
		}
		name := fmt.Sprintf("SEALED_%d", i)
		kem, err := hpke.NewKEM(k.KEMID)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := kem.NewPublicKey(k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := hpke.Seal(pub, sealwire.KDF(), sealwire.AEAD(), sealwire.SecretInfo("teams/acme", name), []byte("sealed "+name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Create(ctx, owner, secretstore.CreateRequest{Parent: "teams/acme", SecretID: name,
			Sealed: &secretstore.SealedValue{KeyID: k.ID, Ciphertext: ct}}); err != nil {
			t.Errorf("Create of a value sealed to the upgraded key %s: %v", k.ID, err)
		}
	}

	// Undelivered events: the same, with their ids, first; then new ones.
	ob := s.Outbox()
	evs, err := ob.Pending(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < len(w.Events) {
		t.Fatalf("events: got %d, want at least the %d carried over", len(evs), len(w.Events))
	}
	for i, we := range w.Events {
		if evs[i].GetId() != we.ID || evs[i].GetAction() != we.Action || evs[i].GetResource() != we.Resource {
			t.Errorf("event %d: got %s %s %s, want %s %s %s", i, evs[i].GetId(), evs[i].GetAction(), evs[i].GetResource(), we.ID, we.Action, we.Resource)
		}
	}
	if n, err := ob.(outbox.Counter).Backlog(ctx); err != nil || n < len(w.Events)+1 {
		t.Errorf("Backlog: %d, %v; want the %d carried over and the new ones", n, err, len(w.Events))
	}
	// Delivered a few at a time, as a shipper does.
	var delivered []string
	for range 100 {
		evs, err := ob.Pending(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		var ids []string
		for _, ev := range evs {
			ids = append(ids, ev.GetId())
		}
		if err := ob.Ack(ctx, ids); err != nil {
			t.Fatal(err)
		}
		delivered = append(delivered, ids...)
	}
	for i, we := range w.Events {
		if i >= len(delivered) || delivered[i] != we.ID {
			t.Fatalf("delivered %v, want the carried-over events first, in order", delivered)
		}
	}
	if len(delivered) <= len(w.Events) || !strings.HasPrefix(delivered[len(w.Events)], secretstore.Emitter+"-") {
		t.Errorf("delivered %v, want the new events after the carried-over ones", delivered)
	}
	if n, err := ob.(outbox.Counter).Backlog(ctx); err != nil || n != 0 {
		t.Errorf("Backlog after delivery: %d, %v; want 0", n, err)
	}
}

// boltDump returns every bucket, key and value of the file at path.
func boltDump(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out[string(name)] = ""
			return b.ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUpgradeBolt(t *testing.T) {
	w, kr := loadWant(t, "want-bolt.json"), loadKeyring(t, "keyring-bolt.json")
	path := copyBoltFixture(t)
	raw, up, err := kvstore.OpenBoltKV(path, time.Second)
	if err != nil {
		t.Fatalf("OpenBoltKV of a file of the earlier layout: %v", err)
	}
	if up != upgraded(w) {
		t.Errorf("upgrade: got %v, want %v", up, upgraded(w))
	}
	s, err := kvstore.Open(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Only the current layout's buckets are left.
	for k := range boltDump(t, path) {
		if b, _, _ := strings.Cut(k, "/"); b != "records" && b != "meta" {
			t.Errorf("after the upgrade: bucket %q is left", b)
		}
	}
	// Opened again: nothing more to upgrade, and everything there.
	raw, up, err = kvstore.OpenBoltKV(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if up != (kvstore.Upgrade{}) {
		t.Errorf("second open: upgraded %v again", up)
	}
	checkUpgraded(t, openKV(t, raw), kr, w)
}

func TestUpgradeBoltRefusals(t *testing.T) {
	t.Run("CorruptRecordChangesNothing", func(t *testing.T) {
		path := copyBoltFixture(t)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			k, _ := tx.Bucket([]byte("outbox")).Cursor().Last()
			return tx.Bucket([]byte("outbox")).Put(k, []byte{0x7f, 'x'})
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		before := boltDump(t, path)
		_, _, err = kvstore.OpenBoltKV(path, time.Second)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "audit outbox record") {
			t.Fatalf("OpenBoltKV of a file with a corrupt record: got %v, want an error naming the file and the record", err)
		}
		if after := boltDump(t, path); !maps(before, after) {
			t.Fatal("a failed upgrade changed the file")
		}
	})
	t.Run("BothLayouts", func(t *testing.T) {
		path := copyBoltFixture(t)
		s, _, err := kvstore.OpenBoltKV(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		// ozmigrate leaves an empty "outbox" bucket: no matter.
		addBucket(t, path, "outbox", "")
		s, _, err = kvstore.OpenBoltKV(path, time.Second)
		if err != nil {
			t.Fatalf("OpenBoltKV beside an empty bucket of an old name: %v", err)
		}
		s.Close()
		// A secret written by an earlier version after the upgrade.
		addBucket(t, path, "secrets", "teams/acme\x00LATE")
		before := boltDump(t, path)
		_, _, err = kvstore.OpenBoltKV(path, time.Second)
		if !errors.Is(err, kvstore.ErrBothLayouts) || !strings.Contains(err.Error(), path) {
			t.Fatalf("OpenBoltKV of a file in both layouts: got %v, want ErrBothLayouts naming the file", err)
		}
		if after := boltDump(t, path); !maps(before, after) {
			t.Fatal("a refused open changed the file")
		}
	})
}

// addBucket adds bucket to the file at path, with key when not empty.
func addBucket(t *testing.T, path, bucket, key string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil || key == "" {
			return err
		}
		return b.Put([]byte(key), []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestUpgradeEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for _, fx := range []struct{ name, dump, want, keyring string }{
		{"Replicas", "etcd.json", "want-etcd.json", "keyring-etcd.json"},
		{"CopiedFromBolt", "etcd-from-bolt.json", "want-bolt.json", "keyring-bolt.json"},
	} {
		t.Run(fx.name, func(t *testing.T) {
			w, kr := loadWant(t, fx.want), loadKeyring(t, fx.keyring)
			ns := loadEtcdFixture(t, cli, fx.dump)
			before := etcdDump(t, cli, ns)

			// Refused until upgraded, with what to do.
			_, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns)
			if !errors.Is(err, kvstore.ErrUpgradeNeeded) || !strings.Contains(err.Error(), ns) ||
				!strings.Contains(err.Error(), "ozsecretstored upgrade --store etcd:"+strings.Join(srv.Endpoints(), ",")) {
				t.Fatalf("OpenEtcdKV of the earlier layout: got %v, want ErrUpgradeNeeded naming the namespace and the command", err)
			}
			if after := etcdDump(t, cli, ns); !maps(before, after) {
				t.Fatal("a refused open changed the namespace")
			}

			up, err := kvstore.UpgradeEtcd(ctx, cli, ns)
			if err != nil {
				t.Fatalf("UpgradeEtcd: %v", err)
			}
			if up != upgraded(w) {
				t.Errorf("upgrade: got %v, want %v", up, upgraded(w))
			}
			for k := range etcdDump(t, cli, ns) {
				if !strings.HasPrefix(k, "records/") && k != "meta/schema" {
					t.Errorf("after the upgrade: key %q is left", k)
				}
			}
			if up, err := kvstore.UpgradeEtcd(ctx, cli, ns); err != nil || up != (kvstore.Upgrade{}) {
				t.Errorf("second UpgradeEtcd: %v, %v; want nothing done", up, err)
			}
			s, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns)
			if err != nil {
				t.Fatalf("OpenEtcdKV after the upgrade: %v", err)
			}
			checkUpgraded(t, openKV(t, s), kr, w)

			// A secret an earlier version writes after the upgrade.
			if _, err := cli.Put(ctx, ns+"secrets/teams/acme\x00LATE", "{}"); err != nil {
				t.Fatal(err)
			}
			if _, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns); !errors.Is(err, kvstore.ErrBothLayouts) {
				t.Errorf("OpenEtcdKV of both layouts: got %v, want ErrBothLayouts", err)
			}
			if _, err := kvstore.UpgradeEtcd(ctx, cli, ns); !errors.Is(err, kvstore.ErrBothLayouts) {
				t.Errorf("UpgradeEtcd of both layouts: got %v, want ErrBothLayouts", err)
			}
		})
	}

	// An earlier version writes during the upgrade: the old layout stays;
	// the next upgrade carries that write over too.
	t.Run("WriteDuringUpgrade", func(t *testing.T) {
		w := loadWant(t, "want-etcd.json")
		ns := loadEtcdFixture(t, cli, "etcd.json")
		lateKey := ns + "secrets/teams/acme\x00LATE"
		late, err := cli.Get(ctx, ns+"secrets/teams/acme\x00Z_LAST")
		if err != nil || len(late.Kvs) != 1 {
			t.Fatal(err)
		}
		restore := kvstore.SetHookBeforeSwitch(func() {
			if _, err := cli.Put(ctx, lateKey, string(late.Kvs[0].Value)); err != nil {
				t.Error(err)
			}
		})
		_, err = kvstore.UpgradeEtcd(ctx, cli, ns)
		restore()
		if err == nil || !strings.Contains(err.Error(), "written during the upgrade") {
			t.Fatalf("UpgradeEtcd with a write meanwhile: got %v, want an error saying so", err)
		}
		if err := kvstore.CheckEtcd(ctx, cli, ns); !errors.Is(err, kvstore.ErrUpgradeNeeded) {
			t.Fatalf("after a failed upgrade: got %v, want the old layout still (ErrUpgradeNeeded)", err)
		}
		up, err := kvstore.UpgradeEtcd(ctx, cli, ns)
		if err != nil {
			t.Fatal(err)
		}
		if want := upgraded(w); up.Secrets != want.Secrets+1 {
			t.Errorf("second upgrade: got %v, want %v and the late secret", up, want)
		}
	})

	// Keys in the current layout but without its layout key are what an
	// interrupted upgrade left: they go.
	t.Run("InterruptedUpgrade", func(t *testing.T) {
		w := loadWant(t, "want-etcd.json")
		ns := loadEtcdFixture(t, cli, "etcd.json")
		if _, err := cli.Put(ctx, ns+"records/secrets/teams/zzz\x00STALE", "{}"); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		restore := kvstore.SetHookBeforeSwitch(cancel)
		_, err := kvstore.UpgradeEtcd(cctx, cli, ns)
		restore()
		if err == nil {
			t.Fatal("UpgradeEtcd cancelled before its last transaction: got no error")
		}
		if err := kvstore.CheckEtcd(ctx, cli, ns); !errors.Is(err, kvstore.ErrUpgradeNeeded) {
			t.Fatalf("after an interrupted upgrade: got %v, want the old layout still", err)
		}
		if up, err := kvstore.UpgradeEtcd(ctx, cli, ns); err != nil || up != upgraded(w) {
			t.Fatalf("upgrade after an interrupted one: %v, %v; want %v", up, err, upgraded(w))
		}
		s, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns)
		if err != nil {
			t.Fatal(err)
		}
		st := openKV(t, s)
		if _, err := st.Get(ctx, secretstore.Team("zzz"), "STALE"); errs.KindOf(err) != errs.KindNotFound {
			t.Errorf("a key an interrupted upgrade left: got %v, want it gone", err)
		}
	})

	// Two upgrades at once: one upgrades, the other then finds nothing to
	// do.
	t.Run("ConcurrentUpgrades", func(t *testing.T) {
		w := loadWant(t, "want-etcd.json")
		ns := loadEtcdFixture(t, cli, "etcd.json")
		var wg sync.WaitGroup
		ups := make([]kvstore.Upgrade, 2)
		errc := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { ups[i], errc[i] = kvstore.UpgradeEtcd(ctx, cli, ns) })
		}
		wg.Wait()
		if err := errors.Join(errc...); err != nil {
			t.Fatal(err)
		}
		if !(ups[0] == upgraded(w) && ups[1] == kvstore.Upgrade{} || ups[1] == upgraded(w) && ups[0] == kvstore.Upgrade{}) {
			t.Fatalf("two upgrades at once: got %v and %v, want one %v and one nothing", ups[0], ups[1], upgraded(w))
		}
		if keys := etcdDump(t, cli, ns); slices.ContainsFunc(mapsKeys(keys), func(k string) bool { return strings.HasPrefix(k, "upgrade-lock/") }) {
			t.Error("the upgrade lock is left behind")
		}
	})
}

func mapsKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// etcdDump returns every key under ns (without it) and its value.
func etcdDump(t *testing.T, cli *clientv3.Client, ns string) map[string]string {
	t.Helper()
	resp, err := cli.Get(ctx, ns, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range resp.Kvs {
		out[strings.TrimPrefix(string(e.Key), ns)] = string(e.Value)
	}
	return out
}
