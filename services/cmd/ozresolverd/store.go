package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/boltstore"
	"github.com/ozsecrets/oz/services/resolver/etcdstore"
)

// openStore opens the store sc chooses: a bbolt file, waiting at most
// boltTimeout for its lock, or the resolver's namespace in etcd.
func openStore(ctx context.Context, sc storeflag.Config, boltTimeout time.Duration, log *slog.Logger) (resolver.Store, error) {
	log.Info("store", "kind", sc.Kind.String(), "store", sc.String())
	if sc.Kind != storeflag.Etcd {
		return boltstore.Open(sc.Path, boltTimeout)
	}
	cfg, err := sc.EtcdClient(log)
	if err != nil {
		return nil, err
	}
	return etcdstore.Open(ctx, cfg, etcdstore.Namespace)
}
