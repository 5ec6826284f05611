package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/etcdtest"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
)

// legacy is where the fixtures of stores written by the secretstore before
// it stood on kv.Store are (see kvstore's upgrade tests).
const legacy = "../../secretstore/kvstore/testdata/legacy"

// TestUpgradeBoltOnServe: a bbolt file of the earlier layout is upgraded
// when the service opens it, says so in its log, and serves what it held;
// `upgrade` then finds nothing to do.
func TestUpgradeBoltOnServe(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(data, "secretstore.db")
	b, err := os.ReadFile(filepath.Join(legacy, "secretstore.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	kek := filepath.Join(legacy, "keyring-bolt.json")
	args := []string{"--data-dir", data, "--db", db, "--kek-file", kek, "--resolver-addr", startResolver(t, dir)}
	d := startDaemon(t, args, nil)
	got, err := dial(t, dir, d.addr).GetSecret(as("tok-alice"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
	if err != nil {
		t.Fatalf("GetSecret of an upgraded secret: %v", err)
	}
	if got.GetSecret().GetDescription() != "the API key, rotated" {
		t.Errorf("description: got %q", got.GetSecret().GetDescription())
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := d.logs.String(); !strings.Contains(logs, "store upgraded from the layout of an earlier version") || !strings.Contains(logs, `"secrets":6`) {
		t.Errorf("logs do not report the upgrade:\n%s", logs)
	}
	if v := unseal(t, db, kek, "API_KEY"); v != "test value of teams/acme/secrets/API_KEY v2" {
		t.Errorf("upgraded value: got %q", v)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"upgrade", "--db", db}, lookupIn(nil), &out, io.Discard, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing to upgrade") {
		t.Errorf("upgrade of an upgraded file: got %q", out.String())
	}
}

// TestUpgradeEtcdCommand: an etcd namespace of the earlier layout is
// refused, with the command to run; `upgrade` upgrades it, and the service
// then serves what it held.
func TestUpgradeEtcdCommand(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	raw, err := os.ReadFile(filepath.Join(legacy, "etcd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Key, Value string }
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		k, err1 := base64.StdEncoding.DecodeString(e.Key)
		v, err2 := base64.StdEncoding.DecodeString(e.Value)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(context.Background(), kvstore.Namespace+string(k), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	store := "etcd:" + strings.Join(srv.Endpoints(), ",")
	args := []string{"--data-dir", data, "--store", store, "--kek-file", filepath.Join(legacy, "keyring-etcd.json"),
		"--resolver-addr", startResolver(t, dir), "--listen", "127.0.0.1:0", "--audit-addr", "127.0.0.1:1"}

	err = run(context.Background(), args, lookupIn(nil), io.Discard, io.Discard, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, kvstore.ErrUpgradeNeeded) || !strings.Contains(err.Error(), "ozsecretstored upgrade --store "+store) {
		t.Fatalf("serve on the earlier layout: got %v, want a refusal naming `ozsecretstored upgrade --store %s`", err, store)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"upgrade", "--store", store}, lookupIn(nil), &out, io.Discard, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if !strings.Contains(out.String(), "carried over 7 secrets, 4 sealing keys and 10 undelivered audit events") {
		t.Errorf("upgrade: got %q", out.String())
	}

	d := startDaemon(t, args[:len(args)-4], nil)
	got, err := dial(t, dir, d.addr).GetSecret(as("tok-bob"), &secretsv1.GetSecretRequest{Name: "users/bob/secrets/BOB_ONLY"})
	if err != nil {
		t.Fatalf("GetSecret after the upgrade: %v", err)
	}
	if got.GetSecret().GetDescription() != "from the second replica" {
		t.Errorf("description: got %q", got.GetSecret().GetDescription())
	}
}
