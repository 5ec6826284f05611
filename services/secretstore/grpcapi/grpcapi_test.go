package grpcapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// fakeAuth maps test tokens to principals.
type fakeAuth struct {
	AuthenticateFunc func(ctx context.Context, token string) (*auth.Principal, error)
}

var _ auth.Authenticator = (*fakeAuth)(nil)

func (f *fakeAuth) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	return f.AuthenticateFunc(ctx, token)
}

// Test principals, by token.
var principals = map[string]*auth.Principal{
	"admin":    {Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}},
	"member":   {Kind: auth.KindUser, Name: "users/bob", ID: "bob", Teams: map[string]auth.Role{"acme": auth.RoleMember}},
	"outsider": {Kind: auth.KindUser, Name: "users/carol", ID: "carol", Teams: map[string]auth.Role{"beta": auth.RoleAdmin}},
	"sysadmin": {Kind: auth.KindUser, Name: "users/root", ID: "root", SystemAdmin: true, Teams: map[string]auth.Role{}},
	"runner":   {Kind: auth.KindRunner, Name: "runners/r1", ID: "r1", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}},
	"agent":    {Kind: auth.KindAgent, Name: "teams/acme/agents/default", ID: "default", Teams: map[string]auth.Role{"acme": auth.RoleMember}},
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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

type testEnv struct {
	svc    *secretstore.Service
	store  *kvstore.Store
	seal   *sealing.Service
	clock  *testClock // the sealing keys' clock
	dbPath string
	logs   *syncBuffer
	pki    pki.Dir
	addr   string
	stop   func() // stops the server and closes the store; idempotent
}

// testClock is a settable clock.
type testClock struct{ t atomic.Pointer[time.Time] }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.t.Store(&t)
	return c
}

func (c *testClock) Now() time.Time { return *c.t.Load() }

func (c *testClock) Advance(d time.Duration) {
	t := c.Now().Add(d)
	c.t.Store(&t)
}

// sealingGrace is the grace of the test servers' sealing keys.
const sealingGrace = time.Hour

func newTestEnv(t testing.TB) *testEnv { return newTestEnvWith(t, nil) }

// newTestEnvWith starts a server whose Service configuration configure
// may change first.
func newTestEnvWith(t testing.TB, configure func(*secretstore.Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{dbPath: filepath.Join(dir, "secretstore.db"), logs: &syncBuffer{}, pki: pki.Dir(filepath.Join(dir, "pki"))}
	if err := pki.EnsureDev(e.pki); err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerConfig(e.pki.For("secretstore"), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	store, err := kvstore.OpenBolt(context.Background(), e.dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e.clock = newTestClock(now)
	e.seal = sealing.NewService(sealing.Config{Store: store, Keyring: kr, Grace: sealingGrace, Now: e.clock.Now, Logger: log})
	if _, err := e.seal.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := secretstore.Config{Store: store, Keyring: kr, Now: func() time.Time { return now }, Logger: log, Sealing: e.seal}
	if configure != nil {
		configure(&cfg)
	}
	e.svc = secretstore.NewService(cfg)
	e.store = store
	rules := auth.Rules{}
	maps.Copy(rules, grpcapi.Rules)
	maps.Copy(rules, grpcapi.RunSecretsRules)
	srv := server.New(server.Config{
		Name: "secretstore", TLS: serverTLS, Rules: rules, Logger: log,
		OnDenied: grpcapi.OnDenied(e.svc, log),
		Auth: &fakeAuth{AuthenticateFunc: func(_ context.Context, token string) (*auth.Principal, error) {
			if p, ok := principals[token]; ok {
				return p, nil
			}
			return nil, errs.E(errs.KindUnauthenticated, "unknown token")
		}},
	})
	grpcapi.Register(srv, e.svc)
	grpcapi.RegisterSealingKeys(srv, e.seal)
	grpcapi.RegisterRunSecrets(srv, e.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := store.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
			if err := kvstore.CheckBolt(e.dbPath, time.Second); err != nil {
				t.Errorf("consistency check: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

// client dials the server with the certificate of service cert.
func (e *testEnv) client(t testing.TB, cert string) secretsv1.SecretServiceClient {
	t.Helper()
	return secretsv1.NewSecretServiceClient(e.dial(t, cert))
}

// dial connects to the server with the certificate of service cert.
func (e *testEnv) dial(t testing.TB, cert string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(e.pki.For(cert), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(e.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// as returns a context carrying token as a bearer token ("" for none).
func as(token string) context.Context {
	ctx := context.Background()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return ctx
}

func mustCreate(t *testing.T, c secretsv1.SecretServiceClient, token, parent, id, value string) *secretsv1.Secret {
	t.Helper()
	resp, err := c.CreateSecret(as(token), &secretsv1.CreateSecretRequest{Parent: parent, SecretId: id, Value: []byte(value)})
	if err != nil {
		t.Fatalf("CreateSecret %s/%s: %v", parent, id, err)
	}
	return resp.GetSecret()
}

func listNames(t *testing.T, c secretsv1.SecretServiceClient, token, parent string) []string {
	t.Helper()
	resp, err := c.ListSecrets(as(token), &secretsv1.ListSecretsRequest{Parent: parent, PageSize: 1000})
	if err != nil {
		t.Fatalf("ListSecrets %s: %v", parent, err)
	}
	var out []string
	for _, s := range resp.GetSecrets() {
		out = append(out, s.GetSecretId())
	}
	return out
}

func TestCreateGetOverTheWire(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	got := mustCreate(t, c, "admin", "teams/acme", "API_KEY", "v")
	want := &secretsv1.Secret{
		Name: "teams/acme/secrets/API_KEY", SecretId: "API_KEY", Scope: secretsv1.Scope_SCOPE_TEAM, Owner: "teams/acme",
		ValueVersion: 1, CreateBy: "users/alice", UpdateBy: "users/alice", Etag: got.GetEtag(),
		CreateTime: got.GetCreateTime(), UpdateTime: got.GetCreateTime(), ValueUpdateTime: got.GetCreateTime(),
	}
	if !proto.Equal(got, want) {
		t.Fatalf("CreateSecret: got %v, want %v", got, want)
	}
	if got.GetCreateTime().AsTime() != time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) {
		t.Errorf("create_time: got %v", got.GetCreateTime().AsTime())
	}
	resp, err := c.GetSecret(as("member"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp.GetSecret(), want) {
		t.Fatalf("GetSecret: got %v, want %v", resp.GetSecret(), want)
	}
	mine := mustCreate(t, c, "member", "users/me", "MY_TOKEN", "v")
	if mine.GetName() != "users/bob/secrets/MY_TOKEN" || mine.GetScope() != secretsv1.Scope_SCOPE_PERSONAL {
		t.Fatalf("personal secret: got %v", mine)
	}
}

// fieldOf returns the field of the BadRequest detail of err.
func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	const canary = "CANARY-grpc-bad-input-31c"
	orig := mustCreate(t, c, "admin", "teams/acme", "API_KEY", "v1")
	big := append([]byte(canary), bytes.Repeat([]byte("x"), 65537-len(canary))...)
	create := func(id string, value []byte, desc string) func() error {
		return func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: id, Value: value, Description: desc})
			return err
		}
	}
	update := func(req *secretsv1.UpdateSecretRequest) func() error {
		return func() error {
			if req.Name == "" {
				req.Name = "teams/acme/secrets/API_KEY"
			}
			_, err := c.UpdateSecret(as("admin"), req)
			return err
		}
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
		rule  string
	}{
		{"LeadingDigit", create("1ABC", []byte(canary), ""), codes.InvalidArgument, "secret_id", "must match [A-Za-z_][A-Za-z0-9_]*"},
		{"Dash", create("A-B", []byte(canary), ""), codes.InvalidArgument, "secret_id", "must match"},
		{"PATH", create("PATH", []byte(canary), ""), codes.InvalidArgument, "secret_id", "reserved"},
		{"LD_PRELOAD", create("LD_PRELOAD", []byte(canary), ""), codes.InvalidArgument, "secret_id", "reserved"},
		{"OZ_X", create("OZ_X", []byte(canary), ""), codes.InvalidArgument, "secret_id", "reserved"},
		{"oz_x", create("oz_x", []byte(canary), ""), codes.InvalidArgument, "secret_id", "reserved"},
		{"TooLongName", create(strings.Repeat("N", 256), []byte(canary), ""), codes.InvalidArgument, "secret_id", "at most 255"},
		{"EmptyValue", create("NEW", nil, ""), codes.InvalidArgument, "value", "is required"},
		{"ValueOver64KiB", create("NEW", big, ""), codes.InvalidArgument, "value", "at most 65536 bytes"},
		{"NULByte", create("NEW", []byte(canary+"\x00tail"), ""), codes.InvalidArgument, "value", "must not contain a NUL byte"},
		{"Description1025", create("NEW", []byte(canary), strings.Repeat("d", 1025)), codes.InvalidArgument, "description", "at most 1024 characters"},
		{"CaseClash", create("api_key", []byte(canary), ""), codes.AlreadyExists, "secret_id", "API_KEY"},
		{"BadParent", func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "team/acme", SecretId: "NEW", Value: []byte(canary)})
			return err
		}, codes.InvalidArgument, "parent", "must be teams/{team} or users/{user}"},
		{"UpdateNothing", update(&secretsv1.UpdateSecretRequest{}), codes.InvalidArgument, "update_mask", "nothing to update"},
		{"UpdateBadPath", update(&secretsv1.UpdateSecretRequest{Value: []byte(canary), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secret_id"}}}), codes.InvalidArgument, "update_mask", "not an updatable field"},
		{"UpdateNUL", update(&secretsv1.UpdateSecretRequest{Value: []byte("\x00" + canary)}), codes.InvalidArgument, "value", "NUL"},
		{"UpdateTooLarge", update(&secretsv1.UpdateSecretRequest{Value: big}), codes.InvalidArgument, "value", "at most 65536"},
		{"UpdateLongDescription", update(&secretsv1.UpdateSecretRequest{Description: strings.Repeat("d", 1025)}), codes.InvalidArgument, "description", "at most 1024"},
		{"UpdateBadName", update(&secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/1ABC", Value: []byte(canary)}), codes.InvalidArgument, "name", "must match"},
		{"GetBadName", func() error {
			_, err := c.GetSecret(as("admin"), &secretsv1.GetSecretRequest{Name: "API_KEY"})
			return err
		}, codes.InvalidArgument, "name", "must be teams/{team}/secrets/{secret}"},
		{"ListBadPageToken", func() error {
			_, err := c.ListSecrets(as("admin"), &secretsv1.ListSecretsRequest{Parent: "teams/acme", PageToken: "bogus"})
			return err
		}, codes.InvalidArgument, "page_token", "next_page_token"},
		{"ListNegativePageSize", func() error {
			_, err := c.ListSecrets(as("admin"), &secretsv1.ListSecretsRequest{Parent: "teams/acme", PageSize: -5})
			return err
		}, codes.InvalidArgument, "page_size", "negative"},
		{"AvailableBadPageToken", func() error {
			_, err := c.ListAvailableSecrets(as("admin"), &secretsv1.ListAvailableSecretsRequest{PageToken: "bogus"})
			return err
		}, codes.InvalidArgument, "page_token", "next_page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code: got %v (%v), want %v", st.Code(), err, tc.code)
			}
			if got := fieldOf(err); got != tc.field {
				t.Errorf("BadRequest field: got %q, want %q", got, tc.field)
			}
			if !strings.Contains(st.Message(), tc.field+": ") || !strings.Contains(st.Message(), tc.rule) {
				t.Errorf("message: got %q, want the field %s and %q", st.Message(), tc.field, tc.rule)
			}
			if raw, _ := proto.Marshal(st.Proto()); bytes.Contains(raw, []byte(canary)) {
				t.Errorf("the status contains the value: %v", st.Proto())
			}
			if got := listNames(t, c, "admin", "teams/acme"); !slices.Equal(got, []string{"API_KEY"}) {
				t.Errorf("List after refused call: got %v, want [API_KEY]", got)
			}
			resp, err := c.GetSecret(as("admin"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(resp.GetSecret(), orig) {
				t.Errorf("API_KEY changed: got %v, want %v", resp.GetSecret(), orig)
			}
		})
	}
}

var seq atomic.Int64

func uniq(prefix string) string { return fmt.Sprintf("%s_%d", prefix, seq.Add(1)) }

// TestAuthorizationMatrix calls every RPC as every kind of caller.
// Permission is decided before existence: a caller without access gets
// PermissionDenied for a missing secret too.
func TestAuthorizationMatrix(t *testing.T) {
	e := newTestEnv(t)
	gw := e.client(t, "gateway")
	resolverConn := e.client(t, "resolver")
	ctx := context.Background()
	admin, alice := principals["admin"], principals["admin"]
	seed := func(p *auth.Principal, parent, id string) string {
		t.Helper()
		sec, err := e.svc.Create(ctx, p, secretstore.CreateRequest{Parent: parent, SecretID: id, Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		return sec.ResourceName()
	}
	seed(admin, "teams/acme", "EXISTING")
	seed(alice, "users/alice", "MINE")

	type call func(c secretsv1.SecretServiceClient, ctx context.Context) error
	create := func(parent string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: parent, SecretId: uniq("NEW"), Value: []byte("v")})
			return err
		}
	}
	get := func(name string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
			return err
		}
	}
	list := func(parent string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			_, err := c.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: parent})
			return err
		}
	}
	update := func(name string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Value: []byte("v2")})
			return err
		}
	}
	// deleteFresh deletes a secret seeded for this one call, so that a
	// successful delete does not change what other cases see.
	deleteFresh := func(p *auth.Principal, parent string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			name := seed(p, parent, uniq("DEL"))
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: name})
			return err
		}
	}
	deleteName := func(name string) call {
		return func(c secretsv1.SecretServiceClient, ctx context.Context) error {
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: name})
			return err
		}
	}
	available := func(c secretsv1.SecretServiceClient, ctx context.Context) error {
		_, err := c.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
		return err
	}

	const (
		OK = codes.OK
		PD = codes.PermissionDenied
		NF = codes.NotFound
	)
	// Callers: admin (alice, admin of acme), member (bob, member of acme),
	// outsider (carol, admin of beta), sysadmin (root, system admin, no
	// team), runner and agent (tokens of other principal kinds, with roles
	// in acme). Without a token, or with an unknown one, every call is
	// Unauthenticated (checked for every case below).
	type want struct{ admin, member, outsider, sysadmin, runner, agent codes.Code }
	for _, tc := range []struct {
		name string
		call call
		want want
	}{
		{"CreateSecret/team", create("teams/acme"), want{OK, PD, PD, PD, PD, PD}},
		{"GetSecret/team", get("teams/acme/secrets/EXISTING"), want{OK, OK, PD, PD, PD, PD}},
		{"GetSecret/team/missing", get("teams/acme/secrets/MISSING"), want{NF, NF, PD, PD, PD, PD}},
		{"ListSecrets/team", list("teams/acme"), want{OK, OK, PD, PD, PD, PD}},
		{"ListSecrets/otherTeam", list("teams/beta"), want{PD, PD, OK, PD, PD, PD}},
		{"UpdateSecret/team", update("teams/acme/secrets/EXISTING"), want{OK, PD, PD, PD, PD, PD}},
		{"UpdateSecret/team/missing", update("teams/acme/secrets/MISSING"), want{NF, PD, PD, PD, PD, PD}},
		{"DeleteSecret/team", deleteFresh(admin, "teams/acme"), want{OK, PD, PD, PD, PD, PD}},
		{"DeleteSecret/team/missing", deleteName("teams/acme/secrets/MISSING"), want{NF, PD, PD, PD, PD, PD}},
		{"CreateSecret/personal", create("users/alice"), want{OK, PD, PD, PD, PD, PD}},
		{"GetSecret/personal", get("users/alice/secrets/MINE"), want{OK, PD, PD, PD, PD, PD}},
		{"GetSecret/personal/missing", get("users/alice/secrets/MISSING"), want{NF, PD, PD, PD, PD, PD}},
		{"ListSecrets/personal", list("users/alice"), want{OK, PD, PD, PD, PD, PD}},
		{"UpdateSecret/personal", update("users/alice/secrets/MINE"), want{OK, PD, PD, PD, PD, PD}},
		{"UpdateSecret/personal/missing", update("users/alice/secrets/MISSING"), want{NF, PD, PD, PD, PD, PD}},
		{"DeleteSecret/personal", deleteFresh(alice, "users/alice"), want{OK, PD, PD, PD, PD, PD}},
		{"DeleteSecret/personal/missing", deleteName("users/alice/secrets/MISSING"), want{NF, PD, PD, PD, PD, PD}},
		{"CreateSecret/me", create("users/me"), want{OK, OK, OK, OK, PD, PD}},
		{"ListSecrets/me", list("users/me"), want{OK, OK, OK, OK, PD, PD}},
		{"GetSecret/me/missing", get("users/me/secrets/MISSING"), want{NF, NF, NF, NF, PD, PD}},
		{"ListAvailableSecrets", available, want{OK, OK, OK, OK, PD, PD}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				token string
				want  codes.Code
			}{
				{"admin", tc.want.admin}, {"member", tc.want.member}, {"outsider", tc.want.outsider},
				{"sysadmin", tc.want.sysadmin}, {"runner", tc.want.runner}, {"agent", tc.want.agent},
			} {
				if got := status.Code(tc.call(gw, as(c.token))); got != c.want {
					t.Errorf("as %s: got %v, want %v", c.token, got, c.want)
				}
			}
			if got := status.Code(tc.call(gw, as(""))); got != codes.Unauthenticated {
				t.Errorf("without a token: got %v, want Unauthenticated", got)
			}
			if got := status.Code(tc.call(gw, as("no-such-token"))); got != codes.Unauthenticated {
				t.Errorf("with an unknown token: got %v, want Unauthenticated", got)
			}
			if got := status.Code(tc.call(resolverConn, as(""))); got != codes.Unauthenticated {
				t.Errorf("as the resolver service, without a token: got %v, want Unauthenticated", got)
			}
		})
	}
	// The refused updates changed nothing: only alice's own update of each
	// secret bumped its value version.
	for _, name := range []string{"teams/acme/secrets/EXISTING", "users/alice/secrets/MINE"} {
		resp, err := gw.GetSecret(as("admin"), &secretsv1.GetSecretRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetSecret().GetValueVersion(); got != 2 {
			t.Errorf("%s value_version: got %d, want 2", name, got)
		}
	}
}

// TestNoCanaryAnywhere plants a value and looks for it in every response,
// every error, every log line and the raw database file.
func TestNoCanaryAnywhere(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	const canary = "CANARY-0e5a77c3-never-shown"
	var seen [][]byte
	record := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			b, _ := proto.Marshal(status.Convert(err).Proto())
			seen = append(seen, b, []byte(err.Error()))
			return
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, b, []byte(fmt.Sprint(m)))
	}
	ctx := as("admin")
	for _, parent := range []string{"teams/acme", "users/me"} {
		r1, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: parent, SecretId: "PLANTED", Value: []byte(canary), Description: "holds the canary"})
		record(r1, err)
		name := r1.GetSecret().GetName()
		r2, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
		record(r2, err)
		r3, err := c.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: parent})
		record(r3, err)
		r4, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Value: []byte(canary + "-v2")})
		record(r4, err)
		r5, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Description: "still no value"})
		record(r5, err)
		// Refused calls carrying the canary.
		r6, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: parent, SecretId: "planted", Value: []byte(canary)})
		record(r6, err)
		r7, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: parent, SecretId: "NUL", Value: []byte(canary + "\x00")})
		record(r7, err)
		r8, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Value: []byte(canary), Etag: "stale"})
		record(r8, err)
		r9, err := c.CreateSecret(as("member"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "X", Value: []byte(canary)})
		record(r9, err)
	}
	r, err := c.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
	record(r, err)
	if n := len(r.GetSecrets()); n != 2 {
		t.Fatalf("ListAvailableSecrets: got %d secrets, want 2", n)
	}
	if len(seen) < 20 {
		t.Fatalf("recorded %d responses; the test did not run", len(seen))
	}

	// The value is stored, and round-trips through the internal path.
	vals, _, err := e.svc.UnsealValues(context.Background(), secretstore.Team("acme"), []string{"PLANTED"})
	if err != nil || len(vals) != 1 || string(vals[0].Value.Bytes()) != canary+"-v2" {
		t.Fatalf("UnsealValues: got %v, %v", vals, err)
	}
	e.svc.Delete(context.Background(), principals["admin"], secretstore.DeleteRequest{Name: "users/alice/secrets/PLANTED"})

	e.stop()
	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, raw)
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"rpc"`) {
		t.Fatalf("no request logs captured: %s", logs)
	}
	seen = append(seen, []byte(logs))
	for i, b := range seen {
		if bytes.Contains(b, []byte("CANARY-0e5a77c3")) {
			t.Errorf("recorded output %d contains the canary: %q", i, b)
		}
	}
}

func TestEtagAndVersionsOverTheWire(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	ctx := as("admin")
	orig := mustCreate(t, c, "admin", "teams/acme", "API_KEY", "v1")
	d, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: orig.GetName(), Description: "new",
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}, Etag: orig.GetEtag()})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetSecret().GetValueVersion() != 1 || d.GetSecret().GetEtag() == orig.GetEtag() {
		t.Fatalf("description update: got version %d, etag %q", d.GetSecret().GetValueVersion(), d.GetSecret().GetEtag())
	}
	v, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: orig.GetName(), Value: []byte("v2")})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetSecret().GetValueVersion() != 2 {
		t.Fatalf("value update: got version %d, want 2", v.GetSecret().GetValueVersion())
	}
	_, err = c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: orig.GetName(), Value: []byte("v3"), Etag: orig.GetEtag()})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "etag mismatch") {
		t.Fatalf("update with a stale etag: got %v, want FailedPrecondition etag mismatch", err)
	}
	_, err = c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: orig.GetName(), Etag: d.GetSecret().GetEtag()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete with a stale etag: got %v, want FailedPrecondition", err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: orig.GetName(), Etag: v.GetSecret().GetEtag()}); err != nil {
		t.Fatalf("delete with the current etag: %v", err)
	}
	if got := listNames(t, c, "admin", "teams/acme"); len(got) != 0 {
		t.Fatalf("List after delete: got %v", got)
	}
}

func TestConcurrentCreatesOverTheWire(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	const n = 16
	codesGot := make([]codes.Code, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := "SHARED"
			if i%2 == 1 {
				id = "Shared"
			}
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: id, Value: []byte("v")})
			codesGot[i] = status.Code(err)
		})
	}
	wg.Wait()
	if ok := slices.IndexFunc(codesGot, func(c codes.Code) bool { return c == codes.OK }); ok < 0 ||
		len(slices.DeleteFunc(slices.Clone(codesGot), func(c codes.Code) bool { return c == codes.AlreadyExists })) != 1 {
		t.Fatalf("codes: got %v, want exactly one OK and the rest AlreadyExists", codesGot)
	}
}

func TestPagination(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	for i := range 12 {
		mustCreate(t, c, "admin", "teams/acme", fmt.Sprintf("S%02d", i), "v")
	}
	var got []string
	tok := ""
	for range 10 {
		resp, err := c.ListSecrets(as("member"), &secretsv1.ListSecretsRequest{Parent: "teams/acme", PageSize: 5, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.GetSecrets() {
			got = append(got, s.GetSecretId())
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if len(got) != 12 || got[0] != "S00" || got[11] != "S11" {
		t.Fatalf("pages: got %v", got)
	}
}

// TestResponsesCannotCarryValues guards the API: no message the service
// returns has a bytes field, or a field named like a value.
func TestResponsesCannotCarryValues(t *testing.T) {
	sd := secretsv1.File_oz_secrets_v1_secrets_proto.Services().ByName("SecretService")
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		checkNoValueField(t, m.Output(), map[protoreflect.FullName]bool{})
	}
}

func checkNoValueField(t *testing.T, md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) {
	t.Helper()
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	for i := range md.Fields().Len() {
		f := md.Fields().Get(i)
		if f.Kind() == protoreflect.BytesKind || strings.Contains(string(f.Name()), "value") && f.Name() != "value_version" && f.Name() != "value_update_time" {
			t.Errorf("%s.%s could carry a value", md.FullName(), f.Name())
		}
		if f.Message() != nil {
			checkNoValueField(t, f.Message(), seen)
		}
	}
}

func TestRules(t *testing.T) {
	rule, ok := grpcapi.Rules["/oz.secrets.v1.SecretService/"]
	if !ok || rule.Access != auth.Token {
		t.Fatalf("Rules: got %+v, want Token access for /oz.secrets.v1.SecretService/", grpcapi.Rules)
	}
}
