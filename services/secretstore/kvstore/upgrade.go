package kvstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/secretstore"
)

// Upgrading the layout before kv.Store.
//
// Before it stood on kv.Store, the secretstore kept its data in bbolt
// buckets, or etcd prefixes under Namespace named as the buckets:
//
//	secrets       {owner}\x00{FOLDED NAME} → the secret record (JSON)
//	sealing_keys  {key id} → the sealing key record (JSON)
//	meta          schema → "1"
//	outbox        8 bytes, big-endian (a bbolt sequence, or on etcd the
//	              µs×4096 + instance) → uvarint(len(id)) + id + the
//	              auditv1.Event without its id; an empty id is
//	              "secretstore-{epoch}-{the key in 16 hex digits}"
//	outbox_meta   epoch → 16 hex digits (etcd: and instance → a count)
//
// The records keep their bytes: a secret becomes secrets/{its old key},
// a sealing key sealing_keys/{its id}. An undelivered event becomes
// upgraded_outbox/{its old key in 16 hex digits}, an auditv1.Event with its
// id — the id it was delivered under, if it was, so that the audit service
// skips it as a duplicate — which events delivers before the outbox.KV's.
// The layout key is written, and the old buckets or prefixes are removed,
// in the same transaction as the copy (bbolt) or the last one (etcd).
//
// A bbolt file is upgraded when it is opened (OpenBoltKV): the file lock
// excludes every other process, so one bbolt transaction makes the upgrade
// atomic. An etcd namespace may be in use by replicas of an earlier
// version, whose writes after an upgrade would be lost, unseen: it is
// upgraded only by UpgradeEtcd, which `ozsecretstored upgrade` runs once
// every replica is stopped, and OpenEtcdKV refuses it until then.

// Upgrade says what an upgrade carried over; the zero Upgrade, nothing
// (there was nothing to upgrade).
type Upgrade struct {
	Secrets     int
	SealingKeys int
	Events      int // undelivered audit events
}

func (u Upgrade) String() string {
	return fmt.Sprintf("%d secrets, %d sealing keys and %d undelivered audit events", u.Secrets, u.SealingKeys, u.Events)
}

// Names of the layout before kv.Store: bbolt buckets, and etcd prefixes
// (with "/") under the namespace.
const (
	legacySecrets     = "secrets"
	legacySealingKeys = "sealing_keys"
	legacyOutbox      = "outbox"
	legacyOutboxMeta  = "outbox_meta"
	legacyEpoch       = "epoch"
)

var legacyNames = []string{legacySecrets, legacySealingKeys, legacyOutbox, legacyOutboxMeta}

// ErrBothLayouts is returned for a store that holds records of the layout
// before kv.Store after it was upgraded: a process of an earlier version
// wrote to it since. Nothing is changed; what it wrote is not read.
var ErrBothLayouts = errors.New("holds data in both the current layout and the layout of an earlier version: " +
	"an ozsecretstored of an earlier version wrote to it after it was upgraded; stop it. " +
	"What it wrote is in the old layout, which this version does not read")

// errNoUpgrade rolls back a bbolt transaction that found nothing to do.
var errNoUpgrade = errors.New("nothing to upgrade")

// carryEvent returns the key and value in upgraded_outbox of an event of
// the outbox before kv.Store, key k (8 bytes) and value v; epoch is the
// outbox's, for the id of a record that holds none. Errors name the key,
// never the event.
func carryEvent(k, v []byte, epoch string) (string, []byte, error) {
	n, w := binary.Uvarint(v)
	if len(k) != 8 || w <= 0 || uint64(len(v)-w) < n {
		return "", nil, fmt.Errorf("audit outbox record %x: corrupt", k)
	}
	seq := binary.BigEndian.Uint64(k)
	id := string(v[w : w+int(n)])
	if id == "" {
		if epoch == "" {
			return "", nil, fmt.Errorf("audit outbox record %x: no id, and no outbox epoch to make it from", k)
		}
		id = fmt.Sprintf("%s-%s-%016x", secretstore.Emitter, epoch, seq)
	}
	ev := &auditv1.Event{}
	if err := proto.Unmarshal(v[w+int(n):], ev); err != nil {
		return "", nil, fmt.Errorf("audit outbox record %x: %w", k, err)
	}
	ev.Id = id
	b, err := proto.Marshal(ev)
	if err != nil {
		return "", nil, fmt.Errorf("audit outbox record %x: %w", k, err)
	}
	return fmt.Sprintf("%s%016x", prefixUpgradedOutbox, seq), b, nil
}

// bbolt.

// boltkv's layout (package boltkv: a bucket of records and a meta bucket
// with its schema version), which UpgradeBolt writes so that the upgrade
// is one bbolt transaction. OpenBoltKV then reads the result through
// boltkv, and fails if it does not find what was written.
var (
	boltRecords   = []byte("records")
	boltMeta      = []byte("meta")
	boltSchemaKey = []byte("schema")
	boltSchema    = []byte("1")
)

// UpgradeBolt upgrades, in place and in one bbolt transaction, the bbolt
// file at path from the layout before kv.Store, and reports what it
// carried over (the zero Upgrade when the file is in the current layout,
// is empty, or does not exist). It waits at most timeout for the file's
// lock. Errors name the file; on any error the file is unchanged.
// ErrBothLayouts: see there.
func UpgradeBolt(path string, timeout time.Duration) (Upgrade, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return Upgrade{}, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return Upgrade{}, fmt.Errorf("open %s: the file is locked by another process (is another ozsecretstored running on it?)", path)
	}
	if err != nil {
		return Upgrade{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var up Upgrade
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		up, err = upgradeBoltTx(tx)
		return err
	})
	switch {
	case errors.Is(err, errNoUpgrade):
		return Upgrade{}, nil
	case errors.Is(err, ErrBothLayouts):
		return Upgrade{}, fmt.Errorf("%s %w", path, err)
	case err != nil:
		return Upgrade{}, fmt.Errorf("upgrade %s from the layout of an earlier version (the file is unchanged): %w", path, err)
	}
	return up, nil
}

func upgradeBoltTx(tx *bolt.Tx) (Upgrade, error) {
	var up Upgrade
	present, data := false, false
	for _, name := range legacyNames {
		if b := tx.Bucket([]byte(name)); b != nil {
			present = true
			if k, _ := b.Cursor().First(); k != nil && name != legacyOutboxMeta {
				data = true
			}
		}
	}
	if !present {
		return up, errNoUpgrade
	}
	records := tx.Bucket(boltRecords)
	if records != nil && records.Get([]byte(keyLayout)) != nil {
		if !data {
			// Empty buckets of the old names beside the current layout
			// (ozmigrate makes an empty "outbox"): nothing to carry.
			return up, errNoUpgrade
		}
		return up, ErrBothLayouts
	}
	if records != nil {
		if k, _ := records.Cursor().First(); k != nil {
			return up, errors.New("it holds records of another layout beside the old buckets: is it the secretstore's file?")
		}
	}
	meta, err := tx.CreateBucketIfNotExists(boltMeta)
	if err != nil {
		return up, err
	}
	switch v := meta.Get(boltSchemaKey); {
	case v == nil:
		if err := meta.Put(boltSchemaKey, boltSchema); err != nil {
			return up, err
		}
	case !bytes.Equal(v, boltSchema):
		return up, fmt.Errorf("schema version %q, this build upgrades %q", v, boltSchema)
	}
	if records, err = tx.CreateBucketIfNotExists(boltRecords); err != nil {
		return up, err
	}
	put := func(k string, v []byte) error { return records.Put([]byte(k), bytes.Clone(v)) }
	if b := tx.Bucket([]byte(legacySecrets)); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			up.Secrets++
			return put(prefixSecrets+string(k), v)
		})
		if err != nil {
			return up, err
		}
	}
	if b := tx.Bucket([]byte(legacySealingKeys)); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			up.SealingKeys++
			return put(prefixSealingKeys+string(k), v)
		})
		if err != nil {
			return up, err
		}
	}
	if b := tx.Bucket([]byte(legacyOutbox)); b != nil {
		epoch := ""
		if m := tx.Bucket([]byte(legacyOutboxMeta)); m != nil {
			epoch = string(m.Get([]byte(legacyEpoch)))
		}
		err := b.ForEach(func(k, v []byte) error {
			key, value, err := carryEvent(k, v, epoch)
			if err != nil {
				return err
			}
			up.Events++
			return put(key, value)
		})
		if err != nil {
			return up, err
		}
	}
	if err := put(keyLayout, []byte(layoutName)); err != nil {
		return up, err
	}
	for _, name := range legacyNames {
		if err := tx.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return up, fmt.Errorf("remove bucket %s: %w", name, err)
		}
	}
	return up, nil
}

// etcd.

// etcdRecords is where etcdkv keeps its records under the namespace (its
// documented layout: <namespace>records/<key>), which the upgrade writes
// so that its last transaction both removes the old keys and writes the
// layout key.
const etcdRecords = "records/"

// ErrUpgradeNeeded is returned by CheckEtcd (and OpenEtcdKV) for a
// namespace in the layout before kv.Store.
var ErrUpgradeNeeded = errors.New("holds the secretstore's data in the layout of an earlier version")

// CheckEtcd returns an error wrapping ErrUpgradeNeeded when the namespace
// ns holds keys of the layout before kv.Store and is not upgraded, and
// ErrBothLayouts when it holds them beside the current layout; nil when it
// holds none (it is in the current layout, or empty). It reads, in one
// transaction, counts of keys.
func CheckEtcd(ctx context.Context, cli *clientv3.Client, ns string) error {
	if err := etcdns.Check(ns); err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, len(legacyNames)+1)
	for _, name := range legacyNames {
		ops = append(ops, clientv3.OpGet(ns+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	ops = append(ops, clientv3.OpGet(ns+etcdRecords+keyLayout, clientv3.WithCountOnly()))
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd namespace %s: %w", ns, etcdns.Err("read the layout", err))
	}
	var old int64
	for _, r := range resp.Responses[:len(legacyNames)] {
		old += r.GetResponseRange().GetCount()
	}
	switch {
	case old == 0:
		return nil
	case resp.Responses[len(legacyNames)].GetResponseRange().GetCount() > 0:
		return fmt.Errorf("etcd namespace %s %w", ns, ErrBothLayouts)
	}
	return fmt.Errorf("etcd namespace %s %w (%d keys)", ns, ErrUpgradeNeeded, old)
}

const (
	// etcdPage is how many keys one etcd range of the upgrade reads.
	etcdPage = 512
	// etcdTxnOps and etcdTxnBytes bound one transaction of the upgrade:
	// etcd's default --max-txn-ops, and well under its default
	// --max-request-bytes (1.5 MiB).
	etcdTxnOps   = 128
	etcdTxnBytes = 1 << 20
	// lockTTL is the lease of the upgrade's lock, in seconds: another
	// upgrade of the namespace waits for it, and takes it over when this
	// process dies.
	lockTTL = 10
)

// testHookBeforeSwitch, when set (by tests), runs before the upgrade's
// last transaction.
var testHookBeforeSwitch func()

// UpgradeEtcd upgrades the namespace ns from the layout before kv.Store,
// and reports what it carried over (the zero Upgrade when there is nothing
// to upgrade). Stop every replica of the secretstore on ns first: one of
// an earlier version would go on writing the old layout.
//
// It takes a lock (under ns, with a lease) against other upgrades, reads
// the old keys at one revision, copies them into the current layout in
// transactions of their own (removing first what an interrupted upgrade
// copied), reads the copy back, and then, in one transaction on the
// condition that no old key was written since it read them and no copy
// since it read the copies, removes the old keys and writes the layout
// key. Until that transaction the namespace is in the old layout, which
// CheckEtcd refuses; after it, in the current one. When an old key was
// written meanwhile (a replica of an earlier version still runs), it
// returns an error and the old layout stays; run it again once that
// replica is stopped. ErrBothLayouts: see there.
func UpgradeEtcd(ctx context.Context, cli *clientv3.Client, ns string) (Upgrade, error) {
	if err := etcdns.Check(ns); err != nil {
		return Upgrade{}, err
	}
	fail := func(what string, err error) (Upgrade, error) {
		return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: %s: %w", ns, what, etcdns.Err(what, err))
	}
	// A first look, bounded in time: an etcd that does not answer fails
	// here, and a namespace with nothing to upgrade is left alone.
	octx, cancel := etcdns.WithOpenTimeout(ctx)
	err := CheckEtcd(octx, cli, ns)
	cancel()
	switch {
	case err == nil:
		return Upgrade{}, nil
	case !errors.Is(err, ErrUpgradeNeeded):
		return Upgrade{}, fmt.Errorf("upgrade: %w", err)
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(lockTTL), concurrency.WithContext(ctx))
	if err != nil {
		return fail("lock", err)
	}
	defer sess.Close()
	lock := concurrency.NewMutex(sess, ns+"upgrade-lock/")
	if err := lock.Lock(ctx); err != nil {
		return fail("lock", err)
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	mine := lock.IsOwner()
	layout := ns + etcdRecords + keyLayout
	notSwitched := clientv3.Compare(clientv3.CreateRevision(layout), "=", 0)

	// The old keys, at one revision.
	old := map[string][]*kvPair{}
	var rev int64
	for _, name := range legacyNames {
		kvs, r, err := rangeAt(ctx, cli, ns+name+"/", rev)
		if err != nil {
			return fail("read "+name, err)
		}
		rev, old[name] = r, kvs
	}
	n := 0
	for _, kvs := range old {
		n += len(kvs)
	}
	if n == 0 {
		return Upgrade{}, nil
	}
	resp, err := cli.Get(ctx, layout, clientv3.WithCountOnly())
	if err != nil {
		return fail("read the layout", err)
	}
	if resp.Count > 0 {
		return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: it %w", ns, ErrBothLayouts)
	}

	// The copy, in the current layout.
	var up Upgrade
	var copies []*kvPair
	for _, e := range old[legacySecrets] {
		up.Secrets++
		copies = append(copies, &kvPair{key: prefixSecrets + e.key, value: e.value})
	}
	for _, e := range old[legacySealingKeys] {
		up.SealingKeys++
		copies = append(copies, &kvPair{key: prefixSealingKeys + e.key, value: e.value})
	}
	epoch := ""
	for _, e := range old[legacyOutboxMeta] {
		if e.key == legacyEpoch {
			epoch = string(e.value)
		}
	}
	for _, e := range old[legacyOutbox] {
		key, value, err := carryEvent([]byte(e.key), e.value, epoch)
		if err != nil {
			return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s (unchanged): %w", ns, err)
		}
		up.Events++
		copies = append(copies, &kvPair{key: key, value: value})
	}

	records := ns + etcdRecords
	txn := func(what string, ops []clientv3.Op) error {
		resp, err := cli.Txn(ctx).If(mine, notSwitched).Then(ops...).Commit()
		if err != nil {
			return etcdns.Err(what, err)
		}
		if !resp.Succeeded {
			return errors.New("another process upgraded the namespace, or took the lock, meanwhile")
		}
		return nil
	}
	if err := txn("remove an earlier partial copy", []clientv3.Op{clientv3.OpDelete(records, clientv3.WithPrefix())}); err != nil {
		return fail("remove an earlier partial copy", err)
	}
	for i := 0; i < len(copies); {
		var ops []clientv3.Op
		size := 0
		for ; i < len(copies) && len(ops) < etcdTxnOps && (len(ops) == 0 || size+len(copies[i].key)+len(copies[i].value) <= etcdTxnBytes); i++ {
			ops = append(ops, clientv3.OpPut(records+copies[i].key, string(copies[i].value)))
			size += len(copies[i].key) + len(copies[i].value)
		}
		if err := txn("copy", ops); err != nil {
			return fail("copy", err)
		}
	}

	// Read the copy back.
	got, crev, err := rangeAt(ctx, cli, records, 0)
	if err != nil {
		return fail("read the copy back", err)
	}
	want := map[string][]byte{}
	for _, c := range copies {
		want[c.key] = c.value
	}
	if len(got) != len(want) {
		return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: the copy holds %d keys, want %d; the old layout is kept", ns, len(got), len(want))
	}
	for _, g := range got {
		if w, ok := want[g.key]; !ok || !bytes.Equal(w, g.value) {
			return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: the copy of %q differs; the old layout is kept", ns, g.key)
		}
	}

	// Switch: the old keys go, the layout key comes, if nothing was
	// written since it was read.
	if testHookBeforeSwitch != nil {
		testHookBeforeSwitch()
	}
	cmps := []clientv3.Cmp{mine, notSwitched,
		clientv3.Compare(clientv3.ModRevision(records), "<", crev+1).WithPrefix()}
	ops := []clientv3.Op{clientv3.OpPut(layout, layoutName)}
	for _, name := range legacyNames {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ns+name+"/"), "<", rev+1).WithPrefix())
		ops = append(ops, clientv3.OpDelete(ns+name+"/", clientv3.WithPrefix()))
	}
	sw, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fail("switch to the current layout", err)
	}
	if !sw.Succeeded {
		return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: keys of the old layout were written during the upgrade "+
			"(is an ozsecretstored of an earlier version still running on it? stop every replica), or another process "+
			"upgraded it meanwhile; the old layout is kept: run the upgrade again", ns)
	}
	return up, nil
}

// kvPair is an etcd key (without the prefix it was read under) and its
// value.
type kvPair struct {
	key   string
	value []byte
}

// rangeAt reads every key under prefix, a page at a time, at revision rev
// (0: the current one, which it returns).
func rangeAt(ctx context.Context, cli *clientv3.Client, prefix string, rev int64) ([]*kvPair, int64, error) {
	var out []*kvPair
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(etcdPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev))
		if err != nil {
			return nil, 0, err
		}
		rev = resp.Header.Revision
		for _, e := range resp.Kvs {
			out = append(out, &kvPair{key: string(e.Key[len(prefix):]), value: e.Value})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
