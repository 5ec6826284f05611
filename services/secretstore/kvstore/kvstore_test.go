package kvstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	storagev1 "github.com/ozsecrets/oz/proto/gen/oz/storage/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

var ctx = context.Background()

// A place is where one store's records live (a bbolt file, an etcd
// namespace); each call of open opens a kv.Store on it, which the caller
// closes. raw returns every key and value there, as stored, for the tests
// that look for what must not be stored.
type place struct {
	open func(t *testing.T) kv.Store
	raw  func(t *testing.T) []byte
}

// A backend makes places: new empty ones, each time.
type backend struct {
	name     string
	newPlace func(t *testing.T) place
}

func boltBackend() backend {
	return backend{name: "bolt", newPlace: func(t *testing.T) place {
		path := filepath.Join(t.TempDir(), "secretstore.db")
		t.Cleanup(func() { checkBolt(t, path) })
		return place{
			open: func(t *testing.T) kv.Store {
				t.Helper()
				s, _, err := kvstore.OpenBoltKV(path, time.Second)
				if err != nil {
					t.Fatalf("OpenBoltKV: %v", err)
				}
				return s
			},
			raw: func(t *testing.T) []byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
		}
	}}
}

// checkBolt runs bbolt's consistency check on the file at path, once it is
// closed (cleanups run last first: after those closing the stores).
func checkBolt(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("open %s for the consistency check: %v", path, err)
		return
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("consistency check of %s: %v", path, err)
		}
		return nil
	})
}

func etcdBackend(cli *clientv3.Client) backend {
	return backend{name: "etcd", newPlace: func(t *testing.T) place {
		ns := etcdtest.Prefix()
		return place{
			open: func(t *testing.T) kv.Store {
				t.Helper()
				s, err := etcdkv.New(ctx, cli, ns)
				if err != nil {
					t.Fatalf("etcdkv.New: %v", err)
				}
				return s
			},
			raw: func(t *testing.T) []byte {
				resp, err := cli.Get(ctx, ns, clientv3.WithPrefix())
				if err != nil {
					t.Fatal(err)
				}
				var all bytes.Buffer
				for _, e := range resp.Kvs {
					all.Write(e.Key)
					all.Write(e.Value)
				}
				return all.Bytes()
			},
		}
	}}
}

// openOn opens the records on a new kv.Store of p, closed at cleanup.
func openOn(t *testing.T, p place) *kvstore.Store {
	t.Helper()
	return openKV(t, p.open(t))
}

// openKV opens the records on s, closed (once) at cleanup.
func openKV(t *testing.T, s kv.Store) *kvstore.Store {
	t.Helper()
	st, err := kvstore.Open(ctx, s)
	if err != nil {
		s.Close()
		t.Fatalf("Open: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { st.Close() }) })
	return st
}

func TestBolt(t *testing.T) { runAll(t, boltBackend()) }

func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	b := etcdBackend(cli)
	runAll(t, b)
	t.Run("ReplicasCreateRace", func(t *testing.T) { testReplicasCreateRace(t, b) })
	t.Run("ReplicasUpdateRace", func(t *testing.T) { testReplicasUpdateRace(t, b) })
	t.Run("Schema", func(t *testing.T) {
		ns := etcdtest.Prefix()
		if _, err := cli.Put(ctx, ns+"meta/schema", "99"); err != nil {
			t.Fatal(err)
		}
		if _, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Fatalf("OpenEtcdKV of a namespace of schema 99: got %v, want a schema error", err)
		}
	})
}

// runAll runs the tests every backend passes.
func runAll(t *testing.T, b backend) {
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) secretstore.Store { return openOn(t, b.newPlace(t)) })
	})
	t.Run("SealingKeysConformance", func(t *testing.T) {
		storetest.RunSealingKeys(t, func(t *testing.T) sealing.Store { return openOn(t, b.newPlace(t)) })
	})
	t.Run("InstrumentedConformance", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider()
		t.Cleanup(func() { _ = tp.Shutdown(ctx) })
		storetest.Run(t, func(t *testing.T) secretstore.Store {
			return openKV(t, kv.Instrument(b.newPlace(t).open(t), tp, storemetrics.New(nil, "secretstore", b.name)))
		})
	})
	t.Run("ReopenKeepsEverything", func(t *testing.T) { testReopen(t, b) })
	t.Run("Layout", func(t *testing.T) { testLayout(t, b) })
	t.Run("NoPlaintextStored", func(t *testing.T) { testNoPlaintext(t, b) })
	t.Run("RecordsProtobufJSONStillRead", func(t *testing.T) { testRecordFormats(t, b) })
	t.Run("Idempotency", func(t *testing.T) {
		storetest.RunIdempotency(t, func(t *testing.T) secretstore.Store { return openOn(t, b.newPlace(t)) })
	})
	t.Run("IdempotencyRecordsHoldNoValue", func(t *testing.T) { testIdempotencyNoValue(t, b) })
	t.Run("ClaimsTheStore", func(t *testing.T) { testClaim(t, b) })
	t.Run("ListOwnersIsOneSnapshot", func(t *testing.T) { testListOwnersSnapshot(t, b) })
	t.Run("Spans", func(t *testing.T) { testSpans(t, b) })
}

var (
	admin = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	clock = func() time.Time { return time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC) }
)

func newService(s secretstore.Store, kr *keyring.Keyring) *secretstore.Service {
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

func pendingAll(t *testing.T, s secretstore.Store) []*auditv1.Event {
	t.Helper()
	evs, err := s.Outbox().Pending(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// testReopen: what one store wrote, another on the same place (a restart,
// or another replica) reads, values and waiting events included.
func testReopen(t *testing.T, b backend) {
	p := b.newPlace(t)
	kr := newKeyring(t)
	s1, err := kvstore.Open(ctx, p.open(t))
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(s1, kr)
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

	s2 := openOn(t, p)
	svc = newService(s2, kr)
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
	if n := len(pendingAll(t, s2)); n != 4 {
		t.Errorf("outbox after reopen: %d events, want 4 (3 creates, 1 update)", n)
	}
	// And the sealing keys.
	k := storetest.NewSealingKey("x25519-1")
	k.RetireTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s2.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return []*sealing.Key{k}, storetest.NewSealingEvent("sealing_key.create"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := openOn(t, p).SealingKey(ctx, "x25519-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.SealingKeyDiff(got, k); d != "" {
		t.Fatalf("sealing key after reopening: %s", d)
	}
}

// testLayout: the keys are the documented ones.
func testLayout(t *testing.T, b backend) {
	p := b.newPlace(t)
	raw := p.open(t)
	s := openKV(t, raw)
	sec := storetest.NewSecret(secretstore.User("alice"), "My_Token")
	if err := s.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSealingKeys(ctx, func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error) {
		return []*sealing.Key{storetest.NewSealingKey("x25519-1")}, storetest.NewSealingEvent("sealing_key.create"), nil
	}); err != nil {
		t.Fatal(err)
	}
	kvs, err := raw.Scan(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	outbox := 0
	for _, e := range kvs {
		if strings.HasPrefix(e.Key, "outbox/") {
			outbox++
			continue
		}
		keys = append(keys, e.Key)
	}
	want := []string{"layout", "sealing_keys/x25519-1", "sealing_keys_version", "secrets/users/alice\x00MY_TOKEN"}
	if !slices.Equal(keys, want) || outbox != 2 {
		t.Errorf("keys: got %q and %d outbox keys, want %q and 2", keys, outbox, want)
	}
	if v, _ := raw.Get(ctx, "layout"); string(v) != "oz.secretstore.v2" {
		t.Errorf("layout: got %q", v)
	}
}

// testNoPlaintext writes, updates and deletes secrets holding a canary and
// then searches every byte stored (on bbolt, the whole file, free pages
// included).
func testNoPlaintext(t *testing.T, b backend) {
	const canary = "CANARY-7d1f0c2e-plaintext-must-never-be-stored"
	p := b.newPlace(t)
	s, err := kvstore.Open(ctx, p.open(t))
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(s, newKeyring(t))
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
	raw := p.raw(t)
	for _, form := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), "CANARY-7d1f0c2e"} {
		if bytes.Contains(raw, []byte(form)) {
			t.Errorf("the store holds %q", form)
		}
	}
	if !bytes.Contains(raw, []byte("SECRETA")) {
		t.Error("the store does not hold the secret's name; is this the right place?")
	}
}

// testIdempotencyNoValue: the records of writes sent with an idempotency
// key hold no value in any form, and their fingerprints are no plain hash
// of it (a guess could be checked against one).
func testIdempotencyNoValue(t *testing.T, b backend) {
	const canary = "CANARY-5e0a77d3-idempotent"
	p := b.newPlace(t)
	raw := p.open(t)
	s, err := kvstore.Open(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(s, newKeyring(t))
	for i, parent := range []string{"teams/acme", "users/me"} {
		name := "SECRET" + string(rune('A'+i))
		if _, err := svc.Create(ctx, admin, secretstore.CreateRequest{Parent: parent, SecretID: name, Value: []byte(canary), IdempotencyKey: "create-" + name}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Update(ctx, admin, secretstore.UpdateRequest{Name: parent + "/secrets/" + name, Value: []byte(canary + "2"), IdempotencyKey: "update-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := raw.Scan(ctx, idempotency.Prefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("idempotency records: got %d, want 4 (two creates, two updates)", len(recs))
	}
	var digests [][]byte
	for _, v := range []string{canary, canary + "2"} {
		sum := sha256.Sum256([]byte(v))
		digests = append(digests, sum[:], []byte(hex.EncodeToString(sum[:])), []byte(base64.StdEncoding.EncodeToString(sum[:])))
	}
	for _, r := range recs {
		var rec struct {
			Fingerprint []byte `json:"fingerprint"`
		}
		if err := json.Unmarshal(r.Value, &rec); err != nil || len(rec.Fingerprint) == 0 {
			t.Fatalf("record %s: %v, no fingerprint", r.Key, err)
		}
		for _, d := range digests[:1] {
			if bytes.Equal(rec.Fingerprint, d) {
				t.Errorf("record %s: the fingerprint is the SHA-256 of the value", r.Key)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	all := p.raw(t)
	for _, form := range [][]byte{[]byte(canary), []byte(base64.StdEncoding.EncodeToString([]byte(canary))), []byte(hex.EncodeToString([]byte(canary))), []byte("CANARY-5e0a77d3")} {
		if bytes.Contains(all, form) {
			t.Errorf("the store holds %q", form)
		}
	}
	for _, d := range digests {
		if bytes.Contains(all, d) {
			t.Errorf("the store holds a SHA-256 of a value (%x)", d)
		}
	}
}

// testClaim: Open claims an empty store for the secretstore, and refuses
// one holding another service's records or another layout.
func testClaim(t *testing.T, b backend) {
	t.Run("Foreign", func(t *testing.T) {
		s := b.newPlace(t).open(t)
		defer s.Close()
		if err := s.Apply(ctx, nil, []kv.Write{kv.Put("teams/acme", []byte(`{"id":"acme"}`))}); err != nil {
			t.Fatal(err)
		}
		if _, err := kvstore.Open(ctx, s); err == nil || !strings.Contains(err.Error(), "another service") {
			t.Fatalf("Open of a store of other records: got %v, want an error naming another service", err)
		}
	})
	t.Run("OtherLayout", func(t *testing.T) {
		s := b.newPlace(t).open(t)
		defer s.Close()
		if err := s.Apply(ctx, nil, []kv.Write{kv.Put("layout", []byte("oz.secretstore.v3"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := kvstore.Open(ctx, s); err == nil || !strings.Contains(err.Error(), "oz.secretstore.v3") {
			t.Fatalf("Open of a store of another layout: got %v, want an error naming it", err)
		}
	})
	t.Run("ConcurrentFirstOpens", func(t *testing.T) {
		s := b.newPlace(t).open(t)
		defer s.Close()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := kvstore.Open(ctx, s); err != nil {
					t.Errorf("Open: %v", err)
				}
			})
		}
		wg.Wait()
	})
}

// countingStore is a kv.Store that counts its reads.
type countingStore struct {
	kv.Store
	scans, prefixScans atomic.Int32
}

func (c *countingStore) Scan(ctx context.Context, prefix, after string, limit int) ([]kv.KV, error) {
	c.scans.Add(1)
	return c.Store.Scan(ctx, prefix, after, limit)
}

func (c *countingStore) ScanPrefixes(ctx context.Context, prefixes []string) ([][]kv.KV, error) {
	c.prefixScans.Add(1)
	return c.Store.ScanPrefixes(ctx, prefixes)
}

// testListOwnersSnapshot: ListOwners reads every owner in one
// ScanPrefixes, the kv.Store's one snapshot of several ranges (kvtest
// holds it to that), so a write to one owner between the reads of two is
// impossible; and it reads each owner whole, in the order given.
func testListOwnersSnapshot(t *testing.T, b backend) {
	c := &countingStore{Store: b.newPlace(t).open(t)}
	s := openKV(t, c)
	alice, acme := secretstore.User("alice"), secretstore.Team("acme")
	for _, sec := range []*secretstore.Secret{storetest.NewSecret(alice, "A"), storetest.NewSecret(acme, "B"), storetest.NewSecret(acme, "A")} {
		if err := s.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
			t.Fatal(err)
		}
	}
	c.scans.Store(0)
	got, err := s.ListOwners(ctx, []secretstore.Owner{alice, acme})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sec := range got {
		names = append(names, sec.Owner.String()+"/"+sec.Name)
	}
	if want := []string{"users/alice/A", "teams/acme/A", "teams/acme/B"}; !slices.Equal(names, want) {
		t.Errorf("ListOwners: got %v, want %v", names, want)
	}
	if n, p := c.scans.Load(), c.prefixScans.Load(); n != 0 || p != 1 {
		t.Errorf("ListOwners made %d Scans and %d ScanPrefixes, want one ScanPrefixes", n, p)
	}
}

// testSpans: under kv.Instrument, a Create within a traced request is a
// store.Apply span of the request, holding counts only.
func testSpans(t *testing.T, b backend) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := openKV(t, kv.Instrument(b.newPlace(t).open(t), tp, nil))
	rctx, req := tp.Tracer("test").Start(ctx, "request")
	sec := storetest.NewSecret(secretstore.Team("acme"), "SPAN_SECRET_NAME")
	if err := s.Create(rctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	req.End()
	var found bool
	for _, sp := range rec.Ended() {
		if sp.Name() == "store.Apply" && sp.Parent().SpanID() == req.SpanContext().SpanID() {
			found = true
		}
		for _, a := range sp.Attributes() {
			if strings.Contains(a.Value.Emit(), "SPAN_SECRET") || strings.Contains(a.Value.Emit(), "ciphertext") {
				t.Errorf("span %s holds %s=%s", sp.Name(), a.Key, a.Value.Emit())
			}
		}
	}
	if !found {
		t.Fatal("no store.Apply span under the request")
	}
}

// testReplicasCreateRace: rounds of two replicas (stores on one place)
// creating names equal but for case at once: exactly one wins each round,
// and only the winner's event is stored.
func testReplicasCreateRace(t *testing.T, b backend) {
	p := b.newPlace(t)
	stores := []*kvstore.Store{openOn(t, p), openOn(t, p)}
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
		secs, err := stores[0].List(ctx, owner, "", 10)
		if err != nil || len(secs) != 1 {
			t.Fatalf("List: %d secrets, %v", len(secs), err)
		}
		if err := stores[round%2].Delete(ctx, owner, secs[0].Name, func(sec *secretstore.Secret) (*auditv1.Event, error) {
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
// update.
func testReplicasUpdateRace(t *testing.T, b backend) {
	p := b.newPlace(t)
	stores := []*kvstore.Store{openOn(t, p), openOn(t, p), openOn(t, p)}
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

func TestBoltOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secretstore.db")
	s, _, err := kvstore.OpenBoltKV(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, _, err = kvstore.OpenBoltKV(path, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), "ozsecretstored") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: got %v, want it to say the file is locked, naming the file and ozsecretstored", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v; the timeout was not applied", d)
	}
}

func TestBoltFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secretstore.db")
	s, _, err := kvstore.OpenBoltKV(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode of the database file: got %v, want 0600", got)
	}
}

func TestBoltUnknownSchemaRefused(t *testing.T) {
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
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, _, err := kvstore.OpenBoltKV(path, time.Second); err == nil {
		s.Close()
		t.Fatal("Open of a file with an unknown schema version: got no error")
	}
}

// TestEtcdNamespaces: stores under two namespaces see nothing of each
// other; a namespace must end in "/"; a closed store refuses calls.
func TestEtcdNamespaces(t *testing.T) {
	srv := etcdtest.Start(t)
	b := etcdBackend(srv.Client(t))
	a, c := openOn(t, b.newPlace(t)), openOn(t, b.newPlace(t))
	sec := storetest.NewSecret(secretstore.Team("acme"), "A")
	if err := a.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, sec.Owner, sec.Name); errs.KindOf(err) != errs.KindNotFound {
		t.Errorf("Get in another namespace: got %v, want NotFound", err)
	}
	if n := len(pendingAll(t, c)); n != 0 {
		t.Errorf("outbox of another namespace: %d events, want 0", n)
	}
	if _, err := kvstore.OpenEtcdKV(ctx, srv.Config(), "/no-slash"); err == nil {
		t.Error("OpenEtcdKV with a namespace not ending in /: got no error")
	}
	s, err := kvstore.OpenEtcdKV(ctx, srv.Config(), etcdtest.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	st, err := kvstore.Open(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, sec, storetest.NewEvent(audit.ActionSecretCreate, sec)); err == nil {
		t.Error("Create after Close: got no error")
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := kvstore.OpenEtcdKV(dctx, clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second},
		etcdtest.Prefix()); err == nil || errors.Is(err, kvstore.ErrUpgradeNeeded) {
		t.Errorf("OpenEtcdKV of an etcd that does not answer: got %v", err)
	}
}

// testRecordFormats: a secret is stored as a protobuf record; one stored
// as JSON (every store written before) reads the same, unbound, and is
// protobuf once it changes.
func testRecordFormats(t *testing.T, b backend) {
	raw := b.newPlace(t).open(t)
	s := openKV(t, raw)
	isProto := func(name string) bool {
		t.Helper()
		v, err := raw.Get(ctx, kvstore.SecretKey(secretstore.Team("acme"), name))
		if err != nil {
			t.Fatal(err)
		}
		var r storagev1.SecretRecord
		return len(v) > 0 && v[0] != '{' && proto.Unmarshal(v, &r) == nil && r.GetName() == name
	}

	fresh := storetest.NewSecret(secretstore.Team("acme"), "FRESH")
	if err := s.Create(ctx, fresh, storetest.NewEvent(audit.ActionSecretCreate, fresh)); err != nil {
		t.Fatal(err)
	}
	if !isProto("FRESH") {
		t.Error("a created secret is not stored as a protobuf record")
	}

	old := storetest.NewSecret(secretstore.Team("acme"), "OLD")
	old.CreateTime = old.CreateTime.Add(-time.Hour) // times unlike the others'
	j, err := kvstore.EncodeJSON(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Apply(ctx, nil, []kv.Write{kv.Put(kvstore.SecretKey(old.Owner, old.Name), j)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, old.Owner, old.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.Diff(got, old); d != "" {
		t.Errorf("a JSON record read back: %s", d)
	}
	if got.Binding != nil {
		t.Errorf("a JSON record read back bound to %v, want unbound (bindings came after JSON records)", got.Binding)
	}
	listed, err := s.List(ctx, old.Owner, "", 10)
	if err != nil || len(listed) != 2 {
		t.Fatalf("List: %d secrets, %v; want 2", len(listed), err)
	}
	if _, err := s.Update(ctx, old.Owner, old.Name, func(sec *secretstore.Secret) (*auditv1.Event, error) {
		sec.Description = "changed"
		return storetest.NewEvent(audit.ActionSecretUpdate, sec), nil
	}); err != nil {
		t.Fatal(err)
	}
	if !isProto("OLD") {
		t.Error("a JSON record changed is not stored as protobuf")
	}
	got, err = s.Get(ctx, old.Owner, old.Name)
	if err != nil {
		t.Fatal(err)
	}
	old.Description = "changed"
	if d := storetest.Diff(got, old); d != "" {
		t.Errorf("after the update: %s", d)
	}
}
