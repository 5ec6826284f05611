package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
)

// The kv.Stores of the audit log: a bbolt file upgraded, or an etcd
// namespace checked, before its records are read. The caller wraps the
// kv.Store as it likes (kv.Instrument) and then calls New:
//
//	s, up, err := kvstore.OpenBoltKV(path, 0)
//	…
//	log, err := kvstore.New(ctx, kv.Instrument(s, tp, metrics), kvstore.BoltOptions)

// Namespace is the audit log's namespace in a shared etcd.
const Namespace = "/oz/audit/"

// OpenBoltKV opens the kv.Store of the audit log's bbolt file at path,
// creating it and its directory if missing, after upgrading the file in
// place from layout 1 (UpgradeBolt, whose Upgrade it returns). It waits
// at most timeout (0: boltkv.DefaultTimeout) for the file's lock, held by
// a running ozauditd. After an upgrade it reads back, through the
// kv.Store, what the upgrade wrote, and fails unless it finds all of it.
// Errors name the file.
func OpenBoltKV(path string, timeout time.Duration) (kv.Store, Upgrade, error) {
	if timeout <= 0 {
		timeout = boltkv.DefaultTimeout
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

// verifyUpgrade checks that s holds the layout and as many chains, events
// and ids as up says an upgrade wrote.
func verifyUpgrade(ctx context.Context, s kv.Store, up Upgrade) error {
	for _, c := range []struct {
		prefix, what string
		want         int
	}{
		{prefixHeads, "chains", up.Chains},
		{prefixEvents, "events", up.Events},
		{prefixIDs, "event ids", up.IDs},
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
	if v, err := s.Get(ctx, keyLayout); err != nil || string(v) != layout {
		return fmt.Errorf("the upgrade wrote the layout %q but the store reads %q (%v)", layout, v, err)
	}
	return nil
}

// OpenEtcdKV connects to the etcd cluster of cfg and opens the kv.Store of
// the audit log under namespace ns (Namespace, in a deployment), as
// NewEtcdKV does, naming in a refusal of layout 1 the command that
// upgrades it. Close closes the connection.
func OpenEtcdKV(ctx context.Context, cfg clientv3.Config, ns string) (kv.Store, error) {
	if err := etcdns.Check(ns); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	s, err := NewEtcdKV(ctx, cli, ns)
	if errors.Is(err, ErrUpgradeNeeded) {
		err = fmt.Errorf("%w: stop every ozauditd using it, then run `ozauditd upgrade --store etcd:%s` "+
			"(with the same --store-tls-* flags), which moves the log into the current layout, and start ozauditd again",
			err, strings.Join(cfg.Endpoints, ","))
	}
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &etcdOwned{Store: s, cli: cli}, nil
}

// NewEtcdKV opens the kv.Store of the audit log under namespace ns on an
// existing client, which the caller closes after the store. It refuses a
// namespace of layout 1 with an error wrapping ErrUpgradeNeeded (see
// UpgradeEtcd), and one in both layouts (ErrBothLayouts). It fails when
// etcd does not answer within ctx (etcdns.OpenTimeout if ctx has no
// deadline).
func NewEtcdKV(ctx context.Context, cli *clientv3.Client, ns string) (kv.Store, error) {
	if err := etcdns.Check(ns); err != nil {
		return nil, err
	}
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	if err := CheckEtcd(ctx, cli, ns); err != nil {
		return nil, err
	}
	return etcdkv.New(ctx, cli, ns)
}

// etcdOwned is an etcdkv.Store whose Close also closes its client.
type etcdOwned struct {
	kv.Store
	cli *clientv3.Client
}

func (s *etcdOwned) Close() error { return errors.Join(s.Store.Close(), s.cli.Close()) }
