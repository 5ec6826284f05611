package kvstore

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/kv/kvupgrade"
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

// layoutUpgrade is how kvupgrade opens the audit log's stores.
var layoutUpgrade = kvupgrade.Layout[Upgrade]{
	Daemon: "ozauditd", Moves: "the log",
	UpgradeBolt: UpgradeBolt,
	Verify: func(ctx context.Context, s kv.Store, up Upgrade) error {
		return kvupgrade.Verify(ctx, s, []kvupgrade.Expect{
			{Prefix: prefixHeads, What: "chains", Want: up.Chains},
			{Prefix: prefixEvents, What: "events", Want: up.Events},
			{Prefix: prefixIDs, What: "event ids", Want: up.IDs},
		}, keyLayout, layout)
	},
	CheckEtcd:        CheckEtcd,
	ErrUpgradeNeeded: ErrUpgradeNeeded,
}

// OpenBoltKV opens the kv.Store of the audit log's bbolt file at path,
// creating it and its directory if missing, after upgrading the file in
// place from layout 1 (UpgradeBolt, whose Upgrade it returns) and reading
// back what the upgrade wrote (kvupgrade.OpenBolt). It waits at most
// timeout (0: boltkv.DefaultTimeout) for the file's lock, held by a
// running ozauditd. Errors name the file.
func OpenBoltKV(path string, timeout time.Duration) (kv.Store, Upgrade, error) {
	return kvupgrade.OpenBolt(layoutUpgrade, path, timeout)
}

// OpenEtcdKV connects to the etcd cluster of cfg and opens the kv.Store of
// the audit log under namespace ns (Namespace, in a deployment), naming in
// a refusal of layout 1 the command that upgrades it
// (kvupgrade.OpenEtcd). Close closes the connection.
func OpenEtcdKV(ctx context.Context, cfg clientv3.Config, ns string) (kv.Store, error) {
	return kvupgrade.OpenEtcd(ctx, layoutUpgrade, cfg, ns)
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
