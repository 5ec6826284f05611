package etcdstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/boltstore"
	"github.com/ozsecrets/oz/services/secretstore/etcdstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

var ctx = context.Background()

// TestEtcd runs every test of the package against one embedded etcd, each
// store under its own namespace.
func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	open := func(t *testing.T) *etcdstore.Store { return openAt(t, cli, etcdtest.Prefix()) }
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) secretstore.Store { return open(t) })
	})
	t.Run("SealingKeysConformance", func(t *testing.T) {
		storetest.RunSealingKeys(t, func(t *testing.T) sealing.Store { return open(t) })
	})
	t.Run("ReopenKeepsEverything", func(t *testing.T) { testReopen(t, cli) })
	t.Run("Layout", func(t *testing.T) { testLayout(t, cli) })
	t.Run("NoPlaintextStored", func(t *testing.T) { testNoPlaintext(t, cli) })
	t.Run("ReplicasCreateRace", func(t *testing.T) { testReplicasCreateRace(t, cli) })
	t.Run("ReplicasUpdateRace", func(t *testing.T) { testReplicasUpdateRace(t, cli) })
	t.Run("CopyFromAndToBolt", func(t *testing.T) { testBoltCopy(t, cli) })
	t.Run("Schema", func(t *testing.T) { testSchema(t, cli) })
	t.Run("Namespace", func(t *testing.T) { testNamespace(t, cli) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, cli) })
}

func openAt(t *testing.T, cli *clientv3.Client, ns string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(ctx, cli, ns)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
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

// testReopen: what one store wrote, another on the namespace (a restart,
// or another replica) reads, values included.
func testReopen(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	kr := newKeyring(t)
	s1, err := etcdstore.New(ctx, cli, ns)
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
	if _, err := s1.Get(ctx, secretstore.Team("acme"), "API_KEY"); err == nil {
		t.Error("Get after Close: got no error")
	}

	s2 := openAt(t, cli, ns)
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
	if n := len(pendingAll(t, s2)); n != 4 {
		t.Errorf("outbox after reopen: %d events, want 4 (3 creates, 1 update)", n)
	}
}

// testLayout: the keys are boltstore's buckets and keys under the
// namespace.
func testLayout(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	s := openAt(t, cli, ns)
	sec := storetest.NewSecret(secretstore.User("alice"), "My_Token")
	if err := s.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return []*sealing.Key{storetest.NewSealingKey("x25519-1")}, storetest.NewSealingEvent("sealing_key.create"), nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, ns, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	outbox := 0
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), ns)
		if rest, ok := strings.CutPrefix(k, "outbox/"); ok && len(rest) == 8 {
			outbox++
			continue
		}
		got[k] = true
	}
	for _, k := range []string{"secrets/users/alice\x00MY_TOKEN", "sealing_keys/x25519-1", "meta/schema", "outbox_meta/epoch", "outbox_meta/instance"} {
		if !got[k] {
			t.Errorf("no key %q under the namespace; got %v", k, got)
		}
	}
	if len(got) != 5 || outbox != 2 {
		t.Errorf("keys: got %v and %d outbox keys, want 5 and 2", got, outbox)
	}
	v, err := cli.Get(ctx, ns+"meta/schema")
	if err != nil || len(v.Kvs) != 1 || string(v.Kvs[0].Value) != "1" {
		t.Errorf("meta/schema: got %v, %v; want \"1\"", v, err)
	}
}

// testNoPlaintext writes, updates and deletes secrets holding a canary and
// then searches every value under the namespace.
func testNoPlaintext(t *testing.T, cli *clientv3.Client) {
	const canary = "CANARY-3c9e-plaintext-must-never-be-stored"
	ns := etcdtest.Prefix()
	svc := newService(t, openAt(t, cli, ns), newKeyring(t))
	for _, parent := range []string{"teams/acme", "users/me"} {
		if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: parent, SecretID: "SECRETA", Value: []byte(canary + "\nline 2")}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: parent + "/secrets/SECRETA", Value: []byte("v2 " + canary)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Delete(ctx, admin, secretstore.DeleteRequest{Name: "teams/acme/secrets/SECRETA"}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, ns, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, kv := range resp.Kvs {
		all.Write(kv.Key)
		all.Write(kv.Value)
	}
	for _, form := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), "CANARY-3c9e"} {
		if bytes.Contains(all.Bytes(), []byte(form)) {
			t.Errorf("etcd holds %q", form)
		}
	}
	if !bytes.Contains(all.Bytes(), []byte("SECRETA")) {
		t.Error("etcd does not hold the secret's name; is this the right namespace?")
	}
}

// testReplicasCreateRace: rounds of two replicas (stores on one namespace)
// creating names equal but for case at once: exactly one wins each round,
// and only the winner's event is stored.
func testReplicasCreateRace(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	stores := []*etcdstore.Store{openAt(t, cli, ns), openAt(t, cli, ns)}
	names := []string{"race_key", "RACE_KEY"}
	for round := range 20 {
		owner := secretstore.Team("acme")
		if round%2 == 1 {
			owner = secretstore.User("alice")
		}
		var wg sync.WaitGroup
		errc := make([]error, 2)
		for w := range 2 {
			wg.Go(func() {
				sec := storetest.NewSecret(owner, names[w])
				sec.Description = names[w]
				errc[w] = stores[w].Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec))
			})
		}
		wg.Wait()
		wins := 0
		for w, err := range errc {
			switch {
			case err == nil:
				wins++
			case errs.KindOf(err) != errs.KindAlreadyExists:
				t.Fatalf("round %d, replica %d: got %v, want success or AlreadyExists", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d replicas created the name, want 1", round, wins)
		}
		if err := stores[round%2].Delete(ctx, owner, namesOf(t, stores[0], owner)[0], func(sec *secretstore.Secret) (*auditv1.Event, error) {
			return storetest.NewEvent(audit.ActionSecretDelete, sec), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(pendingAll(t, stores[1])); n != 40 {
		t.Errorf("outbox: %d events, want 40 (20 creates, 20 deletes)", n)
	}
}

// testReplicasUpdateRace: replicas updating one secret at once lose no
// update: each adds to the description what it read.
func testReplicasUpdateRace(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	stores := []*etcdstore.Store{openAt(t, cli, ns), openAt(t, cli, ns), openAt(t, cli, ns)}
	sec := storetest.NewSecret(secretstore.Team("acme"), "COUNTER")
	if err := stores[0].Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	const each = 10
	var wg sync.WaitGroup
	for w := range stores {
		wg.Go(func() {
			for range each {
				_, err := stores[w].Update(ctx, sec.Owner, sec.Name, func(s *secretstore.Secret) (*auditv1.Event, error) {
					s.Description += "x"
					s.ValueVersion++
					return storetest.NewEvent(audit.ActionSecretUpdate, s), nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := stores[1].Get(ctx, sec.Owner, sec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(stores) * each; len(got.Description) != len(sec.Description)+want || got.ValueVersion != sec.ValueVersion+int64(want) {
		t.Errorf("after %d updates: description of %d, value version %d; want %d and %d", want, len(got.Description), got.ValueVersion, len(sec.Description)+want, sec.ValueVersion+int64(want))
	}
	if n := len(pendingAll(t, stores[2])); n != 1+len(stores)*each {
		t.Errorf("outbox: %d events, want %d", n, 1+len(stores)*each)
	}
}

func namesOf(t *testing.T, s secretstore.Store, o secretstore.Owner) []string {
	t.Helper()
	secs, err := s.List(ctx, o, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sec := range secs {
		out = append(out, sec.Name)
	}
	return out
}

func pendingAll(t *testing.T, s secretstore.Store) []*auditv1.Event {
	t.Helper()
	evs, err := s.Outbox().Pending(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// boltToEtcd copies every key of every bucket of the bbolt file at path to
// <ns><bucket>/<key> in etcd: the generic copy the layouts are made for.
func boltToEtcd(t *testing.T, path string, cli *clientv3.Client, ns string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				_, err := cli.Put(ctx, ns+string(name)+"/"+string(k), string(v))
				return err
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// etcdToBolt copies every key under ns to a new bbolt file at path, the
// first path element after ns naming the bucket.
func etcdToBolt(t *testing.T, cli *clientv3.Client, ns, path string) {
	t.Helper()
	resp, err := cli.Get(ctx, ns, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, kv := range resp.Kvs {
			bucket, key, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), ns), "/")
			if !ok {
				return errors.New("a key outside any bucket: " + string(kv.Key))
			}
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is what a store holds: every secret, every sealing key, every
// waiting event.
type snapshot struct {
	secrets []*secretstore.Secret
	keys    map[string]*sealing.Key
	events  []*auditv1.Event
}

type fullStore interface {
	secretstore.Store
	secretstore.Scanner
	sealing.Store
}

func snap(t *testing.T, s fullStore) snapshot {
	t.Helper()
	secs, err := s.Scan(ctx, secretstore.Owner{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := snapshot{secrets: secs, keys: map[string]*sealing.Key{}, events: pendingAll(t, s)}
	for _, k := range keys {
		out.keys[k.ID] = k
	}
	return out
}

func compare(t *testing.T, what string, got, want snapshot) {
	t.Helper()
	if len(got.secrets) != len(want.secrets) {
		t.Fatalf("%s: %d secrets, want %d", what, len(got.secrets), len(want.secrets))
	}
	for i := range got.secrets {
		if d := storetest.Diff(got.secrets[i], want.secrets[i]); d != "" {
			t.Errorf("%s: secret %d: %s", what, i, d)
		}
	}
	if len(got.keys) != len(want.keys) {
		t.Errorf("%s: %d sealing keys, want %d", what, len(got.keys), len(want.keys))
	}
	for id, w := range want.keys {
		if d := storetest.SealingKeyDiff(got.keys[id], w); got.keys[id] == nil || d != "" {
			t.Errorf("%s: sealing key %s: %s", what, id, d)
		}
	}
	if len(got.events) != len(want.events) {
		t.Fatalf("%s: %d events, want %d", what, len(got.events), len(want.events))
	}
	for i := range got.events {
		if !proto.Equal(got.events[i], want.events[i]) {
			t.Errorf("%s: event %d: got %v, want %v", what, i, got.events[i], want.events[i])
		}
	}
}

// testBoltCopy: a bbolt store copied key for key into etcd is the same
// store there (secrets, sealing keys, waiting events with their ids), and
// back again, with what the etcd store added meanwhile.
func testBoltCopy(t *testing.T, cli *clientv3.Client) {
	dir := t.TempDir()
	kr := newKeyring(t)
	bs, err := boltstore.Open(filepath.Join(dir, "from.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, bs, kr)
	for _, req := range []secretstore.CreateRequest{
		{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte("v-api"), Description: "the API key"},
		{Parent: "teams/acme", SecretID: "db_password", Value: []byte("v-db")},
		{Parent: "users/me", SecretID: "MY_TOKEN", Value: []byte("v-mine")},
	} {
		if _, err := svc.Create(ctx, admin, req); err != nil {
			t.Fatal(err)
		}
	}
	sealer := sealing.NewService(sealing.Config{Store: bs, Keyring: kr})
	if _, err := sealer.Init(ctx); err != nil {
		t.Fatal(err)
	}
	fromBolt := snap(t, bs)
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}

	ns := etcdtest.Prefix()
	boltToEtcd(t, filepath.Join(dir, "from.db"), cli, ns)
	es := openAt(t, cli, ns)
	compare(t, "bbolt copied to etcd", snap(t, es), fromBolt)
	svc = newService(t, es, kr)
	if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte("x")}); errs.KindOf(err) != errs.KindAlreadyExists {
		t.Errorf("Create of a copied name in etcd: got %v, want AlreadyExists", err)
	}
	if _, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: "teams/acme/secrets/db_password", Value: []byte("v-db-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: "teams/beta-team", SecretID: "NEW", Value: []byte("v-new")}); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("Create as a non-member: got %v, want PermissionDenied", err)
	}
	vals, _, err := svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"API_KEY", "db_password"})
	if err != nil || len(vals) != 2 || string(vals[0].Value.Bytes()) != "v-api" || string(vals[1].Value.Bytes()) != "v-db-2" {
		t.Fatalf("values in etcd: %v", err)
	}
	fromEtcd := snap(t, es)
	if n := len(fromEtcd.events); n <= len(fromBolt.events) {
		t.Fatalf("etcd outbox: %d events, want more than the %d copied", n, len(fromBolt.events))
	}

	back := filepath.Join(dir, "back.db")
	etcdToBolt(t, cli, ns, back)
	bs2, err := boltstore.Open(back, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bs2.Close()
	compare(t, "etcd copied to bbolt", snap(t, bs2), fromEtcd)
	if err := bs2.Check(); err != nil {
		t.Fatal(err)
	}
}

func testSchema(t *testing.T, cli *clientv3.Client) {
	ns := etcdtest.Prefix()
	if _, err := cli.Put(ctx, ns+"meta/schema", "99"); err != nil {
		t.Fatal(err)
	}
	if s, err := etcdstore.New(ctx, cli, ns); err == nil || !strings.Contains(err.Error(), "schema") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("New on a namespace of schema 99: got %v, want a schema error", err)
	}
}

// testNamespace: stores under two namespaces see nothing of each other.
func testNamespace(t *testing.T, cli *clientv3.Client) {
	a, b := openAt(t, cli, etcdtest.Prefix()), openAt(t, cli, etcdtest.Prefix())
	sec := storetest.NewSecret(secretstore.Team("acme"), "A")
	if err := a.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, sec.Owner, sec.Name); errs.KindOf(err) != errs.KindNotFound {
		t.Errorf("Get in another namespace: got %v, want NotFound", err)
	}
	if n := len(pendingAll(t, b)); n != 0 {
		t.Errorf("outbox of another namespace: %d events, want 0", n)
	}
	if _, err := etcdstore.New(ctx, cli, "/no-slash"); err == nil {
		t.Error("New with a namespace not ending in /: got no error")
	}
}

func testClosed(t *testing.T, cli *clientv3.Client) {
	s, err := etcdstore.New(ctx, cli, etcdtest.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sec := storetest.NewSecret(secretstore.Team("acme"), "A")
	if err := s.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err == nil {
		t.Error("Create after Close: got no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
