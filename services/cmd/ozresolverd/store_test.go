package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/lib/flagenv"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// directoryClient returns a DirectoryService client of the daemon, as the
// gateway, carrying token.
func directoryClient(t *testing.T, dataDir string, d *daemon, token string) (scopev1.DirectoryServiceClient, context.Context) {
	t.Helper()
	dir := pki.Dir(filepath.Join(dataDir, "pki"))
	tlsCfg, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(d.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return scopev1.NewDirectoryServiceClient(conn), metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// TestEtcdStore: with --store etcd:https://… and its TLS files (flags or
// OZ_STORE…, as deploy/k8s sets them), `ozresolverd bootstrap` and the
// server keep their data in etcd under /oz/resolver/, none in the data
// directory, and a restarted server finds it there.
func TestEtcdStore(t *testing.T) {
	dataDir := newDataDir(t)
	tokenFile := filepath.Join(dataDir, "bootstrap-token")
	pkiDir := pki.Dir(filepath.Join(dataDir, "pki"))
	srv := etcdtest.StartTLS(t, etcdtest.TLS{CA: pkiDir.CA(), Cert: pkiDir.For("audit").Cert, Key: pkiDir.For("audit").Key})
	store := "etcd:" + strings.Join(srv.Endpoints(), ",")
	client := pkiDir.For("resolver")

	// The recovery command, by flags.
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"bootstrap", "--data-dir", dataDir, "--user", "rescue", "--store", store,
		"--store-tls-ca", pkiDir.CA(), "--store-tls-cert", client.Cert, "--store-tls-key", client.Key},
		func(string) string { return "" }, &stdout, &stderr, slog.New(slog.NewJSONHandler(&stderr, nil)))
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr.String())
	}
	rescue := strings.TrimSuffix(stdout.String(), "\n")

	// etcd requires the client certificate: without it, no store.
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = run(short, []string{"bootstrap", "--data-dir", dataDir, "--user", "other", "--store", store, "--store-tls-ca", pkiDir.CA()},
		func(string) string { return "" }, &stdout, &stderr, slog.New(slog.NewJSONHandler(&stderr, nil)))
	if err == nil || !strings.Contains(err.Error(), "does it accept this client's TLS") {
		t.Errorf("bootstrap without a client certificate: got %v, want an error saying where to look", err)
	}

	// The server, by environment variables.
	env := map[string]string{"OZ_STORE": store, "OZ_STORE_TLS_CA": pkiDir.CA(), "OZ_STORE_TLS_CERT": client.Cert, "OZ_STORE_TLS_KEY": client.Key}
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-token-file", tokenFile}
	d := start(t, env, args...)
	if p, err := caller(t, dataDir, d, rescue); err != nil || !p.GetSystemAdmin() || p.GetName() != "users/rescue" {
		t.Fatalf("recovery token: got %v, %v, want the system admin users/rescue", p, err)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("bootstrap token file: got %v, want none (a system admin existed)", err)
	}
	dc, ctx := directoryClient(t, dataDir, d, rescue)
	if _, err := dc.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: "red"}); err != nil {
		t.Fatalf("CreateTeam: %v", err)
	}
	if !strings.Contains(d.logs.String(), `"kind":"etcd"`) {
		t.Errorf("logs do not name the store:\n%s", d.logs)
	}
	d.stop()

	cli := srv.Client(t)
	resp, err := cli.Get(context.Background(), "/oz/resolver/records/teams/red")
	if err != nil || len(resp.Kvs) != 1 {
		t.Errorf("etcd key of team red: got %v, %v, want the record", resp, err)
	}
	resp, err = cli.Get(context.Background(), "/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/oz/resolver/") {
			t.Errorf("key %q outside the resolver's namespace", kv.Key)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "resolver.db")); !os.IsNotExist(err) {
		t.Errorf("resolver.db: got %v, want no file (the data is in etcd)", err)
	}

	d = start(t, env, args...)
	dc, ctx = directoryClient(t, dataDir, d, rescue)
	if got, err := dc.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/red"}); err != nil || got.GetTeam().GetName() != "teams/red" {
		t.Errorf("GetTeam after a restart: got %v, %v, want teams/red", got, err)
	}
	d.stop()
}

// TestStoreFlagErrors: a bad --store stops both commands with a message
// naming the flag, before anything is opened.
func TestStoreFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"Serve", []string{"--store", "etcd:localhost:2379"}, nil, "--store (OZ_STORE): endpoint 1: must be http://HOST:PORT"},
		{"ServeEnv", nil, map[string]string{"OZ_STORE": "sqlite:x"}, `unknown kind of store "sqlite"`},
		{"ServeDBAndStore", []string{"--db", "a.db", "--store", "bolt:b.db"}, nil, "--db and --store: give one"},
		{"ServeTLSOverHTTP", []string{"--store", "etcd:http://127.0.0.1:2379", "--store-tls-ca", "ca.pem"}, nil, "needs https://"},
		{"Bootstrap", []string{"bootstrap", "--user", "x", "--store", "bolt:"}, nil, "bolt:PATH needs the path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out, &out, slog.New(slog.NewJSONHandler(&out, nil)))
			if !flagenv.IsUsage(err) {
				t.Errorf("got %v, want a usage error", err)
			}
			// main prints it: "ozresolverd: " and the message.
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want it to say %q", err, tt.want)
			}
		})
	}
}
