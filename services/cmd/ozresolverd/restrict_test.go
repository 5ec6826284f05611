package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/resolver"
)

// TestOpenIndexesOldStore: a bbolt file whose identities a build before
// the restriction index wrote (records alone) is indexed when ozresolverd
// opens it.
func TestOpenIndexesOldStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "resolver.db")
	old, err := boltkv.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rec := resolver.AgentRecord{Team: "acme", ID: "deployer", SecretNames: []string{"DEPLOY_TOKEN"}}
	if err := old.Apply(ctx, nil, []kv.Write{kv.Put(resolver.AgentKey("acme", "deployer"), resolver.Encode(rec))}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := openStore(ctx, storeflag.Config{Kind: storeflag.Bolt, Path: path}, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	indexRestrictions(ctx, store, log)
	if _, err := store.Get(ctx, resolver.RestrictKey("acme", "DEPLOY_TOKEN", "deployer")); err != nil {
		t.Errorf("entry of deployer's reference: %v", err)
	}
	if _, err := store.Get(ctx, resolver.RestrictIndexKey); err != nil {
		t.Errorf("index mark: %v", err)
	}
}
