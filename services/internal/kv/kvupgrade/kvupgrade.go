// Package kvupgrade opens a service's kv.Store when its data may still be
// in the layout of an older build, the same way for every service: a bbolt
// file is upgraded in place before it is opened (the service holds the
// file's lock, so nothing else writes it meanwhile) and read back after;
// an etcd namespace, which several replicas share, is refused with the
// command that upgrades it once every replica is stopped.
//
// A service's record layout (secretstore/kvstore, audit/kvstore) supplies
// what is its own in a Layout: how to upgrade a file, how to recognise the
// old layout in etcd, and what an upgrade must have written.
package kvupgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
)

// Layout is what a service's record layout tells the opener. U is the
// summary of an upgrade; its zero value means nothing was upgraded.
type Layout[U comparable] struct {
	// Daemon is the service's binary, named in a refusal: "ozauditd".
	Daemon string
	// Moves completes "which moves … into the current layout": "the log".
	Moves string
	// UpgradeBolt upgrades the file at path in place, waiting at most
	// timeout for its lock; the zero U when it was already current or new.
	UpgradeBolt func(path string, timeout time.Duration) (U, error)
	// Verify checks that s holds what the upgrade summarised by u wrote.
	Verify func(ctx context.Context, s kv.Store, u U) error
	// CheckEtcd returns an error wrapping ErrUpgradeNeeded when the
	// namespace holds the old layout.
	CheckEtcd        func(ctx context.Context, cli *clientv3.Client, ns string) error
	ErrUpgradeNeeded error
}

// OpenBolt opens the kv.Store of the bbolt file at path, creating it and
// its directory if missing, after upgrading it in place (l.UpgradeBolt,
// whose summary it returns). It waits at most timeout (0:
// boltkv.DefaultTimeout) for the file's lock. After an upgrade it reads
// back, through the kv.Store, what the upgrade wrote (l.Verify), and fails
// unless it finds all of it. Errors name the file.
func OpenBolt[U comparable](l Layout[U], path string, timeout time.Duration) (kv.Store, U, error) {
	var none U
	if timeout <= 0 {
		timeout = boltkv.DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, none, fmt.Errorf("create database directory: %w", err)
	}
	up, err := l.UpgradeBolt(path, timeout)
	if err != nil {
		return nil, none, err
	}
	s, err := boltkv.Open(path, timeout)
	if err != nil {
		return nil, none, err
	}
	if up != none {
		if err := l.Verify(context.Background(), s, up); err != nil {
			s.Close()
			return nil, none, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, up, nil
}

// OpenEtcd connects to the etcd cluster of cfg and opens the kv.Store of
// namespace ns. A namespace in the old layout (l.CheckEtcd) is refused
// with an error wrapping l.ErrUpgradeNeeded that names the command that
// upgrades it. It fails when etcd does not answer within ctx
// (etcdns.OpenTimeout if ctx has no deadline). Close closes the
// connection.
func OpenEtcd[U comparable](ctx context.Context, l Layout[U], cfg clientv3.Config, ns string) (kv.Store, error) {
	if err := etcdns.Check(ns); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	octx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	err = l.CheckEtcd(octx, cli, ns)
	if errors.Is(err, l.ErrUpgradeNeeded) {
		err = fmt.Errorf("%w: stop every %s using it, then run `%s upgrade --store etcd:%s` "+
			"(with the same --store-tls-* flags), which moves %s into the current layout, and start %s again",
			err, l.Daemon, l.Daemon, strings.Join(cfg.Endpoints, ","), l.Moves, l.Daemon)
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
	return &owned{Store: s, cli: cli}, nil
}

// owned is a kv.Store whose Close also closes its etcd client.
type owned struct {
	kv.Store
	cli *clientv3.Client
}

func (s *owned) Close() error { return errors.Join(s.Store.Close(), s.cli.Close()) }

// Expect is what an upgrade wrote under one prefix: Want keys, which are
// What ("events").
type Expect struct {
	Prefix, What string
	Want         int
}

// Verify checks that s holds as many keys under each prefix as expected,
// and layout at layoutKey: what a layout's Verify calls.
func Verify(ctx context.Context, s kv.Store, expect []Expect, layoutKey, layout string) error {
	for _, e := range expect {
		n, err := count(ctx, s, e.Prefix)
		if err != nil {
			return fmt.Errorf("read back the upgrade: %w", err)
		}
		if n != e.Want {
			return fmt.Errorf("the upgrade wrote %d %s but the store reads %d", e.Want, e.What, n)
		}
	}
	if v, err := s.Get(ctx, layoutKey); err != nil || string(v) != layout {
		return fmt.Errorf("the upgrade wrote the layout %q but the store reads %q (%v)", layout, v, err)
	}
	return nil
}

// count counts the keys under prefix, a page at a time.
func count(ctx context.Context, s kv.Store, prefix string) (int, error) {
	const page = 1000
	n, after := 0, ""
	for {
		kvs, err := s.Scan(ctx, prefix, after, page)
		if err != nil {
			return 0, err
		}
		n += len(kvs)
		if len(kvs) < page {
			return n, nil
		}
		after = kvs[len(kvs)-1].Key
	}
}
