package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/storeflag"
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
