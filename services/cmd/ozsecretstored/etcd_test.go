package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/pki"
)

// TestEtcdStore: with --store etcd:https://… and its TLS files, the
// service keeps its secrets, sealing keys and outbox in etcd under
// /oz/secretstore/, none in the data directory; a restarted service finds
// them there, and `keyring rewrap` works on them.
func TestEtcdStore(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	srv := etcdtest.StartTLS(t, etcdtest.TLS{CA: dir.CA(), Cert: dir.For("audit").Cert, Key: dir.For("audit").Key})
	client := dir.For("secretstore")
	args := []string{"--data-dir", data, "--resolver-addr", startResolver(t, dir),
		"--store", "etcd:" + strings.Join(srv.Endpoints(), ","),
		"--store-tls-ca", dir.CA(), "--store-tls-cert", client.Cert, "--store-tls-key", client.Key}
	env := map[string]string{"OZ_DEV": "true"}

	d := startDaemon(t, args, env)
	c := dial(t, dir, d.addr)
	created, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(canary)})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	logs := d.logs.String()
	if strings.Contains(logs, "CANARY") {
		t.Fatalf("logs contain the value: %s", logs)
	}
	if !strings.Contains(logs, `"kind":"etcd"`) {
		t.Errorf("logs do not name the store:\n%s", logs)
	}

	cli := srv.Client(t)
	resp, err := cli.Get(context.Background(), "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/oz/secretstore/") {
			t.Errorf("key %q outside the secretstore's namespace", kv.Key)
		}
		if string(kv.Key) == "/oz/secretstore/records/secrets/teams/acme\x00API_KEY" {
			found = true
		}
		if bytes.Contains(kv.Value, []byte(canary)) {
			t.Errorf("key %q holds the plaintext value", kv.Key)
		}
	}
	if !found {
		t.Error("no key /oz/secretstore/records/secrets/teams/acme\\x00API_KEY in etcd")
	}
	if _, err := os.Stat(filepath.Join(data, "secretstore.db")); !os.IsNotExist(err) {
		t.Errorf("secretstore.db: got %v, want no file (the data is in etcd)", err)
	}

	// Restart: the secret is still there.
	d2 := startDaemon(t, args, env)
	got, err := dial(t, dir, d2.addr).GetSecret(as("tok-alice"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
	if err != nil {
		t.Fatalf("GetSecret after restart: %v", err)
	}
	if got.GetSecret().GetEtag() != created.GetSecret().GetEtag() {
		t.Errorf("etag after restart: got %q, want %q", got.GetSecret().GetEtag(), created.GetSecret().GetEtag())
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"keyring", "rewrap"}, args[:2]...),
		lookupIn(map[string]string{"OZ_DEV": "true", "OZ_STORE": "etcd:" + strings.Join(srv.Endpoints(), ","),
			"OZ_STORE_TLS_CA": dir.CA(), "OZ_STORE_TLS_CERT": client.Cert, "OZ_STORE_TLS_KEY": client.Key}),
		&out, io.Discard, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatalf("keyring rewrap on etcd: %v", err)
	}
	if !strings.Contains(out.String(), "of 1 data keys") {
		t.Errorf("keyring rewrap: got %q, want it to have scanned the one secret", out.String())
	}
}
