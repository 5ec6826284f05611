package kvstore_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/storecopy"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

// snapshot is what a store holds: every secret, every sealing key, every
// waiting event.
type snapshot struct {
	secrets []*secretstore.Secret
	keys    []*sealing.Key
	events  []*auditv1.Event
}

func snap(t *testing.T, s *kvstore.Store) snapshot {
	t.Helper()
	secs, err := s.Scan(ctx, secretstore.Owner{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.SealingKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{secrets: secs, keys: keys, events: pendingAll(t, s)}
}

func compare(t *testing.T, what string, got, want snapshot) {
	t.Helper()
	if len(got.secrets) != len(want.secrets) || len(got.keys) != len(want.keys) || len(got.events) != len(want.events) {
		t.Fatalf("%s: %d secrets, %d sealing keys, %d events; want %d, %d, %d", what,
			len(got.secrets), len(got.keys), len(got.events), len(want.secrets), len(want.keys), len(want.events))
	}
	for i := range got.secrets {
		if d := storetest.Diff(got.secrets[i], want.secrets[i]); d != "" {
			t.Errorf("%s: secret %d: %s", what, i, d)
		}
	}
	for i := range got.keys {
		if d := storetest.SealingKeyDiff(got.keys[i], want.keys[i]); d != "" {
			t.Errorf("%s: sealing key %d: %s", what, i, d)
		}
	}
	for i := range got.events {
		if !proto.Equal(got.events[i], want.events[i]) {
			t.Errorf("%s: event %d: got %v, want %v", what, i, got.events[i], want.events[i])
		}
	}
}

// TestCopyBetweenStores: a bbolt file copied into etcd as ozmigrate copies
// it (storecopy, bucket B key K to <namespace>B/K) is the same store there
// — secrets, sealing keys, waiting events with their ids — and back again
// into a new file, with what was written in etcd meanwhile.
func TestCopyBetweenStores(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dir := t.TempDir()
	from := filepath.Join(dir, "from.db")
	bs, err := kvstore.OpenBolt(ctx, from, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t)
	svc := newService(bs, kr)
	for _, req := range []secretstore.CreateRequest{
		{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte("v-api"), Description: "the API key"},
		{Parent: "teams/acme", SecretID: "db_password", Value: []byte("v-db")},
		{Parent: "users/me", SecretID: "MY_TOKEN", Value: []byte("v-mine")},
	} {
		if _, err := svc.Create(ctx, admin, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sealing.NewService(sealing.Config{Store: bs, Keyring: kr}).Init(ctx); err != nil {
		t.Fatal(err)
	}
	fromBolt := snap(t, bs)
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(from, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ns := etcdtest.Prefix()
	_, err = storecopy.BoltToEtcd(ctx, db, cli, ns)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns)
	if err != nil {
		t.Fatal(err)
	}
	es := openKV(t, raw)
	compare(t, "bbolt copied to etcd", snap(t, es), fromBolt)
	svc = newService(es, kr)
	if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte("x")}); errs.KindOf(err) != errs.KindAlreadyExists {
		t.Errorf("Create of a copied name in etcd: got %v, want AlreadyExists", err)
	}
	if _, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: "teams/acme/secrets/db_password", Value: []byte("v-db-2")}); err != nil {
		t.Fatal(err)
	}
	vals, _, err := svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"API_KEY", "db_password"})
	if err != nil || len(vals) != 2 || string(vals[0].Value.Bytes()) != "v-api" || string(vals[1].Value.Bytes()) != "v-db-2" {
		t.Fatalf("values in etcd: %v", err)
	}
	fromEtcd := snap(t, es)

	// Back, as ozmigrate copies into a new file.
	back := filepath.Join(dir, "back.db")
	db, err = bolt.Open(back, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = storecopy.EtcdToBolt(ctx, cli, ns, db)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	bs2, err := kvstore.OpenBolt(ctx, back, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "etcd copied to bbolt", snap(t, bs2), fromEtcd)
	bs2.Close()
	if err := kvstore.CheckBolt(back, time.Second); err != nil {
		t.Fatal(err)
	}
}
