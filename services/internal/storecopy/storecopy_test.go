package storecopy

// An internal test: TestFirstTransactionChecksNamespace reaches under the
// public API to race the copy's first transaction.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	secretkv "github.com/ozsecrets/oz/services/secretstore/kvstore"
)

// triple is a pair of a bbolt bucket.
type triple struct{ Bucket, Key, Value string }

// openBolt opens (creating) a bbolt file, closed and checked at the end of
// the test.
func openBolt(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkClose(t, db) })
	return db
}

// checkClose runs bbolt's consistency check on db, if still open, and
// closes it.
func checkClose(t *testing.T, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine sends them all
			if first == nil {
				first = err
			}
		}
		return first
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return
	}
	if err != nil {
		t.Errorf("consistency check of %s: %v", db.Path(), err)
	}
	db.Close()
}

const timeout = 5 * time.Second

// fill writes the triples into db, creating their buckets, and creates
// the empty buckets.
func fill(t *testing.T, db *bolt.DB, ts []triple, empty ...string) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range empty {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		for _, tr := range ts {
			b, err := tx.CreateBucketIfNotExists([]byte(tr.Bucket))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(tr.Key), []byte(tr.Value)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dumpBolt returns every pair of db, and the names of its buckets.
func dumpBolt(t *testing.T, db *bolt.DB) (ts []triple, buckets []string) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			buckets = append(buckets, string(name))
			return b.ForEach(func(k, v []byte) error {
				ts = append(ts, triple{string(name), string(k), string(v)})
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts, buckets
}

// dumpEtcd returns every key and value under prefix, and the revision.
func dumpEtcd(t *testing.T, cli *clientv3.Client, prefix string) (map[string]string, int64) {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m, resp.Header.Revision
}

// sample is a store with binary keys and values, an empty value, buckets
// whose etcd prefixes sort unlike their names ("a!" and "a", "outbox" and
// "outbox_meta"), a value too large to share a transaction, and more keys
// in one bucket than one transaction holds.
func sample() []triple {
	ts := []triple{
		{"a", "k", "v"},
		{"a!", "k", "v!"},
		{"outbox", "\x00\x00\x00\x00\x00\x00\x00\x01", "\xff\x00event"},
		{"outbox_meta", "seq", "\x00\x01"},
		{"bin", "\x00", "\x00"},
		{"bin", "\xff\xfe/slash/in/key", "\x80\x81\x82"},
		{"bin", "empty", ""},
		{"big", "one", strings.Repeat("\xab", 1200<<10)},
		{"big", "two", strings.Repeat("\xcd", 300<<10)},
	}
	for i := range 3*MaxTxnOps + 7 {
		ts = append(ts, triple{"many", fmt.Sprintf("key-%04d\x00", i), fmt.Sprintf("value %d \x00\xff", i)})
	}
	return ts
}

func sorted(ts []triple) []triple {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b triple) int {
		return strings.Compare(a.Bucket+"\x00"+a.Key, b.Bucket+"\x00"+b.Key)
	})
	return ts
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ns := etcdtest.Prefix()
	dir := t.TempDir()

	src := openBolt(t, filepath.Join(dir, "src.db"))
	want := sample()
	fill(t, src, want, "empty")
	before, _ := dumpBolt(t, src)

	r1, err := BoltToEtcd(ctx, src, cli, ns)
	if err != nil {
		t.Fatalf("BoltToEtcd: %v", err)
	}
	if r1.Keys != len(want) || r1.Buckets != 7 || r1.EmptyBuckets != 1 {
		t.Errorf("BoltToEtcd: got %v, %d empty; want %d keys in 7 buckets, 1 empty", r1, r1.EmptyBuckets, len(want))
	}
	var wantBytes int64
	for _, tr := range want {
		wantBytes += int64(len(tr.Key) + len(tr.Value))
	}
	if r1.Bytes != wantBytes {
		t.Errorf("Bytes: got %d, want %d", r1.Bytes, wantBytes)
	}

	// etcd holds exactly <ns>B/K → V.
	got, _ := dumpEtcd(t, cli, ns)
	if len(got) != len(want) {
		t.Errorf("etcd holds %d keys, want %d", len(got), len(want))
	}
	for _, tr := range want {
		k := ns + tr.Bucket + "/" + tr.Key
		if v, ok := got[k]; !ok || v != tr.Value {
			t.Errorf("etcd key %q: got %d bytes (present %v), want %d", k, len(v), ok, len(tr.Value))
		}
	}
	if after, _ := dumpBolt(t, src); !slices.Equal(after, before) {
		t.Error("the source file changed")
	}

	// And back, into a new file: byte-identical buckets.
	dst := openBolt(t, filepath.Join(dir, "dst.db"))
	r2, err := EtcdToBolt(ctx, cli, ns, dst)
	if err != nil {
		t.Fatalf("EtcdToBolt: %v", err)
	}
	if !r2.Same(r1) || r2.EmptyBuckets != 0 {
		t.Errorf("EtcdToBolt: got %v, want %v", r2, r1)
	}
	back, buckets := dumpBolt(t, dst)
	if !slices.Equal(back, sorted(want)) {
		t.Errorf("the file copied back differs from the original (%d pairs, want %d)", len(back), len(want))
	}
	if want := []string{"a", "a!", "big", "bin", "many", "outbox", "outbox_meta"}; !slices.Equal(buckets, want) {
		t.Errorf("buckets: got %q, want %q", buckets, want)
	}
	for _, db := range []*bolt.DB{src, dst} {
		if s, err := SummarizeBolt(db); err != nil || !s.Same(r1) {
			t.Errorf("SummarizeBolt(%s): got %v, %v; want %v", db.Path(), s, err, r1)
		}
	}
	if s, err := SummarizeEtcd(ctx, cli, ns); err != nil || !s.Same(r1) {
		t.Errorf("SummarizeEtcd: got %v, %v; want %v", s, err, r1)
	}
}

func TestDigest(t *testing.T) {
	// The digest frames its fields: moving a byte from key to value
	// changes it.
	a, b := newSummer(), newSummer()
	a.add([]byte("b"), []byte("kv"), []byte("x"))
	b.add([]byte("b"), []byte("k"), []byte("vx"))
	if a.result().Digest == b.result().Digest {
		t.Error("got the same digest for (kv, x) and (k, vx)")
	}
	var empty Result
	if got := newSummer().result(); got.Keys != 0 || got.Digest == empty.Digest {
		t.Errorf("empty store: got %v, want 0 keys and the SHA-256 of nothing", got)
	}
}

func TestEmptySource(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dir := t.TempDir()
	r, err := BoltToEtcd(ctx, openBolt(t, filepath.Join(dir, "a.db")), cli, etcdtest.Prefix())
	if err != nil || r.Keys != 0 || r.Buckets != 0 {
		t.Errorf("BoltToEtcd of an empty file: got %v, %v; want 0 keys", r, err)
	}
	r, err = EtcdToBolt(ctx, cli, etcdtest.Prefix(), openBolt(t, filepath.Join(dir, "b.db")))
	if err != nil || r.Keys != 0 {
		t.Errorf("EtcdToBolt of an empty namespace: got %v, %v; want 0 keys", r, err)
	}
}

func TestRefuseNonEmpty(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dir := t.TempDir()

	t.Run("Etcd", func(t *testing.T) {
		src := openBolt(t, filepath.Join(dir, "src.db"))
		fill(t, src, sample())
		ns := etcdtest.Prefix()
		if _, err := cli.Put(ctx, ns+"records/x", "there"); err != nil {
			t.Fatal(err)
		}
		before, rev := dumpEtcd(t, cli, "")
		_, err := BoltToEtcd(ctx, src, cli, ns)
		if !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("got %v, want ErrNotEmpty", err)
		}
		if !strings.Contains(err.Error(), "1 keys under "+ns) {
			t.Errorf("error %q: want it to say how many keys are where", err)
		}
		after, rev2 := dumpEtcd(t, cli, "")
		if rev2 != rev || len(after) != len(before) {
			t.Errorf("etcd changed: revision %d → %d, %d → %d keys", rev, rev2, len(before), len(after))
		}
	})
	t.Run("Bolt", func(t *testing.T) {
		ns := etcdtest.Prefix()
		if _, err := cli.Put(ctx, ns+"records/x", "v"); err != nil {
			t.Fatal(err)
		}
		dst := openBolt(t, filepath.Join(dir, "dst.db"))
		fill(t, dst, nil, "meta") // one empty bucket is enough to refuse
		_, err := EtcdToBolt(ctx, cli, ns, dst)
		if !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("got %v, want ErrNotEmpty", err)
		}
		if ts, buckets := dumpBolt(t, dst); len(ts) != 0 || !slices.Equal(buckets, []string{"meta"}) {
			t.Errorf("the file changed: %d pairs, buckets %q", len(ts), buckets)
		}
	})
}

func TestFirstTransactionChecksNamespace(t *testing.T) {
	// Another writer adds a key after the emptiness check, before the
	// first transaction: the transaction refuses, writing nothing.
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ns := etcdtest.Prefix()
	w := &etcdWriter{cli: cli, ns: ns}
	if err := w.put(ctx, []byte("b"), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, ns+"other/key", "v"); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(ctx); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("got %v, want ErrNotEmpty", err)
	}
	if got, _ := dumpEtcd(t, cli, ns); len(got) != 1 {
		t.Errorf("got %d keys under the namespace, want the other writer's 1", len(got))
	}

	// Later transactions refuse to overwrite a key another writer made.
	ns = etcdtest.Prefix()
	w = &etcdWriter{cli: cli, ns: ns}
	for _, k := range []string{"1", "2"} {
		if err := w.put(ctx, []byte("b"), []byte(k), []byte("mine")); err != nil {
			t.Fatal(err)
		}
		if k == "1" {
			if err := w.flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cli.Put(ctx, ns+"b/2", "theirs"); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(ctx); err == nil || !strings.Contains(err.Error(), "another writer") {
		t.Fatalf("got %v, want an error about another writer", err)
	}
	if got, _ := dumpEtcd(t, cli, ns); got[ns+"b/2"] != "theirs" {
		t.Errorf("the other writer's key: got %q, want %q", got[ns+"b/2"], "theirs")
	}
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dir := t.TempDir()

	t.Run("NestedBucket", func(t *testing.T) {
		db := openBolt(t, filepath.Join(dir, "nested.db"))
		fill(t, db, sample())
		err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.Bucket([]byte("many")).CreateBucket([]byte("inner"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ns := etcdtest.Prefix()
		_, err = BoltToEtcd(ctx, db, cli, ns)
		if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), `nested bucket "inner"`) {
			t.Fatalf("got %v, want ErrLayout naming the nested bucket", err)
		}
		// Buckets sorting before "many" were copied: the error says so.
		if !strings.Contains(err.Error(), "remove them before retrying") {
			t.Errorf("error %q: want it to say that keys were written", err)
		}
	})
	t.Run("SlashInBucketName", func(t *testing.T) {
		db := openBolt(t, filepath.Join(dir, "slash.db"))
		fill(t, db, []triple{{"a/b", "k", "v"}})
		ns := etcdtest.Prefix()
		if _, err := BoltToEtcd(ctx, db, cli, ns); !errors.Is(err, ErrLayout) {
			t.Fatalf("got %v, want ErrLayout", err)
		}
		if got, _ := dumpEtcd(t, cli, ns); len(got) != 0 {
			t.Errorf("etcd holds %d keys, want none", len(got))
		}
	})
	for _, bad := range []string{"loose", "bucket/", "/key"} {
		t.Run("EtcdKey_"+bad, func(t *testing.T) {
			// Enough good keys before the bad one for a bbolt batch to
			// be written, and then removed ("+" sorts before the bad
			// keys).
			ns := etcdtest.Prefix()
			for i := range boltBatchKeys + 10 {
				if _, err := cli.Put(ctx, fmt.Sprintf("%s+many/%05d", ns, i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cli.Put(ctx, ns+bad, "v"); err != nil {
				t.Fatal(err)
			}
			db := openBolt(t, filepath.Join(t.TempDir(), "dst.db"))
			_, err := EtcdToBolt(ctx, cli, ns, db)
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("got %v, want ErrLayout", err)
			}
			if ts, buckets := dumpBolt(t, db); len(ts) != 0 || len(buckets) != 0 {
				t.Errorf("the file holds %d pairs in %q after the failed copy, want nothing", len(ts), buckets)
			}
		})
	}
	t.Run("BadNamespace", func(t *testing.T) {
		db := openBolt(t, filepath.Join(dir, "ns.db"))
		for _, ns := range []string{"", "/oz/resolver"} {
			if _, err := BoltToEtcd(ctx, db, cli, ns); err == nil {
				t.Errorf("BoltToEtcd(namespace %q): got no error", ns)
			}
			if _, err := EtcdToBolt(ctx, cli, ns, db); err == nil {
				t.Errorf("EtcdToBolt(namespace %q): got no error", ns)
			}
		}
	})
}

// TestResolverStores copies a file written by the resolver's bbolt store
// to etcd, reads it through the resolver's etcd store, and copies it back.
func TestResolverStores(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ns := etcdtest.Prefix()
	dir := t.TempDir()

	path := filepath.Join(dir, "resolver.db")
	bs, err := boltkv.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	var writes []kv.Write
	for i := range 300 {
		writes = append(writes, kv.Write{Key: fmt.Sprintf("team/acme/%03d", i), Value: fmt.Appendf(nil, "\x00record %d\xff", i)})
	}
	for chunk := range slices.Chunk(writes, 100) {
		if err := bs.Apply(ctx, nil, chunk); err != nil {
			t.Fatal(err)
		}
	}
	want, err := bs.Scan(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	bs.Close()

	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := BoltToEtcd(ctx, src, cli, ns)
	if err != nil {
		t.Fatalf("BoltToEtcd: %v", err)
	}
	if r.Keys != 301 || r.Buckets != 2 { // the records and meta/schema
		t.Errorf("got %v, want 301 keys in 2 buckets", r)
	}

	es, err := etcdkv.New(ctx, cli, ns)
	if err != nil {
		t.Fatalf("open the resolver's etcd store on the copy: %v", err)
	}
	defer es.Close()
	var s kv.Store = es
	got, err := s.Scan(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, func(a, b kv.KV) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Errorf("Scan of the etcd copy: got %d records, want the %d written", len(got), len(want))
	}
	if v, err := s.Get(ctx, "team/acme/042"); err != nil || string(v) != "\x00record 42\xff" {
		t.Errorf("Get: got %q, %v", v, err)
	}

	// Back into a new file, which the resolver's bbolt store opens.
	path2 := filepath.Join(dir, "resolver2.db")
	dst := openBolt(t, path2)
	if _, err := EtcdToBolt(ctx, cli, ns, dst); err != nil {
		t.Fatalf("EtcdToBolt: %v", err)
	}
	checkClose(t, dst)
	bs2, err := boltkv.Open(path2, 0)
	if err != nil {
		t.Fatalf("open the resolver's bbolt store on the copy: %v", err)
	}
	defer bs2.Close()
	got, err = bs2.Scan(ctx, "", "", 0)
	if err != nil || len(got) != len(want) {
		t.Errorf("Scan of the copy back: got %d records, %v; want %d", len(got), err, len(want))
	}
}

// canary is a secret's plaintext, which must appear nowhere in the copy.
const canary = "CANARY-storecopy-7f3a-never-in-etcd"

// TestSecretstoreStores copies a file written by the secretstore's bbolt
// store to etcd, checks that etcd holds only ciphertext, and copies it back
// into a file whose secrets still open with the keyring.
func TestSecretstoreStores(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ns := etcdtest.Prefix()
	dir := t.TempDir()

	path := filepath.Join(dir, "secretstore.db")
	bs, err := secretkv.OpenBolt(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	svc := secretstore.NewService(secretstore.Config{Store: bs, Keyring: kr})
	alice := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	for _, name := range []string{"API_KEY", "DB_PASSWORD"} {
		req := secretstore.CreateRequest{Parent: "teams/acme", SecretID: name, Value: []byte(canary)}
		if _, err := svc.Create(ctx, alice, req); err != nil {
			t.Fatal(err)
		}
	}
	bs.Close()

	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := BoltToEtcd(ctx, src, cli, ns)
	if err != nil {
		t.Fatalf("BoltToEtcd: %v", err)
	}
	if r.Keys < 3 {
		t.Errorf("got %v, want at least the 2 secrets and the schema", r)
	}

	kvs, _ := dumpEtcd(t, cli, ns)
	var secrets int
	for k, v := range kvs {
		if strings.Contains(k, canary) || strings.Contains(v, canary) {
			t.Errorf("etcd key %q or its value holds the plaintext", k)
		}
		if strings.HasPrefix(k, ns+"records/secrets/") {
			secrets++
		}
	}
	if secrets != 2 {
		t.Errorf("got %d keys under %srecords/secrets/, want 2", secrets, ns)
	}
	if kvs[ns+"meta/schema"] != "1" {
		t.Errorf("%smeta/schema: got %q, want %q", ns, kvs[ns+"meta/schema"], "1")
	}

	// The secretstore's etcd store reads the copy, and the keyring opens
	// the value it returns.
	ekv, err := etcdkv.New(ctx, cli, ns)
	if err != nil {
		t.Fatalf("open the copy as a kv.Store: %v", err)
	}
	es, err := secretkv.Open(ctx, ekv)
	if err != nil {
		t.Fatalf("open the secretstore's store on the copy: %v", err)
	}
	defer es.Close()
	var store secretstore.Store = es
	sec, err := store.Get(ctx, secretstore.Team("acme"), "API_KEY")
	if err != nil {
		t.Fatalf("Get through the etcd store: %v", err)
	}
	plain, err := kr.Open(sec.Value, secretstore.ValueAD(sec.Owner, sec.Name, sec.ValueVersion))
	if err != nil || string(plain) != canary {
		t.Errorf("the value read through the etcd store does not open to the plaintext: %v", err)
	}

	// Back into a new file: the secretstore opens it, and the keyring the
	// copied ciphertext.
	path2 := filepath.Join(dir, "secretstore2.db")
	dst := openBolt(t, path2)
	if _, err := EtcdToBolt(ctx, cli, ns, dst); err != nil {
		t.Fatalf("EtcdToBolt: %v", err)
	}
	checkClose(t, dst)
	bs2, err := secretkv.OpenBolt(ctx, path2, 0)
	if err != nil {
		t.Fatalf("open the secretstore's bbolt store on the copy: %v", err)
	}
	defer bs2.Close()
	sec, err = bs2.Get(ctx, secretstore.Team("acme"), "DB_PASSWORD")
	if err != nil {
		t.Fatal(err)
	}
	plain, err = kr.Open(sec.Value, secretstore.ValueAD(sec.Owner, sec.Name, sec.ValueVersion))
	if err != nil || string(plain) != canary {
		t.Errorf("the copied value does not open to the plaintext: %v", err)
	}
	bs2.Close()
	if err := secretkv.CheckBolt(path2, timeout); err != nil {
		t.Errorf("consistency check: %v", err)
	}
}
