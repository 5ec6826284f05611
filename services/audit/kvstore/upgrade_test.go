package kvstore_test

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/audit/storetest"
	"github.com/ozsecrets/oz/services/internal/storecopy"
)

// The fixtures of testdata/layout1 were written by the stores of layout 1
// (boltstore, etcdstore) before they were removed; see its README.

// fixtureChain is one chain of chains.json: what the stores of layout 1
// returned.
type fixtureChain struct {
	Team string `json:"team"`
	Head struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"` // hex
	} `json:"head"`
	Events []struct {
		ID     string `json:"id"`
		Seq    int64  `json:"seq"`
		Hash   string `json:"hash"`   // hex
		SHA256 string `json:"sha256"` // hex, of the event's deterministic protobuf
	} `json:"events"`
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "layout1", name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureChains(t *testing.T) []fixtureChain {
	t.Helper()
	var chains []fixtureChain
	if err := json.Unmarshal(fixture(t, "chains.json"), &chains); err != nil {
		t.Fatal(err)
	}
	return chains
}

// boltFixture returns the path of a copy of the bbolt file of layout 1.
func boltFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, fixture(t, "audit.db"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// etcdFixture loads the etcd keys of layout 1 under a new namespace of
// cli, which it returns.
func etcdFixture(t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	var dump struct {
		Namespace string `json:"namespace"`
		KVs       []struct {
			Key   string `json:"key"`   // hex
			Value string `json:"value"` // hex
		} `json:"kvs"`
	}
	if err := json.Unmarshal(fixture(t, "etcd.json"), &dump); err != nil {
		t.Fatal(err)
	}
	ns := etcdtest.Prefix()
	for _, e := range dump.KVs {
		k, err1 := hex.DecodeString(e.Key)
		v, err2 := hex.DecodeString(e.Value)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, ns+strings.TrimPrefix(string(k), dump.Namespace), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// checkChains checks that s holds exactly the fixture's chains: the same
// events, byte for byte, with the same seqs and hashes, and the same
// heads; each chain verifies.
func checkChains(t *testing.T, s audit.Store, chains []fixtureChain) {
	t.Helper()
	for _, c := range chains {
		all := storetest.Verify(t, s, c.Team)
		if len(all) != len(c.Events) {
			t.Fatalf("chain %q: got %d events, want %d", c.Team, len(all), len(c.Events))
		}
		for i, ev := range all {
			want := c.Events[i]
			raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(raw)
			if ev.GetId() != want.ID || ev.GetSeq() != want.Seq || hex.EncodeToString(ev.GetHash()) != want.Hash || hex.EncodeToString(sum[:]) != want.SHA256 {
				t.Fatalf("chain %q event %d: got %s seq %d hash %x, want %+v", c.Team, i, ev.GetId(), ev.GetSeq(), ev.GetHash(), want)
			}
		}
		h, err := s.Head(ctx, c.Team)
		if err != nil || h.Seq != c.Head.Seq || hex.EncodeToString(h.Hash) != c.Head.Hash {
			t.Fatalf("head of %q: got %v, %v; want %+v", c.Team, h, err, c.Head)
		}
		page, err := s.List(ctx, audit.Query{Team: c.Team, Limit: 1000, ScanLimit: 1000})
		if err != nil || len(page.Events) != len(c.Events) || page.Events[0].GetSeq() != c.Head.Seq {
			t.Fatalf("List %q: got %d events, %v; want %d, newest first", c.Team, len(page.Events), err, len(c.Events))
		}
	}
}

// checkGoesOn appends one event to each chain: it follows the head of
// layout 1.
func checkGoesOn(t *testing.T, s audit.Store, chains []fixtureChain) {
	t.Helper()
	for i, c := range chains {
		if _, err := s.Append(ctx, []*auditv1.Event{storetest.NewEvent(c.Team, 900000+i)}, now); err != nil {
			t.Fatal(err)
		}
		all := storetest.Verify(t, s, c.Team)
		last := all[len(all)-1]
		if last.GetSeq() != c.Head.Seq+1 || hex.EncodeToString(last.GetPrevHash()) != c.Head.Hash {
			t.Errorf("chain %q: new event at seq %d after %x, want %d after the old head %s", c.Team, last.GetSeq(), last.GetPrevHash(), c.Head.Seq+1, c.Head.Hash)
		}
	}
	// A redelivery of an event of layout 1 is a duplicate.
	first := storetest.All(t, s, chains[0].Team)[0]
	if res, err := s.Append(ctx, []*auditv1.Event{first}, now); err != nil || res.Duplicates != 1 {
		t.Errorf("redelivery of %s: got %+v, %v; want a duplicate", first.GetId(), res, err)
	}
}

// boltBuckets returns the top-level buckets of the bbolt file at path.
func boltBuckets(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	return names
}

// want is what an upgrade of the fixtures carries over.
var want = kvstore.Upgrade{Chains: 5, Events: 305, IDs: 305}

func TestUpgradeBolt(t *testing.T) {
	chains := fixtureChains(t)

	t.Run("Fixture", func(t *testing.T) {
		path := boltFixture(t)
		s, up, err := kvstore.OpenBoltKV(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if up != want {
			t.Errorf("upgrade: got %v, want %v", up, want)
		}
		checkChains(t, newStore(t, s, kvstore.BoltOptions), chains)
		s.Close()
		if got := strings.Join(boltBuckets(t, path), ","); got != "meta,records" {
			t.Errorf("buckets after the upgrade: %s, want meta,records", got)
		}
		checkBolt(t, path)

		s, up, err = kvstore.OpenBoltKV(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if up != (kvstore.Upgrade{}) {
			t.Errorf("second open: upgraded %v; want nothing to upgrade", up)
		}
		st := newStore(t, s, kvstore.BoltOptions)
		checkChains(t, st, chains)
		checkGoesOn(t, st, chains)
	})

	t.Run("Interrupted", func(t *testing.T) {
		path := boltFixture(t)
		calls := 0
		restore := kvstore.SetUpgradeHooks(func() error {
			if calls++; calls == 3 {
				return errors.New("killed")
			}
			return nil
		}, 50)
		_, _, err := kvstore.OpenBoltKV(path, 0)
		restore()
		if err == nil || !strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), path) {
			t.Fatalf("OpenBoltKV: got %v, want the interruption, naming the file", err)
		}
		// Layout 1 is whole; layout 2 is partial, and not recorded.
		if got := strings.Join(boltBuckets(t, path), ","); got != "events,heads,ids,meta,records" {
			t.Errorf("buckets: %s", got)
		}
		s := openBoltKV(t, path)
		checkChains(t, newStore(t, s, kvstore.BoltOptions), chains)
	})

	t.Run("BothLayouts", func(t *testing.T) {
		path := boltFixture(t)
		editBolt(t, path, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("records"))
			if err != nil {
				return err
			}
			return b.Put([]byte("meta/layout"), []byte("audit/2"))
		})
		if _, _, err := kvstore.OpenBoltKV(path, 0); !errors.Is(err, kvstore.ErrBothLayouts) || !strings.Contains(err.Error(), path) {
			t.Errorf("OpenBoltKV: got %v, want ErrBothLayouts naming the file", err)
		}
	})

	t.Run("Corrupt", func(t *testing.T) {
		path := boltFixture(t)
		editBolt(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("events")).Put([]byte("Bad\x00team"), []byte("x"))
		})
		_, _, err := kvstore.OpenBoltKV(path, 0)
		if err == nil || !strings.Contains(err.Error(), "corrupt key") || !strings.Contains(err.Error(), path) {
			t.Errorf("OpenBoltKV: got %v, want a refusal naming the file and the key", err)
		}
		if got := strings.Join(boltBuckets(t, path), ","); got != "events,heads,ids,meta,records" {
			t.Errorf("buckets after a refused upgrade: %s; want layout 1 kept", got)
		}
	})
}

func editBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// appendLayout1 appends ev to team's chain in layout 1 under ns, as an
// ozauditd of the build before would.
func appendLayout1(t *testing.T, cli *clientv3.Client, ns, team string, ev *auditv1.Event) {
	t.Helper()
	hk := ns + "heads/" + team + "\x00"
	resp, err := cli.Get(ctx, hk)
	if err != nil {
		t.Fatal(err)
	}
	var head auditchain.Head
	if len(resp.Kvs) == 1 {
		v := resp.Kvs[0].Value
		head = auditchain.Head{Seq: int64(binary.BigEndian.Uint64(v)), Hash: v[8:]}
	}
	ev = proto.Clone(ev).(*auditv1.Event)
	ev.AppendTime = timestamppb.New(now)
	next := head.Link(ev)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	k := string(binary.BigEndian.AppendUint64([]byte(team+"\x00"), uint64(ev.GetSeq())))
	_, err = cli.Txn(ctx).Then(
		clientv3.OpPut(ns+"events/"+k, string(b)),
		clientv3.OpPut(ns+"ids/"+ev.GetId(), k),
		clientv3.OpPut(hk, string(append(binary.BigEndian.AppendUint64(nil, uint64(next.Seq)), next.Hash...))),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeEtcd(t *testing.T) {
	chains := fixtureChains(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	upgrade := func(t *testing.T, ns string) kvstore.Upgrade {
		t.Helper()
		up, err := kvstore.UpgradeEtcd(ctx, cli, ns)
		if err != nil {
			t.Fatalf("UpgradeEtcd: %v", err)
		}
		return up
	}

	t.Run("Fixture", func(t *testing.T) {
		ns := etcdFixture(t, cli)
		if _, err := kvstore.NewEtcdKV(ctx, cli, ns); !errors.Is(err, kvstore.ErrUpgradeNeeded) {
			t.Errorf("NewEtcdKV before the upgrade: got %v, want ErrUpgradeNeeded", err)
		}
		_, err := kvstore.OpenEtcdKV(ctx, srv.Config(), ns)
		if !errors.Is(err, kvstore.ErrUpgradeNeeded) || !strings.Contains(err.Error(), ns) ||
			!strings.Contains(err.Error(), "ozauditd upgrade --store etcd:"+srv.Endpoints()[0]) {
			t.Errorf("OpenEtcdKV before the upgrade: got %v, want a refusal naming the namespace and the command", err)
		}
		if up := upgrade(t, ns); up != want {
			t.Errorf("upgrade: got %v, want %v", up, want)
		}
		for _, p := range []string{"events/", "ids/", "heads/"} {
			if resp, err := cli.Get(ctx, ns+p, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
				t.Errorf("%s%s after the upgrade: %v keys, %v; want none", ns, p, resp.Count, err)
			}
		}
		if up := upgrade(t, ns); up != (kvstore.Upgrade{}) {
			t.Errorf("again: upgraded %v; want nothing to upgrade", up)
		}
		st := newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{})
		checkChains(t, st, chains)
		checkGoesOn(t, st, chains)
	})

	t.Run("Concurrent", func(t *testing.T) {
		ns := etcdFixture(t, cli)
		var wg sync.WaitGroup
		ups := make(chan kvstore.Upgrade, 4)
		for range 4 {
			c := srv.Client(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				up, err := kvstore.UpgradeEtcd(ctx, c, ns)
				if err != nil {
					t.Errorf("UpgradeEtcd: %v", err)
				}
				ups <- up
			}()
		}
		wg.Wait()
		close(ups)
		done := 0
		for up := range ups {
			if up != (kvstore.Upgrade{}) {
				done++
			}
		}
		if done != 1 {
			t.Errorf("%d upgrades report carrying the log over; want 1", done)
		}
		checkChains(t, newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{}), chains)
	})

	t.Run("OlderWriterDuringCopy", func(t *testing.T) {
		ns := etcdFixture(t, cli)
		late := storetest.NewEvent("acme", 777777)
		once := false
		restore := kvstore.SetUpgradeHooks(func() error {
			if !once {
				once = true
				appendLayout1(t, cli, ns, "acme", late)
			}
			return nil
		}, 0)
		up := upgrade(t, ns)
		restore()
		if up.Events != want.Events+1 {
			t.Errorf("upgrade: got %v, want the late event too", up)
		}
		st := newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{})
		all := storetest.Verify(t, st, "acme")
		if last := all[len(all)-1]; last.GetId() != late.GetId() {
			t.Errorf("acme ends with %s; want the event appended in layout 1 during the copy", last.GetId())
		}
	})

	t.Run("OlderWriterKeepsWriting", func(t *testing.T) {
		ns := etcdFixture(t, cli)
		i := 0
		restore := kvstore.SetUpgradeHooks(func() error {
			i++
			appendLayout1(t, cli, ns, "acme", storetest.NewEvent("acme", 800000+i))
			return nil
		}, 0)
		_, err := kvstore.UpgradeEtcd(ctx, cli, ns)
		restore()
		if err == nil || !strings.Contains(err.Error(), "older build") || !strings.Contains(err.Error(), ns) {
			t.Fatalf("UpgradeEtcd: got %v, want a refusal naming the namespace and older replicas", err)
		}
		if _, err := kvstore.NewEtcdKV(ctx, cli, ns); !errors.Is(err, kvstore.ErrUpgradeNeeded) {
			t.Errorf("NewEtcdKV after a failed upgrade: got %v, want layout 1 kept (ErrUpgradeNeeded)", err)
		}
	})

	t.Run("OlderWriterAfterUpgrade", func(t *testing.T) {
		ns := etcdFixture(t, cli)
		upgrade(t, ns)
		appendLayout1(t, cli, ns, "acme", storetest.NewEvent("acme", 900001))
		if _, err := kvstore.NewEtcdKV(ctx, cli, ns); !errors.Is(err, kvstore.ErrBothLayouts) {
			t.Errorf("NewEtcdKV: got %v, want ErrBothLayouts", err)
		}
		if _, err := kvstore.UpgradeEtcd(ctx, cli, ns); !errors.Is(err, kvstore.ErrBothLayouts) {
			t.Errorf("UpgradeEtcd: got %v, want ErrBothLayouts", err)
		}
	})
}

// TestMigrated: a log moved between bbolt and etcd by storecopy (what
// ozmigrate does), in either layout, opens with the same chains.
func TestMigrated(t *testing.T) {
	chains := fixtureChains(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	toEtcd := func(t *testing.T, path string) string {
		t.Helper()
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ns := etcdtest.Prefix()
		if _, err := storecopy.BoltToEtcd(ctx, db, cli, ns); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	t.Run("Layout1ToEtcd", func(t *testing.T) {
		ns := toEtcd(t, boltFixture(t))
		if _, err := kvstore.UpgradeEtcd(ctx, cli, ns); err != nil {
			t.Fatal(err)
		}
		checkChains(t, newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{}), chains)
	})
	t.Run("Layout2ToEtcdAndBack", func(t *testing.T) {
		path := boltFixture(t)
		s, _, err := kvstore.OpenBoltKV(path, 0) // upgrades
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		ns := toEtcd(t, path)
		checkChains(t, newStore(t, openEtcdKV(t, cli, ns), kvstore.Options{}), chains)

		back := filepath.Join(t.TempDir(), "audit.db")
		db, err := bolt.Open(back, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = storecopy.EtcdToBolt(ctx, cli, ns, db)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkChains(t, newStore(t, openBoltKV(t, back), kvstore.BoltOptions), chains)
	})
}
