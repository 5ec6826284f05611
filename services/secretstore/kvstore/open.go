package kvstore

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/kvupgrade"
)

// The kv.Stores of the secretstore: the layout checked, and a bbolt file
// upgraded, before its records are read. The caller wraps the kv.Store as
// it likes (kv.Instrument) and then calls Open:
//
//	s, up, err := kvstore.OpenBoltKV(path, 0)
//	…
//	store, err := kvstore.Open(ctx, kv.Instrument(s, tp, metrics))

// layoutUpgrade is how kvupgrade opens the secretstore's stores.
var layoutUpgrade = kvupgrade.Layout[Upgrade]{
	Daemon: "ozsecretstored", Moves: "the data",
	UpgradeBolt: UpgradeBolt,
	Verify: func(ctx context.Context, s kv.Store, up Upgrade) error {
		return kvupgrade.Verify(ctx, s, []kvupgrade.Expect{
			{Prefix: prefixSecrets, What: "secrets", Want: up.Secrets},
			{Prefix: prefixSealingKeys, What: "sealing keys", Want: up.SealingKeys},
			{Prefix: prefixUpgradedOutbox, What: "undelivered audit events", Want: up.Events},
		}, keyLayout, layoutName)
	},
	CheckEtcd:        CheckEtcd,
	ErrUpgradeNeeded: ErrUpgradeNeeded,
}

// OpenBoltKV opens the kv.Store of the secretstore's bbolt file at path,
// creating it and its directory if missing, after upgrading the file in
// place from the layout before kv.Store (UpgradeBolt, whose Upgrade it
// returns) and reading back what the upgrade wrote (kvupgrade.OpenBolt).
// It waits at most timeout (0: boltkv.DefaultTimeout) for the file's
// lock, held by a running ozsecretstored. Errors name the file.
func OpenBoltKV(path string, timeout time.Duration) (kv.Store, Upgrade, error) {
	return kvupgrade.OpenBolt(layoutUpgrade, path, timeout)
}

// OpenEtcdKV connects to the etcd cluster of cfg and opens the kv.Store of
// namespace ns (Namespace, in a deployment). It refuses a namespace in the
// layout before kv.Store with an error (wrapping ErrUpgradeNeeded) that
// names the namespace and the command that upgrades it, and one that
// CheckEtcd finds in both layouts (ErrBothLayouts) (kvupgrade.OpenEtcd).
// Close closes the connection.
func OpenEtcdKV(ctx context.Context, cfg clientv3.Config, ns string) (kv.Store, error) {
	return kvupgrade.OpenEtcd(ctx, layoutUpgrade, cfg, ns)
}

// OpenBolt opens the secretstore's records in the bbolt file at path:
// OpenBoltKV, then Open, with nothing between (no kv.Instrument), for
// tools and tests. Close closes the file.
func OpenBolt(ctx context.Context, path string, timeout time.Duration) (*Store, error) {
	s, _, err := OpenBoltKV(path, timeout)
	if err != nil {
		return nil, err
	}
	st, err := Open(ctx, s)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// CheckBolt runs bbolt's consistency check over the whole file at path,
// which no process may hold open (it waits at most timeout for the lock),
// and returns the first problem found.
func CheckBolt(path string, timeout time.Duration) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine sends them all
			if first == nil {
				first = fmt.Errorf("%s: %w", path, err)
			}
		}
		return first
	})
}
