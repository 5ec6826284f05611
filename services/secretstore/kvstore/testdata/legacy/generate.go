//go:build ignore

// generate writes the fixtures of the upgrade tests (upgrade_test.go): a
// bbolt file and etcd namespaces written by the secretstore's stores as
// they were before the secretstore stood on kv.Store (packages
// secretstore/boltstore and secretstore/etcdstore, removed since), with
// what each holds in want-*.json. It ran once, at commit 5665b8f, from
// services/:
//
//	go run ./secretstore/kvstore/testdata/legacy/generate.go
//
// It no longer builds (it imports those packages) and is kept as the
// record of how the fixtures were made. Every value is a made-up test
// value, sealed under the test keyring keyring.json.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/storecopy"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/boltstore"
	"github.com/ozsecrets/oz/services/secretstore/etcdstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

const dir = "secretstore/kvstore/testdata/legacy"

// Want is what a fixture holds, as the new store must show it.
type Want struct {
	Secrets     []WantSecret     `json:"secrets"`
	SealingKeys []WantSealingKey `json:"sealing_keys"`
	Events      []WantEvent      `json:"events"` // undelivered, oldest first
}

type WantSecret struct {
	Owner, Name, Description string
	ValueVersion             int64
	Etag, KEKID              string
	Value                    string // the plaintext (a test value)
}

type WantSealingKey struct {
	ID      string
	KEMID   uint16
	Current bool
}

type WantEvent struct{ ID, Action, Resource string }

// Entry is one key of an etcd dump, relative to the namespace.
type Entry struct {
	Key   string `json:"key"`   // base64
	Value string `json:"value"` // base64
}

type store interface {
	secretstore.Store
	sealing.Store
}

var (
	admin = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice",
		Teams: map[string]auth.Role{"acme": auth.RoleAdmin, "acme-2": auth.RoleAdmin}}
	bob = &auth.Principal{Kind: auth.KindUser, Name: "users/bob", ID: "bob", Teams: map[string]auth.Role{"acme": auth.RoleMember}}
	t0  = time.Date(2025, 11, 12, 13, 14, 15, 0, time.UTC)
)

func value(parent, name string, version int) string {
	return fmt.Sprintf("test value of %s/secrets/%s v%d", parent, name, version)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// write makes the history every fixture holds: sealing keys made and
// rotated, secrets under two key-encryption keys (k1, then k2), an update
// and a delete, a refused request, and the first three events delivered.
// second, when not nil, is another replica of the store (etcd), which
// creates one secret.
func write(s store, second secretstore.Store) *keyring.Keyring {
	ctx := context.Background()
	kr, err := keyring.Generate()
	must(err)
	now := t0
	clock := func() time.Time { now = now.Add(time.Second); return now }
	seal := sealing.NewService(sealing.Config{Store: s, Keyring: kr, Grace: 24 * time.Hour, Now: clock})
	_, err = seal.Init(ctx)
	must(err)
	svc := secretstore.NewService(secretstore.Config{Store: s, Keyring: kr, Now: clock})
	create := func(svc *secretstore.Service, p *auth.Principal, parent, name, desc string) {
		_, err := svc.Create(ctx, p, secretstore.CreateRequest{Parent: parent, SecretID: name, Value: []byte(value(parent, name, 1)), Description: desc})
		must(err)
	}
	create(svc, admin, "teams/acme", "API_KEY", "the API key")
	create(svc, admin, "teams/acme", "db_password", "")
	create(svc, admin, "teams/acme-2", "API_KEY", "acme-2's")
	create(svc, admin, "users/alice", "API_KEY", "alice's own")

	_, err = kr.Rotate() // k2
	must(err)
	svc = secretstore.NewService(secretstore.Config{Store: s, Keyring: kr, Now: clock})
	create(svc, admin, "teams/acme", "Z_LAST", "multi\nline ✓")
	create(svc, admin, "users/alice", "PERSONAL", "")
	create(svc, admin, "teams/acme", "TEMP", "deleted below")
	_, err = svc.Update(ctx, admin, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY",
		Value: []byte(value("teams/acme", "API_KEY", 2)), Description: "the API key, rotated"})
	must(err)
	must(svc.Delete(ctx, admin, secretstore.DeleteRequest{Name: "teams/acme/secrets/TEMP"}))
	if second != nil {
		svc2 := secretstore.NewService(secretstore.Config{Store: second, Keyring: kr, Now: clock})
		create(svc2, bob, "users/bob", "BOB_ONLY", "from the second replica")
	}
	_, err = seal.Rotate(ctx, "users/root")
	must(err)
	must(svc.RecordDenied(auth.WithPrincipal(ctx, bob), secretstore.DeniedRequest{
		Method: "/oz.secrets.v1.SecretService/CreateSecret", Code: "PERMISSION_DENIED",
		Reason: "only admins of acme may create its secrets", Resource: "teams/acme",
	}))
	evs, err := s.Outbox().Pending(ctx, 3)
	must(err)
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetId()
	}
	must(s.Outbox().Ack(ctx, ids))
	return kr
}

// want reads back what s holds.
func want(s store, kr *keyring.Keyring) Want {
	ctx := context.Background()
	var w Want
	for _, o := range []secretstore.Owner{secretstore.Team("acme"), secretstore.Team("acme-2"), secretstore.User("alice"), secretstore.User("bob")} {
		secs, err := s.List(ctx, o, "", 100)
		must(err)
		for _, sec := range secs {
			v, err := kr.Open(sec.Value, secretstore.ValueAD(sec.Owner, sec.Name, sec.ValueVersion))
			must(err)
			w.Secrets = append(w.Secrets, WantSecret{Owner: o.String(), Name: sec.Name, Description: sec.Description,
				ValueVersion: sec.ValueVersion, Etag: sec.Etag, KEKID: sec.Value.KEKID, Value: string(v)})
		}
	}
	keys, err := s.SealingKeys(ctx)
	must(err)
	for _, k := range keys {
		w.SealingKeys = append(w.SealingKeys, WantSealingKey{ID: k.ID, KEMID: k.KEMID, Current: k.Current()})
	}
	slices.SortFunc(w.SealingKeys, func(a, b WantSealingKey) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	evs, err := s.Outbox().Pending(ctx, 1000)
	must(err)
	for _, ev := range evs {
		w.Events = append(w.Events, WantEvent{ID: ev.GetId(), Action: ev.GetAction(), Resource: ev.GetResource()})
	}
	return w
}

func writeJSON(name string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644))
}

func dump(cli *clientv3.Client, ns string) []Entry {
	resp, err := cli.Get(context.Background(), ns, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	must(err)
	var out []Entry
	for _, kv := range resp.Kvs {
		out = append(out, Entry{Key: base64.StdEncoding.EncodeToString(kv.Key[len(ns):]), Value: base64.StdEncoding.EncodeToString(kv.Value)})
	}
	return out
}

func main() {
	ctx := context.Background()

	// bbolt.
	path := filepath.Join(dir, "secretstore.db")
	must(os.RemoveAll(path))
	bs, err := boltstore.Open(path, nil)
	must(err)
	kr := write(bs, nil)
	writeJSON("want-bolt.json", want(bs, kr))
	must(bs.Check())
	must(bs.Close())
	must(kr.Save(filepath.Join(dir, "keyring-bolt.json")))

	// etcd: two replicas of the store on one namespace.
	tmp, err := os.MkdirTemp("", "legacy-etcd")
	must(err)
	defer os.RemoveAll(tmp)
	cluster, err := etcdtest.New(etcdtest.Config{Members: 1, Dir: tmp})
	must(err)
	defer cluster.Close()
	cli, err := clientv3.New(cluster.Config())
	must(err)
	defer cli.Close()
	const ns = "/oz/secretstore/"
	es, err := etcdstore.New(ctx, cli, ns)
	must(err)
	es2, err := etcdstore.New(ctx, cli, ns)
	must(err)
	kr = write(es, es2)
	writeJSON("want-etcd.json", want(es, kr))
	writeJSON("etcd.json", dump(cli, ns))
	must(kr.Save(filepath.Join(dir, "keyring-etcd.json")))

	// etcd: the bbolt file copied by ozmigrate (storecopy), whose outbox
	// records hold no ids.
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	must(err)
	const ns2 = "/copied/"
	_, err = storecopy.BoltToEtcd(ctx, db, cli, ns2)
	must(err)
	must(db.Close())
	writeJSON("etcd-from-bolt.json", dump(cli, ns2))
	fmt.Println("fixtures written to", dir)
}
