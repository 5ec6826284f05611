package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// openStore opens the store sc chooses: a bbolt file, waiting at most
// boltTimeout for its lock, or the resolver's namespace in etcd.
func openStore(ctx context.Context, sc storeflag.Config, boltTimeout time.Duration, log *slog.Logger) (kv.Store, error) {
	log.Info("store", "kind", sc.Kind.String(), "store", sc.String())
	if sc.Kind != storeflag.Etcd {
		return boltkv.Open(sc.Path, boltTimeout)
	}
	cfg, err := sc.EtcdClient(log)
	if err != nil {
		return nil, err
	}
	return etcdkv.Open(ctx, cfg, etcdkv.Namespace)
}

// indexRestrictions completes the index of agent identities' secret
// references in a store an older build wrote (runs.BuildRestrictionIndex),
// before the first resolution relies on it. A failure is not fatal: until
// the index is built, a resolution builds it or is refused (Unavailable),
// never decided without it.
func indexRestrictions(ctx context.Context, store kv.Store, log *slog.Logger) {
	start := time.Now()
	n, err := runs.BuildRestrictionIndex(ctx, store)
	switch {
	case err != nil:
		log.Warn("index of agent identities' secret references not built; resolutions will build it or refuse", "err", err)
	case n > 0:
		log.Info("indexed agent identities' secret references written by an older build", "entries", n, "took", time.Since(start))
	}
}
