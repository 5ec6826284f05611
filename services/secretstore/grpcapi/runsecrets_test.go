package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore"
)

const (
	runCanary = "CANARY-run-9f31c0-sealed-only"
	runInfo   = "oz-run-v1|teams/acme/runs/r-1"
)

// plantRun creates the secrets of the run tests through the Service. Every
// value holds runCanary and says whose it is: "<canary>|users/alice/NAME".
func plantRun(t testing.TB, e *testEnv) {
	t.Helper()
	plant := []struct {
		p      *auth.Principal
		parent string
		names  []string
	}{
		{principals["admin"], "teams/acme", []string{"GITHUB_TOKEN", "DEPLOY_TOKEN", "PROD_DB", "OPENAI_API_KEY"}},
		{principals["admin"], "users/alice", []string{"GITHUB_TOKEN", "MY_NOTES"}},
		{principals["member"], "users/bob", []string{"BOBS_TOKEN"}},
		{principals["outsider"], "teams/beta", []string{"BETA_KEY"}},
	}
	for _, pl := range plant {
		for _, n := range pl.names {
			if _, err := e.svc.Create(context.Background(), pl.p, secretstore.CreateRequest{
				Parent: pl.parent, SecretID: n, Value: []byte(runValue(pl.parent, n)),
			}); err != nil {
				t.Fatalf("create %s/%s: %v", pl.parent, n, err)
			}
		}
	}
}

func runValue(owner, name string) string { return runCanary + "|" + owner + "/" + name }

func runClient(t testing.TB, e *testEnv, cert string) internalapiv1.RunSecretsServiceClient {
	t.Helper()
	return internalapiv1.NewRunSecretsServiceClient(e.dial(t, cert))
}

func generateKey(t testing.TB, kemID uint16) hpke.PrivateKey {
	t.Helper()
	kem, err := hpke.NewKEM(kemID)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func recipient(priv hpke.PrivateKey) *scopev1.RecipientKey {
	return &scopev1.RecipientKey{KemId: uint32(priv.KEM().ID()), PublicKey: priv.PublicKey().Bytes()}
}

// openEnv opens a sealed run environment as the runner would.
func openEnv(t *testing.T, priv hpke.PrivateKey, info string, sealed *scopev1.SealedValues) []string {
	t.Helper()
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed.GetCiphertext())
	if err != nil {
		t.Fatalf("hpke.Open: %v", err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(pt, &env); err != nil {
		t.Fatalf("unmarshal RunEnvironment: %v", err)
	}
	var out []string
	for _, v := range env.GetVars() {
		out = append(out, v.GetName()+"="+string(v.GetValue()))
	}
	return out
}

func refs(rs []*internalapiv1.SecretRef) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%s@%d", r.GetOwner(), r.GetName(), r.GetValueVersion()))
	}
	return out
}

// noCanaryOutsideCiphertext checks that a response holds no value in clear:
// not in its marshalled bytes once the ciphertext is taken out, and not in
// the ciphertext either.
func noCanaryOutsideCiphertext(t *testing.T, resp *internalapiv1.SealRunSecretsResponse) {
	t.Helper()
	if bytes.Contains(resp.GetSealed().GetCiphertext(), []byte(runCanary)) {
		t.Fatal("the HPKE ciphertext contains a value in clear")
	}
	c := proto.Clone(resp).(*internalapiv1.SealRunSecretsResponse)
	if c.GetSealed() != nil {
		c.Sealed.Ciphertext = nil
	}
	raw, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(runCanary)) {
		t.Fatal("the response contains a value outside the ciphertext")
	}
	if whole, _ := proto.Marshal(resp); bytes.Contains(whole, []byte(runCanary)) {
		t.Fatal("the marshalled response contains a value")
	}
}

// list returns the candidates of owners, as the resolver reads them.
func list(t testing.TB, c internalapiv1.RunSecretsServiceClient, owners ...string) []*internalapiv1.SecretRef {
	t.Helper()
	resp, err := c.ListRunSecrets(context.Background(), &internalapiv1.ListRunSecretsRequest{Owners: owners})
	if err != nil {
		t.Fatalf("ListRunSecrets(%v): %v", owners, err)
	}
	return resp.GetSecrets()
}

// pick returns the refs of secrets named owner/name.
func pick(t testing.TB, secs []*internalapiv1.SecretRef, names ...string) []*internalapiv1.SecretRef {
	t.Helper()
	var out []*internalapiv1.SecretRef
	for _, n := range names {
		i := slices.IndexFunc(secs, func(r *internalapiv1.SecretRef) bool { return r.GetOwner()+"/"+r.GetName() == n })
		if i < 0 {
			t.Fatalf("%s is not a candidate", n)
		}
		out = append(out, secs[i])
	}
	return out
}

func TestListRunSecrets(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	c := runClient(t, e, "resolver")
	acme := []string{"teams/acme/DEPLOY_TOKEN@1", "teams/acme/GITHUB_TOKEN@1", "teams/acme/OPENAI_API_KEY@1", "teams/acme/PROD_DB@1"}
	alice := []string{"users/alice/GITHUB_TOKEN@1", "users/alice/MY_NOTES@1"}
	for _, tc := range []struct {
		name   string
		owners []string
		want   []string
	}{
		{"UserThenTeam", []string{"users/alice", "teams/acme"}, append(slices.Clone(alice), acme...)},
		{"TeamThenUser", []string{"teams/acme", "users/alice"}, append(slices.Clone(acme), alice...)},
		{"TeamOnly", []string{"teams/acme"}, acme},
		{"OwnerWithoutSecrets", []string{"teams/empty"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secs := list(t, c, tc.owners...)
			if got := refs(secs); !slices.Equal(got, tc.want) {
				t.Fatalf("candidates: got %v, want %v", got, tc.want)
			}
			for _, r := range secs {
				if r.GetCreateTime() == nil {
					t.Fatalf("%s/%s: no creation time", r.GetOwner(), r.GetName())
				}
			}
		})
	}
}

func TestSealRunSecrets(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	c := runClient(t, e, "resolver")
	cands := list(t, c, "users/alice", "teams/acme")
	v := func(owner, name string) string { return name + "=" + runValue(owner, name) }

	cases := []struct {
		name    string
		secrets []string // owner/name, as the resolver decided
		wantEnv []string // NAME=value, sorted by name
	}{
		{"PersonalAndTeam", []string{"teams/acme/DEPLOY_TOKEN", "users/alice/GITHUB_TOKEN", "users/alice/MY_NOTES", "teams/acme/OPENAI_API_KEY"},
			[]string{v("teams/acme", "DEPLOY_TOKEN"), v("users/alice", "GITHUB_TOKEN"), v("users/alice", "MY_NOTES"), v("teams/acme", "OPENAI_API_KEY")}},
		{"InAnyOrder", []string{"teams/acme/PROD_DB", "teams/acme/GITHUB_TOKEN"},
			[]string{v("teams/acme", "GITHUB_TOKEN"), v("teams/acme", "PROD_DB")}},
		{"NoneIsAnEmptyEnvironment", nil, nil},
	}
	for _, kem := range []struct {
		name string
		id   uint16
	}{{"X25519", 0x0020}, {"MLKEM768X25519", 0x647a}, {"P256", 0x0010}} {
		priv := generateKey(t, kem.id)
		for _, tc := range cases {
			t.Run(kem.name+"/"+tc.name, func(t *testing.T) {
				resp, err := c.SealRunSecrets(context.Background(), &internalapiv1.SealRunSecretsRequest{
					Secrets: pick(t, cands, tc.secrets...), Recipient: recipient(priv), Info: []byte(runInfo),
				})
				if err != nil {
					t.Fatalf("SealRunSecrets: %v", err)
				}
				if len(resp.GetCandidates()) != 0 || len(resp.GetSelected()) != 0 { //nolint:staticcheck // deprecated: checked unset
					t.Fatalf("deprecated fields set: %v", resp)
				}
				sealed := resp.GetSealed()
				if sealed == nil {
					t.Fatal("sealed: got none")
				}
				if sealed.GetKemId() != uint32(kem.id) || sealed.GetKdfId() != 0x0001 || sealed.GetAeadId() != 0x0002 || string(sealed.GetInfo()) != runInfo {
					t.Fatalf("sealed suite: got kem 0x%04x kdf 0x%04x aead 0x%04x info %q", sealed.GetKemId(), sealed.GetKdfId(), sealed.GetAeadId(), sealed.GetInfo())
				}
				if got := openEnv(t, priv, runInfo, sealed); !slices.Equal(got, tc.wantEnv) {
					t.Fatalf("opened environment: got %v, want %v", got, tc.wantEnv)
				}
				if _, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("oz-run-v1|teams/acme/runs/r-2"), sealed.GetCiphertext()); err == nil {
					t.Fatal("opened with another run's info")
				}
				if _, err := hpke.Open(generateKey(t, kem.id), hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(runInfo), sealed.GetCiphertext()); err == nil {
					t.Fatal("opened with another key")
				}
				noCanaryOutsideCiphertext(t, resp)
			})
		}
	}

	t.Run("ChangedSinceListedIsRefused", func(t *testing.T) {
		before := pick(t, list(t, c, "teams/acme"), "teams/acme/PROD_DB")
		if _, err := e.svc.Update(context.Background(), principals["admin"], secretstore.UpdateRequest{
			Name: "teams/acme/secrets/PROD_DB", Value: []byte(runCanary + "|v2"), UpdateMask: []string{"value"},
		}); err != nil {
			t.Fatal(err)
		}
		priv := generateKey(t, 0x0020)
		req := &internalapiv1.SealRunSecretsRequest{Secrets: before, Recipient: recipient(priv), Info: []byte(runInfo)}
		resp, err := c.SealRunSecrets(context.Background(), req)
		if status.Code(err) != codes.FailedPrecondition || resp != nil || strings.Contains(status.Convert(err).Message(), runCanary) {
			t.Fatalf("sealing the version listed before a rotation: got %v, %v; want FailedPrecondition", resp, err)
		}
		req.Secrets = pick(t, list(t, c, "teams/acme"), "teams/acme/PROD_DB")
		if req.Secrets[0].GetValueVersion() != 2 {
			t.Fatalf("listed after the rotation: %v", refs(req.Secrets))
		}
		resp, err = c.SealRunSecrets(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := openEnv(t, priv, runInfo, resp.GetSealed()); !slices.Equal(got, []string{"PROD_DB=" + runCanary + "|v2"}) {
			t.Fatalf("opened: got %v", got)
		}
	})

	if logs := e.logs.String(); strings.Contains(logs, runCanary) {
		t.Fatalf("a value reached the logs:\n%s", logs)
	} else if !strings.Contains(logs, `"msg":"run secrets opened"`) {
		t.Fatalf("no run log line in:\n%s", logs)
	}
}

func TestRunSecretsAccess(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	priv := generateKey(t, 0x0020)
	secrets := list(t, runClient(t, e, "resolver"), "users/alice", "teams/acme")[:1]
	for _, tc := range []struct {
		name  string
		cert  string
		token string
		want  codes.Code
	}{
		{"Resolver", "resolver", "", codes.OK},
		{"Gateway", "gateway", "", codes.PermissionDenied},
		{"Audit", "audit", "", codes.PermissionDenied},
		{"Secretstore", "secretstore", "", codes.PermissionDenied},
		{"GatewayWithAdminToken", "gateway", "admin", codes.PermissionDenied},
		{"ResolverWithAdminToken", "resolver", "admin", codes.PermissionDenied},
		{"ResolverWithRunnerToken", "resolver", "runner", codes.PermissionDenied},
		{"ResolverWithUnknownToken", "resolver", "nope", codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := runClient(t, e, tc.cert)
			lresp, err := c.ListRunSecrets(as(tc.token), &internalapiv1.ListRunSecretsRequest{Owners: []string{"users/alice", "teams/acme"}})
			if status.Code(err) != tc.want || (tc.want != codes.OK && lresp != nil) {
				t.Fatalf("ListRunSecrets: got %v, %v; want %v", lresp, err, tc.want)
			}
			sresp, err := c.SealRunSecrets(as(tc.token), &internalapiv1.SealRunSecretsRequest{Secrets: secrets, Recipient: recipient(priv), Info: []byte(runInfo)})
			if status.Code(err) != tc.want || (tc.want != codes.OK && sresp != nil) {
				t.Fatalf("SealRunSecrets: got %v, %v; want %v", sresp, err, tc.want)
			}
		})
	}
}

func TestRunSecretsBadInput(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	c := runClient(t, e, "resolver")
	priv := generateKey(t, 0x0020)
	cands := list(t, c, "users/alice", "teams/acme")
	good := func() *internalapiv1.SealRunSecretsRequest {
		return &internalapiv1.SealRunSecretsRequest{Secrets: pick(t, cands, "teams/acme/PROD_DB"), Recipient: recipient(priv), Info: []byte(runInfo)}
	}
	with := func(f func(r *internalapiv1.SealRunSecretsRequest)) *internalapiv1.SealRunSecretsRequest {
		r := good()
		r.Secrets[0] = proto.Clone(r.Secrets[0]).(*internalapiv1.SecretRef)
		f(r)
		return r
	}
	for _, tc := range []struct {
		name  string
		req   *internalapiv1.SealRunSecretsRequest
		field string
	}{
		{"Selection", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Selection = &internalapiv1.Selection{Owners: []string{"teams/acme"}} //nolint:staticcheck // deprecated: refused
		}), "selection"},
		{"NoRecipient", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient = nil }), "recipient"},
		{"KEMZero", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0 }), "recipient.kem_id"},
		{"KEMUnknown", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0x0021 }), "recipient.kem_id"},
		{"KEMMismatch", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0x647a }), "recipient.public_key"},
		{"PublicKeyMissing", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = nil }), "recipient.public_key"},
		{"PublicKeyShort", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = r.Recipient.PublicKey[:16] }), "recipient.public_key"},
		{"PublicKeyLowOrder", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = make([]byte, 32) }), "recipient.public_key"},
		{"InfoMissing", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Info = nil }), "info"},
		{"InfoTooLong", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Info = bytes.Repeat([]byte("i"), 1025) }), "info"},
		{"SecretOwner", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Secrets[0].Owner = "acme" }), "secrets"},
		{"SecretName", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Secrets[0].Name = "PROD-DB" }), "secrets"},
		{"SecretVersion", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Secrets[0].ValueVersion = 0 }), "secrets"},
		{"SecretCreateTime", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Secrets[0].CreateTime = nil }), "secrets"},
		{"SecretNameTwice", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Secrets = append(r.Secrets, pick(t, cands, "users/alice/GITHUB_TOKEN", "teams/acme/GITHUB_TOKEN")...)
		}), "secrets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.SealRunSecrets(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument || fieldOf(err) != tc.field {
				t.Fatalf("got %v (field %q), want InvalidArgument for %s", err, fieldOf(err), tc.field)
			}
			if !strings.HasPrefix(status.Convert(err).Message(), tc.field+": ") {
				t.Fatalf("message %q does not name %s", status.Convert(err).Message(), tc.field)
			}
			if resp != nil {
				t.Fatalf("got a response %v with the error", resp)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		owners []string
	}{
		{"NoOwners", nil},
		{"OwnerMalformed", []string{"teams/acme/secrets/X"}},
		{"OwnerBareID", []string{"acme"}},
		{"OwnerTwice", []string{"teams/acme", "teams/acme"}},
	} {
		t.Run("List"+tc.name, func(t *testing.T) {
			resp, err := c.ListRunSecrets(context.Background(), &internalapiv1.ListRunSecretsRequest{Owners: tc.owners})
			if status.Code(err) != codes.InvalidArgument || fieldOf(err) != "owners" || resp != nil {
				t.Fatalf("got %v, %v (field %q), want InvalidArgument for owners", resp, err, fieldOf(err))
			}
		})
	}
	// A secret not there (any more) is not malformed: it changed.
	gone := with(func(r *internalapiv1.SealRunSecretsRequest) { r.Secrets[0].Name = "NOT_THERE" })
	if _, err := c.SealRunSecrets(context.Background(), gone); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a secret not there: got %v, want FailedPrecondition", err)
	}
	if strings.Contains(e.logs.String(), runCanary) {
		t.Fatal("a value reached the logs")
	}
}

// BenchmarkRunSecrets measures the secretstore's side of one resolution
// over loopback mutual TLS, for a run whose owners (a user and a team)
// hold 10 secrets, 7 of them injected: listing the candidates (the only
// call of ExplainRun), and sealing the 7 (read, check, open and seal).
// The runner's key is generated once, outside the measurement.
//
//	go test -run '^$' -bench RunSecrets ./secretstore/grpcapi/
func BenchmarkRunSecrets(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	for _, n := range []string{"A1", "A2", "A3", "SHARED_1", "SHARED_2", "A6"} {
		if _, err := e.svc.Create(ctx, principals["admin"], secretstore.CreateRequest{Parent: "teams/acme", SecretID: n, Value: bytes.Repeat([]byte("t"), 64)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []string{"SHARED_1", "SHARED_2", "U3", "U4"} {
		if _, err := e.svc.Create(ctx, principals["admin"], secretstore.CreateRequest{Parent: "users/alice", SecretID: n, Value: bytes.Repeat([]byte("u"), 64)}); err != nil {
			b.Fatal(err)
		}
	}
	c := runClient(b, e, "resolver")
	owners := []string{"users/alice", "teams/acme"}
	// What the decision injects: alice's four, the team's A1-A3.
	injected := pick(b, list(b, c, owners...), "users/alice/SHARED_1", "users/alice/SHARED_2", "users/alice/U3", "users/alice/U4",
		"teams/acme/A1", "teams/acme/A2", "teams/acme/A3")
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			if got := list(b, c, owners...); len(got) != 10 {
				b.Fatalf("got %d candidates, want 10", len(got))
			}
		}
	})
	for _, bc := range []struct {
		name string
		kem  uint16
	}{{"seal/kem=X25519", 0x0020}, {"seal/kem=MLKEM768X25519", 0x647a}} {
		b.Run(bc.name, func(b *testing.B) {
			req := &internalapiv1.SealRunSecretsRequest{Secrets: injected, Recipient: recipient(generateKey(b, bc.kem)), Info: []byte(runInfo)}
			for b.Loop() {
				if _, err := c.SealRunSecrets(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
