package main

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/flagenv"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
)

const canary = "CANARY-main-5aa1-never-logged"

// fakeResolver answers AuthService.Authenticate from a map of tokens.
type fakeResolver struct {
	internalapiv1.UnimplementedAuthServiceServer
	principals map[string]*scopev1.Principal
}

func (f *fakeResolver) Authenticate(_ context.Context, req *internalapiv1.AuthenticateRequest) (*internalapiv1.AuthenticateResponse, error) {
	p, ok := f.principals[req.GetBearerToken()]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown token")
	}
	return &internalapiv1.AuthenticateResponse{Principal: p}, nil
}

// startResolver serves a fake resolver on loopback with the resolver's
// certificate, admitting only the secretstore's certificate, like the real
// one.
func startResolver(t *testing.T, dir pki.Dir) string {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(dir.For("resolver"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name: "resolver", TLS: tlsCfg, Logger: slog.New(slog.DiscardHandler),
		Rules: auth.Rules{"/oz.internalapi.v1.AuthService/": {Access: auth.Internal, Services: []string{"secretstore"}}},
	})
	internalapiv1.RegisterAuthServiceServer(srv, &fakeResolver{principals: map[string]*scopev1.Principal{
		"tok-alice": {Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice",
			Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_ADMIN}}},
		"tok-bob": {Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/bob",
			Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_MEMBER}}},
		"tok-root": {Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/root", SystemAdmin: true},
		"tok-runner": {Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_RUNNER, Name: "runners/r1",
			Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_ADMIN}}},
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lookupIn(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

type daemon struct {
	addr string
	logs *syncBuffer
	stop func() error // stops it gracefully and returns what run returned
}

// startDaemon runs the service in this process as main would. Without
// OZ_AUDIT_ADDR in env, its audit events go nowhere (a closed port): they
// wait in the outbox.
func startDaemon(t *testing.T, args []string, env map[string]string) *daemon {
	t.Helper()
	if _, ok := env["OZ_AUDIT_ADDR"]; !ok {
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		env["OZ_AUDIT_ADDR"] = "127.0.0.1:1"
	}
	d := &daemon{logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, withInit(append([]string{"--listen", "127.0.0.1:0"}, args...), lookupIn(env)), lookupIn(env), io.Discard, io.Discard, log, func(a server.Addrs) { ready <- a })
	}()
	select {
	case a := <-ready:
		d.addr = a.GRPC.String()
	case err := <-done:
		cancel()
		t.Fatalf("run returned before serving: %v\nlogs: %s", err, d.logs)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("the service did not start in 10s")
	}
	var once sync.Once
	var runErr error
	d.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { d.stop() })
	return d
}

func dial(t *testing.T, dir pki.Dir, addr string) secretsv1.SecretServiceClient {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretsv1.NewSecretServiceClient(conn)
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// TestServeDev starts the service in dev mode against a fake resolver, uses
// it over mutual TLS, stops it, starts it again on the same data, and reads
// the database file with the generated keyring.
func TestServeDev(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolver := startResolver(t, dir)
	args := []string{"--data-dir", data, "--resolver-addr", resolver}
	env := map[string]string{"OZ_DEV": "true"}

	d := startDaemon(t, args, env)
	c := dial(t, dir, d.addr)
	created, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(canary)})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if _, err := c.GetSecret(as("tok-bob"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
		t.Fatalf("GetSecret as a member: %v", err)
	}
	if _, err := c.CreateSecret(as("tok-bob"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "X", Value: []byte(canary)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateSecret as a member: got %v, want PermissionDenied", err)
	}
	if _, err := c.ListSecrets(as("tok-runner"), &secretsv1.ListSecretsRequest{Parent: "teams/acme"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ListSecrets as a runner: got %v, want PermissionDenied", err)
	}
	if _, err := c.ListSecrets(as("tok-nobody"), &secretsv1.ListSecretsRequest{Parent: "teams/acme"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListSecrets with an unknown token: got %v, want Unauthenticated", err)
	}
	if _, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "BIG", Value: bytes.Repeat([]byte("x"), 65537)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateSecret of 64 KiB + 1: got %v, want InvalidArgument", err)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("graceful stop: got %v, want nil", err)
	}

	krPath := filepath.Join(data, "keyring.json")
	fi, err := os.Stat(krPath)
	if err != nil {
		t.Fatalf("dev keyring: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("dev keyring mode: got %v, want 0600", got)
	}
	if logs := d.logs.String(); strings.Contains(logs, "CANARY") {
		t.Fatalf("logs contain the value: %s", logs)
	} else if !strings.Contains(logs, `"msg":"keyring loaded"`) || !strings.Contains(logs, `"generated":true`) {
		t.Errorf("logs do not say the keyring was generated: %s", logs)
	}

	// Restart: the same keyring is loaded, the secret is still there.
	d2 := startDaemon(t, args, env)
	c2 := dial(t, dir, d2.addr)
	got, err := c2.GetSecret(as("tok-alice"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
	if err != nil {
		t.Fatalf("GetSecret after restart: %v", err)
	}
	if got.GetSecret().GetEtag() != created.GetSecret().GetEtag() {
		t.Errorf("etag after restart: got %q, want %q", got.GetSecret().GetEtag(), created.GetSecret().GetEtag())
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d2.logs.String(), `"generated":false`) {
		t.Errorf("second start generated another keyring: %s", d2.logs)
	}
	if v := unseal(t, filepath.Join(data, "secretstore.db"), krPath, "API_KEY"); v != canary {
		t.Fatalf("stored value: got %q, want the canary", v)
	}
}

// TestServeRunSecrets checks that the service serves the internal
// RunSecretsService beside SecretService, to the resolver's certificate
// only, sealing values the runner can open.
func TestServeRunSecrets(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolver := startResolver(t, dir)
	d := startDaemon(t, []string{"--data-dir", data, "--resolver-addr", resolver}, map[string]string{"OZ_DEV": "1"})
	if _, err := dial(t, dir, d.addr).CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(canary)}); err != nil {
		t.Fatal(err)
	}
	kem, err := hpke.NewKEM(0x647a) // ML-KEM-768 + X25519
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const info = "oz-run-v1|teams/acme/runs/r1"
	runClient := func(cert string) internalapiv1.RunSecretsServiceClient {
		tlsCfg, err := pki.ClientConfig(dir.For(cert), dir.CA())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := server.Dial(d.addr, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return internalapiv1.NewRunSecretsServiceClient(conn)
	}
	// As the resolver resolves a run: the candidates, then the sealing of
	// those it decided on.
	listed, err := runClient("resolver").ListRunSecrets(context.Background(), &internalapiv1.ListRunSecretsRequest{Owners: []string{"users/alice", "teams/acme"}})
	if err != nil {
		t.Fatalf("ListRunSecrets as the resolver: %v", err)
	}
	req := &internalapiv1.SealRunSecretsRequest{
		Secrets:   listed.GetSecrets(),
		Recipient: &scopev1.RecipientKey{KemId: 0x647a, PublicKey: priv.PublicKey().Bytes()},
		Info:      []byte(info),
	}
	resp, err := runClient("resolver").SealRunSecrets(context.Background(), req)
	if err != nil {
		t.Fatalf("SealRunSecrets as the resolver: %v", err)
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), resp.GetSealed().GetCiphertext())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(pt, &env); err != nil {
		t.Fatal(err)
	}
	if len(env.GetVars()) != 1 || env.GetVars()[0].GetName() != "API_KEY" || string(env.GetVars()[0].GetValue()) != canary {
		t.Fatalf("opened environment: got %d variables, want API_KEY", len(env.GetVars()))
	}
	if _, err := runClient("gateway").SealRunSecrets(context.Background(), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SealRunSecrets as the gateway: got %v, want PermissionDenied", err)
	}
	if _, err := runClient("resolver").SealRunSecrets(as("tok-alice"), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SealRunSecrets with a bearer token: got %v, want PermissionDenied", err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.logs.String(), canary) {
		t.Fatalf("logs contain the value: %s", d.logs)
	}
}

// unseal reads one acme secret's value from a stopped service's files.
func unseal(t *testing.T, db, krPath, name string) string {
	t.Helper()
	kr, err := keyring.Load(krPath)
	if err != nil {
		t.Fatal(err)
	}
	store, err := kvstore.OpenBolt(context.Background(), db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr})
	vals, _, err := svc.UnsealValues(context.Background(), secretstore.Team("acme"), []string{name})
	if err != nil || len(vals) != 1 {
		t.Fatalf("UnsealValues: %v, %v", vals, err)
	}
	return string(vals[0].Value.Bytes())
}

func TestKeyringSources(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolver := startResolver(t, dir)
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	js, err := kr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	kekFile := filepath.Join(t.TempDir(), "kek.json")
	if err := kr.Save(kekFile); err != nil {
		t.Fatal(err)
	}

	t.Run("NoneRefused", func(t *testing.T) {
		err := run(context.Background(), []string{"--data-dir", data, "--resolver-addr", resolver}, lookupIn(nil), io.Discard, io.Discard, slog.New(slog.DiscardHandler), nil)
		if err == nil || !strings.Contains(err.Error(), "--kek-file") {
			t.Fatalf("run without a keyring: got %v, want an error naming --kek-file", err)
		}
		if _, err := os.Stat(filepath.Join(data, "keyring.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a keyring was generated without --dev")
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"Env", nil, map[string]string{"OZ_KEYRING": string(js)}},
		{"FileFlag", []string{"--kek-file", kekFile}, nil},
		{"FileEnv", nil, map[string]string{"OZ_KEK_FILE": kekFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A store of its own, so a data directory of its own (one
			// data directory holds one secretstore), with the same pki.
			sub := t.TempDir()
			if err := os.Symlink(filepath.Join(data, "pki"), filepath.Join(sub, "pki")); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(sub, "s.db")
			d := startDaemon(t, append([]string{"--data-dir", sub, "--db", db, "--resolver-addr", resolver}, tc.args...), tc.env)
			c := dial(t, dir, d.addr)
			if _, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "K", Value: []byte("v-" + tc.name)}); err != nil {
				t.Fatal(err)
			}
			if err := d.stop(); err != nil {
				t.Fatal(err)
			}
			if got := unseal(t, db, kekFile, "K"); got != "v-"+tc.name {
				t.Fatalf("value sealed under the given keyring: got %q", got)
			}
		})
	}
}

func TestKeyringCommands(t *testing.T) {
	data := t.TempDir()
	db := filepath.Join(data, "secretstore.db")
	krPath := filepath.Join(data, "keyring.json")
	kr, _, err := keyring.LoadOrCreate(krPath)
	if err != nil {
		t.Fatal(err)
	}
	// Seed secrets as the service would.
	store, err := kvstore.OpenBolt(context.Background(), db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr})
	alice := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	for _, n := range []string{"A", "B"} {
		if _, err := svc.Create(context.Background(), alice, secretstore.CreateRequest{Parent: "teams/acme", SecretID: n, Value: []byte("value " + n)}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := store.Get(context.Background(), secretstore.Team("acme"), "A")

	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, lookupIn(map[string]string{"OZ_DEV": "1", "OZ_DATA_DIR": data}), &out, io.Discard, slog.New(slog.DiscardHandler), nil)
		return out.String(), err
	}
	// The database is locked while "the service" runs.
	if _, err := cmd("keyring", "rewrap"); err == nil || !strings.Contains(err.Error(), "stop the service") {
		t.Fatalf("rewrap of a locked database: got %v, want an error saying to stop the service", err)
	}
	store.Close()

	out, err := cmd("keyring", "rotate")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if !strings.Contains(out, "k2") {
		t.Errorf("rotate output: got %q, want it to name k2", out)
	}
	rotated, err := keyring.Load(krPath)
	if err != nil || rotated.Primary() != "k2" {
		t.Fatalf("keyring after rotate: %v, %v", rotated, err)
	}
	fi, _ := os.Stat(krPath)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring mode after rotate: got %v, want 0600", fi.Mode().Perm())
	}
	out, err = cmd("keyring", "rewrap")
	if err != nil {
		t.Fatalf("rewrap: %v", err)
	}
	if !strings.Contains(out, "rewrapped 2 of 2") {
		t.Errorf("rewrap output: got %q, want rewrapped 2 of 2", out)
	}
	store, err = kvstore.OpenBolt(context.Background(), db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := store.Get(context.Background(), secretstore.Team("acme"), "A")
	store.Close()
	if after.Value.KEKID != "k2" || !bytes.Equal(after.Value.Ciphertext, before.Value.Ciphertext) {
		t.Fatalf("after rewrap: KEKID %q, ciphertext unchanged %v; want k2, true", after.Value.KEKID, bytes.Equal(after.Value.Ciphertext, before.Value.Ciphertext))
	}
	if got := unseal(t, db, krPath, "B"); got != "value B" {
		t.Fatalf("value after rotate and rewrap: got %q", got)
	}

	t.Run("Generate", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "prod-kek.json")
		if _, err := cmd("keyring", "generate", "--kek-file", path); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.Load(path); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd("keyring", "generate", "--kek-file", path); err == nil {
			t.Fatal("generate over an existing keyring: got no error")
		}
	})
	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{{"keyring"}, {"keyring", "spin"}, {"--no-such-flag"}, {"extra-arg"}} {
			if _, err := cmd(args...); !flagenv.IsUsage(err) {
				t.Errorf("%v: got %v, want a usage error", args, err)
			}
		}
		if _, err := cmd("-h"); !errors.Is(err, flagenv.ErrHelp) {
			t.Errorf("-h: got %v, want flag.ErrHelp", err)
		}
	})
}

func TestFlags(t *testing.T) {
	c, err := parse("t", nil, lookupIn(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		daemon: server.Daemon{
			Name: "secretstore", Listen: "127.0.0.1:7450", DataDir: ".oz",
			Store:          storeflag.Config{Kind: storeflag.Bolt, Path: filepath.Join(".oz", "secretstore.db")},
			TLS:            pki.Paths{Cert: filepath.Join(".oz", "pki", "secretstore.pem"), Key: filepath.Join(".oz", "pki", "secretstore-key.pem")},
			CA:             filepath.Join(".oz", "pki", "ca.pem"),
			DeniedInterval: server.DefaultDeniedInterval,
			AuthTimeout:    server.DefaultAuthTimeout, CallTimeout: server.DefaultCallTimeout,
			Namespace: kvstore.Namespace, StoreCheck: boltcheck.DefaultTimeout,
		},
		resolverAddr:  "127.0.0.1:7451",
		maxValueBytes: 65536, maxDescriptionChars: 1024, sealingKeyGrace: 24 * time.Hour,
		auditAddr: "127.0.0.1:7452",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("defaults: got %+v, want %+v", *c, want)
	}
	env := map[string]string{
		"OZ_SECRETSTORE_LISTEN": "127.0.0.1:1", "OZ_DATA_DIR": "/d", "OZ_SECRETSTORE_DB": "/x.db", "OZ_RESOLVER_ADDR": "r:1",
		"OZ_SECRETSTORE_TLS_CERT": "/c.pem", "OZ_SECRETSTORE_TLS_KEY": "/k.pem", "OZ_TLS_CA": "/ca.pem", "OZ_KEK_FILE": "/kek.json",
		"OZ_DEV": "true", "OZ_SECRETSTORE_MAX_VALUE_BYTES": "100", "OZ_SECRETSTORE_MAX_DESCRIPTION_CHARS": "10",
		"OZ_SEALING_KEY_GRACE": "90m", "OZ_REQUIRE_SEALED": "true",
		"OZ_AUDIT_ADDR": "a:1", "OZ_SECRETSTORE_METRICS_LISTEN": "127.0.0.1:9",
	}
	c, err = parse("t", []string{"--listen", "127.0.0.1:2", "--max-value-bytes", "200"}, lookupIn(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = config{
		daemon: server.Daemon{
			Name: "secretstore", Listen: "127.0.0.1:2", DataDir: "/d", Store: storeflag.Config{Kind: storeflag.Bolt, Path: "/x.db"},
			TLS: pki.Paths{Cert: "/c.pem", Key: "/k.pem"}, CA: "/ca.pem", MetricsListen: "127.0.0.1:9",
			DeniedInterval: server.DefaultDeniedInterval,
			AuthTimeout:    server.DefaultAuthTimeout, CallTimeout: server.DefaultCallTimeout,
			Namespace: kvstore.Namespace, StoreCheck: boltcheck.DefaultTimeout,
		},
		resolverAddr: "r:1", kekFile: "/kek.json", dev: true, maxValueBytes: 200, maxDescriptionChars: 10,
		sealingKeyGrace: 90 * time.Minute, requireSealed: true, auditAddr: "a:1",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("from env and flags: got %+v, want %+v", *c, want)
	}
	for _, bad := range []map[string]string{{"OZ_DEV": "maybe"}, {"OZ_SECRETSTORE_MAX_VALUE_BYTES": "lots"},
		{"OZ_SEALING_KEY_GRACE": "a day"}, {"OZ_REQUIRE_SEALED": "please"}} {
		if _, err := parse("t", nil, lookupIn(bad), io.Discard); !flagenv.IsUsage(err) {
			t.Errorf("env %v: got %v, want a usage error", bad, err)
		}
	}
	if _, err := parse("t", []string{"--max-value-bytes", "-1"}, lookupIn(nil), io.Discard); !flagenv.IsUsage(err) {
		t.Errorf("negative limit: got %v, want a usage error", err)
	}
	if _, err := parse("t", []string{"--sealing-key-grace", "-1h"}, lookupIn(nil), io.Discard); !flagenv.IsUsage(err) {
		t.Errorf("negative grace: got %v, want a usage error", err)
	}
}

// TestMaxValueBytesFlag checks that the limit reaches the Service.
func TestMaxValueBytesFlag(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, []string{"--dev", "--data-dir", data, "--resolver-addr", startResolver(t, dir), "--max-value-bytes", "8", "--max-description-chars", "4"}, nil)
	c := dial(t, dir, d.addr)
	_, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "K", Value: []byte("123456789")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "at most 8 bytes") {
		t.Fatalf("9-byte value with --max-value-bytes 8: got %v", err)
	}
	_, err = c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "K", Value: []byte("1"), Description: "abcde"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "at most 4 characters") {
		t.Fatalf("5-character description with --max-description-chars 4: got %v", err)
	}
}
