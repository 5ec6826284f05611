package kvstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/auditchain"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/etcdns"
)

// Upgrading layout 1.
//
// Layout 1 is that of the audit stores before this package (boltstore,
// etcdstore): bbolt buckets, mirrored in etcd as <namespace>B/K:
//
//	events: team 0x00 seq (8 bytes, big-endian) → the Event (the same bytes in layout 2)
//	ids:    event id → team 0x00 seq
//	heads:  team 0x00 → seq (8 bytes, big-endian) + hash (the same bytes in layout 2)
//	meta:   schema → "1" (boltkv's and etcdkv's own schema record, kept)
//
// The upgrade writes layout 2 where the kv stores keep their records —
// boltkv's bucket "records", etcdkv's keys <namespace>records/ — and, last,
// in one transaction, records the layout (meta/layout) and removes layout
// 1. A store never holds both: before that transaction the records written
// are not an audit log (New reads only a store whose layout is recorded,
// and an interrupted upgrade starts again, writing the same records), and
// after it layout 1 is gone. The event bytes are copied, not decoded:
// seqs, hashes, heads and append times are those of before, so chains
// verify and exports made before still match.
//
// A bbolt file is upgraded when it is opened (OpenBoltKV): the file lock
// excludes every other process. An etcd namespace may be in use by
// replicas of an older build, whose appends after an upgrade would be
// lost from the log, unseen (acknowledged to their emitters, in a layout
// nobody reads): it is upgraded only by UpgradeEtcd, which `ozauditd
// upgrade` runs once every replica is stopped, and OpenEtcdKV refuses it
// until then.

// Upgrade says what an upgrade carried over; the zero Upgrade, nothing.
type Upgrade struct {
	Chains int // heads
	Events int
	IDs    int // entries of the index of event ids
}

func (u Upgrade) String() string {
	return fmt.Sprintf("%d events (and %d event ids) in %d chains", u.Events, u.IDs, u.Chains)
}

func (u *Upgrade) count(bucket string) {
	switch bucket {
	case "heads":
		u.Chains++
	case "events":
		u.Events++
	case "ids":
		u.IDs++
	}
}

// ErrBothLayouts is returned for a store that holds records of layout 1
// beside layout 2: a process of an older build wrote them after the
// upgrade. Nothing is changed; what it wrote is not read.
var ErrBothLayouts = errors.New("holds the audit log in layout 2 and records of layout 1 beside it: " +
	"an ozauditd of an older build wrote them after the upgrade; stop it. " +
	"What it wrote is in layout 1, which this build does not read")

// ErrUpgradeNeeded is returned by CheckEtcd (and OpenEtcdKV) for a
// namespace in layout 1.
var ErrUpgradeNeeded = errors.New("holds the audit log in layout 1, of an older build")

// The kv stores' own names (boltkv's bucket of records and etcdkv's
// prefix of records), which the upgrade writes directly: the tests open
// the upgraded stores through boltkv and etcdkv.
var (
	boltRecords = []byte("records")
	etcdRecords = "records/"
)

// layout1 are layout 1's buckets (etcd: key prefixes).
var layout1 = []string{"heads", "events", "ids"}

// upgradeKey maps a key and value of layout 1's bucket to layout 2.
func upgradeKey(bucket string, k, v []byte) (string, []byte, error) {
	switch bucket {
	case "heads":
		team, ok := bytes.CutSuffix(k, []byte{0})
		if !ok || !validTeam(team) || len(v) != 8+auditchain.HashSize {
			return "", nil, fmt.Errorf("layout 1: heads: corrupt record %x", k)
		}
		return headKey(string(team)), v, nil
	case "events":
		team, seq, ok := splitEventKey(k)
		if !ok {
			return "", nil, fmt.Errorf("layout 1: events: corrupt key %x", k)
		}
		return eventKey(team, seq), v, nil
	case "ids":
		team, seq, ok := splitEventKey(v)
		if !ok || len(k) == 0 || bytes.ContainsAny(k, "/\x00") {
			return "", nil, fmt.Errorf("layout 1: ids: corrupt record %x", k)
		}
		return idKey(string(k)), idValue(team, seq), nil
	}
	return "", nil, fmt.Errorf("layout 1: unknown bucket %q", bucket)
}

// splitEventKey splits layout 1's team 0x00 seq.
func splitEventKey(k []byte) (string, int64, bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return "", 0, false
	}
	team := k[:len(k)-9]
	seq := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
	return string(team), seq, validTeam(team) && seq > 0
}

func validTeam(team []byte) bool { return len(team) == 0 || audit.ValidTeamID(string(team)) }

// boltCopyBatch bounds the records one transaction of a bbolt upgrade
// copies: memory stays bounded however long the log. (A variable for
// tests.)
var boltCopyBatch = 10000

// afterCopy, when set (by tests), runs after each copy transaction of a
// bbolt upgrade, whose error it returns instead of going on, and after
// the copy of an etcd upgrade, before its last transaction.
var afterCopy func() error

// UpgradeBolt upgrades the bbolt file at path from layout 1, in place,
// and reports what it carried over (the zero Upgrade when the file is in
// layout 2, is empty, or does not exist). It waits at most timeout for the
// file's lock, and holds it throughout: no other process writes the file
// meanwhile. The records are copied in transactions of boltCopyBatch, so
// that memory stays bounded however long the log; the last transaction
// records the layout and deletes layout 1's buckets. Errors name the file;
// on an error the file is still in layout 1. ErrBothLayouts: see there.
func UpgradeBolt(path string, timeout time.Duration) (Upgrade, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return Upgrade{}, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return Upgrade{}, fmt.Errorf("open %s: locked by another process (is another ozauditd running on it?)", path)
	}
	if err != nil {
		return Upgrade{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var old bool
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range layout1 {
			old = old || tx.Bucket([]byte(b)) != nil
		}
		if r := tx.Bucket(boltRecords); old && r != nil && r.Get([]byte(keyLayout)) != nil {
			return ErrBothLayouts
		}
		return nil
	})
	if err != nil || !old {
		return Upgrade{}, wrapPath(path, err)
	}
	var up Upgrade
	for _, name := range layout1 {
		var after []byte // the last key copied
		for done := false; !done; {
			err := db.Update(func(tx *bolt.Tx) error {
				src := tx.Bucket([]byte(name))
				if src == nil {
					done = true
					return nil
				}
				dst, err := tx.CreateBucketIfNotExists(boltRecords)
				if err != nil {
					return err
				}
				c := src.Cursor()
				k, v := c.First()
				if after != nil {
					if k, v = c.Seek(after); bytes.Equal(k, after) {
						k, v = c.Next()
					}
				}
				n := 0
				for ; k != nil && n < boltCopyBatch; k, v = c.Next() {
					if v == nil {
						return fmt.Errorf("layout 1: %s: nested bucket %x", name, k)
					}
					nk, nv, err := upgradeKey(name, k, v)
					if err != nil {
						return err
					}
					if err := dst.Put([]byte(nk), nv); err != nil {
						return err
					}
					after = append(after[:0], k...)
					up.count(name)
					n++
				}
				done = k == nil
				return nil
			})
			if err == nil && afterCopy != nil {
				err = afterCopy()
			}
			if err != nil {
				return Upgrade{}, wrapPath(path, fmt.Errorf("upgrade from layout 1 (not done: the file is still in layout 1): %w", err))
			}
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		dst, err := tx.CreateBucketIfNotExists(boltRecords)
		if err != nil {
			return err
		}
		if err := dst.Put([]byte(keyLayout), []byte(layout)); err != nil {
			return err
		}
		for _, name := range layout1 {
			if err := tx.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Upgrade{}, wrapPath(path, fmt.Errorf("upgrade from layout 1 (not done: the file is still in layout 1): %w", err))
	}
	return up, nil
}

func wrapPath(path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// Limits of an etcd upgrade's reads and transactions.
const (
	etcdPage = 512
	// etcdTxnOps bounds the writes of one copy transaction (etcd's
	// default --max-txn-ops), and etcdTxnBytes their keys and values
	// (under its default --max-request-bytes).
	etcdTxnOps   = 128
	etcdTxnBytes = 1 << 20
	// upgradeAttempts bounds how often the upgrade starts again because
	// layout 1 changed under it.
	upgradeAttempts = 5
)

// errMoved: layout 1 changed, or another process finished the upgrade,
// while this one copied.
var errMoved = errors.New("layout 1 changed during the copy")

// CheckEtcd returns an error wrapping ErrUpgradeNeeded when the namespace
// ns holds keys of layout 1 and is not upgraded, and ErrBothLayouts when
// it holds them beside layout 2; nil when it holds none (it is in layout
// 2, or empty). It reads, in one transaction, counts of keys.
func CheckEtcd(ctx context.Context, cli *clientv3.Client, ns string) error {
	_, n, recorded, err := lookEtcd(ctx, cli, ns)
	switch {
	case err != nil:
		return err
	case n == 0:
		return nil
	case recorded:
		return fmt.Errorf("etcd namespace %s %w (%d keys)", ns, ErrBothLayouts, n)
	}
	return fmt.Errorf("etcd namespace %s %w (%d keys)", ns, ErrUpgradeNeeded, n)
}

// UpgradeEtcd upgrades the namespace ns from layout 1, in place, and
// reports what it carried over (the zero Upgrade when there is nothing to
// upgrade). Stop every replica of ozauditd on ns first: one of an older
// build would go on writing layout 1.
//
// It reads layout 1 at one revision and copies it into layout 2 in
// transactions of its own, then, in one last transaction, records the
// layout and removes layout 1. Every one of them holds the conditions that
// the layout is not recorded yet and that nothing of layout 1 changed
// since the revision the copy read: several upgrades at once write the
// same records, and the first to finish wins. When layout 1 changes
// meanwhile (a replica of an older build still runs), the copy starts
// again, at most upgradeAttempts times; then it returns an error, and
// layout 1 stays: run it again once that replica is stopped.
// ErrBothLayouts: see there.
func UpgradeEtcd(ctx context.Context, cli *clientv3.Client, ns string) (Upgrade, error) {
	if err := etcdns.Check(ns); err != nil {
		return Upgrade{}, err
	}
	marker := ns + etcdRecords + keyLayout
	for range upgradeAttempts {
		rev, n, recorded, err := lookEtcd(ctx, cli, ns)
		switch {
		case err != nil:
			return Upgrade{}, err
		case n == 0:
			return Upgrade{}, nil
		case recorded:
			return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: it %w", ns, ErrBothLayouts)
		}
		guards := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)}
		for _, b := range layout1 {
			guards = append(guards, clientv3.Compare(clientv3.ModRevision(ns+b+"/"), "<", rev+1).WithPrefix())
		}
		up, err := copyEtcd(ctx, cli, ns, rev, guards)
		if errors.Is(err, errMoved) || errors.Is(err, rpctypes.ErrCompacted) {
			continue
		}
		if err != nil {
			return Upgrade{}, err
		}
		if afterCopy != nil {
			if err := afterCopy(); err != nil {
				return Upgrade{}, err
			}
		}
		switchOps := []clientv3.Op{clientv3.OpPut(marker, layout)}
		for _, b := range layout1 {
			switchOps = append(switchOps, clientv3.OpDelete(ns+b+"/", clientv3.WithPrefix()))
		}
		resp, err := txnWithTimeout(ctx, cli, guards, switchOps)
		if err != nil {
			return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: %w", ns, etcdns.Err("upgrade", err))
		}
		if resp.Succeeded {
			return up, nil
		}
	}
	return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: layout 1 changed during each of %d copies: "+
		"an ozauditd of an older build still writes it; stop every replica, then run the upgrade again", ns, upgradeAttempts)
}

// lookEtcd reads, at one revision, how many keys layout 1 holds under ns
// and whether layout 2 is recorded.
func lookEtcd(ctx context.Context, cli *clientv3.Client, ns string) (rev, n int64, recorded bool, err error) {
	ops := []clientv3.Op{clientv3.OpGet(ns+etcdRecords+keyLayout, clientv3.WithCountOnly())}
	for _, b := range layout1 {
		ops = append(ops, clientv3.OpGet(ns+b+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := txnWithTimeout(ctx, cli, nil, ops)
	if err != nil {
		return 0, 0, false, fmt.Errorf("etcd namespace %s: %w", ns, etcdns.Err("read the layout", err))
	}
	for i, r := range resp.Responses {
		count := r.GetResponseRange().GetCount()
		if i == 0 {
			recorded = count > 0
		} else {
			n += count
		}
	}
	return resp.Header.Revision, n, recorded, nil
}

// copyEtcd writes layout 2 of every key of layout 1 as it was at rev, in
// transactions guarded by guards; errMoved when one fails them.
func copyEtcd(ctx context.Context, cli *clientv3.Client, ns string, rev int64, guards []clientv3.Cmp) (Upgrade, error) {
	var up Upgrade
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		resp, err := txnWithTimeout(ctx, cli, guards, ops)
		if err != nil {
			return fmt.Errorf("upgrade etcd namespace %s: %w", ns, etcdns.Err("upgrade", err))
		}
		if !resp.Succeeded {
			return errMoved
		}
		ops, size = ops[:0], 0
		return nil
	}
	for _, b := range layout1 {
		start, end := ns+b+"/", clientv3.GetPrefixRangeEnd(ns+b+"/")
		for start < end {
			rctx, cancel := etcdns.WithOpenTimeout(ctx)
			resp, err := cli.Get(rctx, start, clientv3.WithRange(end), clientv3.WithRev(rev),
				clientv3.WithLimit(etcdPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
			cancel()
			if errors.Is(err, rpctypes.ErrCompacted) {
				return Upgrade{}, err
			}
			if err != nil {
				return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s: %w", ns, etcdns.Err("upgrade", err))
			}
			for _, e := range resp.Kvs {
				k, v, err := upgradeKey(b, e.Key[len(ns)+len(b)+1:], e.Value)
				if err != nil {
					return Upgrade{}, fmt.Errorf("upgrade etcd namespace %s (unchanged): %w", ns, err)
				}
				if len(ops) == etcdTxnOps || len(ops) > 0 && size+len(k)+len(v) > etcdTxnBytes {
					if err := flush(); err != nil {
						return Upgrade{}, err
					}
				}
				ops = append(ops, clientv3.OpPut(ns+etcdRecords+k, string(v)))
				size += len(k) + len(v)
				up.count(b)
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return up, flush()
}

// txnWithTimeout commits one transaction, bounded by etcdns.OpenTimeout
// when ctx has no deadline.
func txnWithTimeout(ctx context.Context, cli *clientv3.Client, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	return cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
}
