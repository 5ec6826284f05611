package kvstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
)

// The kv.Stores of the secretstore: the layout checked, and a bbolt file
// upgraded, before its records are read. The caller wraps the kv.Store as
// it likes (kv.Instrument) and then calls Open:
//
//	s, up, err := kvstore.OpenBoltKV(path, 0)
//	…
//	store, err := kvstore.Open(ctx, kv.Instrument(s, tp, metrics))

// OpenBoltKV opens the kv.Store of the secretstore's bbolt file at path,
// creating it and its directory if missing, after upgrading the file in
// place from the layout before kv.Store (UpgradeBolt, whose Upgrade it
// returns). It waits at most timeout (0: boltkv.DefaultTimeout) for the
// file's lock, held by a running ozsecretstored. After an upgrade it reads
// back, through the kv.Store, what the upgrade wrote, and fails unless it
// finds all of it. Errors name the file.
func OpenBoltKV(path string, timeout time.Duration) (kv.Store, Upgrade, error) {
	if timeout <= 0 {
		timeout = boltkv.DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, Upgrade{}, fmt.Errorf("create database directory: %w", err)
	}
	up, err := UpgradeBolt(path, timeout)
	if err != nil {
		return nil, Upgrade{}, err
	}
	s, err := boltkv.Open(path, timeout)
	if err != nil {
		return nil, Upgrade{}, err
	}
	if up != (Upgrade{}) {
		if err := verifyUpgrade(context.Background(), s, up); err != nil {
			s.Close()
			return nil, Upgrade{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, up, nil
}

// verifyUpgrade checks that s holds what up says an upgrade wrote, and the
// layout key.
func verifyUpgrade(ctx context.Context, s kv.Store, up Upgrade) error {
	for _, c := range []struct {
		prefix, what string
		want         int
	}{
		{prefixSecrets, "secrets", up.Secrets},
		{prefixSealingKeys, "sealing keys", up.SealingKeys},
		{prefixUpgradedOutbox, "undelivered audit events", up.Events},
	} {
		n, after := 0, ""
		for {
			kvs, err := s.Scan(ctx, c.prefix, after, 1000)
			if err != nil {
				return fmt.Errorf("read back the upgrade: %w", err)
			}
			n += len(kvs)
			if len(kvs) < 1000 {
				break
			}
			after = kvs[len(kvs)-1].Key
		}
		if n != c.want {
			return fmt.Errorf("the upgrade wrote %d %s but the store reads %d", c.want, c.what, n)
		}
	}
	if v, err := s.Get(ctx, keyLayout); err != nil || string(v) != layoutName {
		return fmt.Errorf("the upgrade wrote the layout %q but the store reads %q (%v)", layoutName, v, err)
	}
	return nil
}

// OpenEtcdKV connects to the etcd cluster of cfg and opens the kv.Store of
// namespace ns (Namespace, in a deployment). It refuses a namespace in the
// layout before kv.Store with an error (wrapping ErrUpgradeNeeded) that
// names the namespace and the command that upgrades it, and one that
// CheckEtcd finds in both layouts (ErrBothLayouts). It fails when etcd
// does not answer within ctx (etcdns.OpenTimeout if ctx has no deadline).
// Close closes the connection.
func OpenEtcdKV(ctx context.Context, cfg clientv3.Config, ns string) (kv.Store, error) {
	if err := etcdns.Check(ns); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	octx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	err = CheckEtcd(octx, cli, ns)
	if errors.Is(err, ErrUpgradeNeeded) {
		err = fmt.Errorf("%w: stop every ozsecretstored using it, then run `ozsecretstored upgrade --store etcd:%s` "+
			"(with the same --store-tls-* flags), which moves the data into the current layout, and start ozsecretstored again",
			err, strings.Join(cfg.Endpoints, ","))
	}
	if err != nil {
		cli.Close()
		return nil, err
	}
	s, err := etcdkv.New(octx, cli, ns)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &etcdOwned{Store: s, cli: cli}, nil
}

// etcdOwned is an etcdkv.Store whose Close also closes its client.
type etcdOwned struct {
	*etcdkv.Store
	cli *clientv3.Client
}

func (s *etcdOwned) Close() error { return errors.Join(s.Store.Close(), s.cli.Close()) }

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
