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
	"github.com/ozsecrets/oz/services/internal/runrules"
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

func TestSealRunSecrets(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	c := runClient(t, e, "resolver")
	excludeProdDB := []*internalapiv1.SecretRef{{Owner: "teams/acme", Name: "PROD_DB"}}
	acmeCands := []string{"teams/acme/DEPLOY_TOKEN@1", "teams/acme/GITHUB_TOKEN@1", "teams/acme/OPENAI_API_KEY@1", "teams/acme/PROD_DB@1"}
	aliceCands := []string{"users/alice/GITHUB_TOKEN@1", "users/alice/MY_NOTES@1"}
	v := func(owner, name string) string { return name + "=" + runValue(owner, name) }

	cases := []struct {
		name      string
		sel       *internalapiv1.Selection
		wantCands []string
		wantEnv   []string // NAME=value, sorted by name
	}{
		{
			name:      "NoAllowlistPersonalOverTeam",
			sel:       &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"}, Excluded: excludeProdDB},
			wantCands: append(slices.Clone(aliceCands), acmeCands...),
			wantEnv: []string{v("teams/acme", "DEPLOY_TOKEN"), v("users/alice", "GITHUB_TOKEN"), v("users/alice", "MY_NOTES"),
				v("teams/acme", "OPENAI_API_KEY")},
		},
		{
			name: "ExplicitAllowlist",
			sel: &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"}, Excluded: excludeProdDB,
				Allowlist: &scopev1.SecretNameList{Names: []string{"PROD_DB", "GITHUB_TOKEN", "NOT_THERE", "OPENAI_API_KEY"}}},
			wantCands: append(slices.Clone(aliceCands), acmeCands...),
			wantEnv:   []string{v("users/alice", "GITHUB_TOKEN"), v("teams/acme", "OPENAI_API_KEY")},
		},
		{
			name: "EmptyAllowlistSelectsNothing",
			sel: &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"},
				Allowlist: &scopev1.SecretNameList{}},
			wantCands: append(slices.Clone(aliceCands), acmeCands...),
			wantEnv:   nil,
		},
		{
			name:      "UserlessRunTeamOnly",
			sel:       &internalapiv1.Selection{Owners: []string{"teams/acme"}, Allowlist: &scopev1.SecretNameList{Names: []string{"GITHUB_TOKEN", "PROD_DB"}}},
			wantCands: acmeCands,
			wantEnv:   []string{v("teams/acme", "GITHUB_TOKEN"), v("teams/acme", "PROD_DB")},
		},
	}
	for _, kem := range []struct {
		name string
		id   uint16
	}{{"X25519", 0x0020}, {"MLKEM768X25519", 0x647a}, {"P256", 0x0010}} {
		priv := generateKey(t, kem.id)
		for _, tc := range cases {
			t.Run(kem.name+"/"+tc.name, func(t *testing.T) {
				resp, err := c.SealRunSecrets(context.Background(), &internalapiv1.SealRunSecretsRequest{
					Selection: tc.sel, Recipient: recipient(priv), Info: []byte(runInfo),
				})
				if err != nil {
					t.Fatalf("SealRunSecrets: %v", err)
				}
				if got := refs(resp.GetCandidates()); !slices.Equal(got, tc.wantCands) {
					t.Fatalf("candidates: got %v, want %v", got, tc.wantCands)
				}
				// selected is what runrules.Select picks from the candidates.
				sel := runrules.Selection{Owners: tc.sel.GetOwners()}
				for _, x := range tc.sel.GetExcluded() {
					sel.Excluded = append(sel.Excluded, runrules.Secret{Owner: x.GetOwner(), Name: x.GetName()})
				}
				if tc.sel.GetAllowlist() != nil {
					sel.Allowlist = append([]string{}, tc.sel.GetAllowlist().GetNames()...)
				}
				var cands []runrules.Secret
				for _, r := range resp.GetCandidates() {
					cands = append(cands, runrules.Secret{Owner: r.GetOwner(), Name: r.GetName(), Version: r.GetValueVersion()})
				}
				var want []string
				for _, s := range runrules.Select(sel, cands) {
					want = append(want, fmt.Sprintf("%s/%s@%d", s.Owner, s.Name, s.Version))
				}
				if got := refs(resp.GetSelected()); !slices.Equal(got, want) {
					t.Fatalf("selected: got %v, want runrules.Select's %v", got, want)
				}

				sealed := resp.GetSealed()
				if sealed == nil {
					t.Fatal("sealed: got none")
				}
				if sealed.GetKemId() != uint32(kem.id) || sealed.GetKdfId() != 0x0001 || sealed.GetAeadId() != 0x0002 || string(sealed.GetInfo()) != runInfo {
					t.Fatalf("sealed suite: got kem 0x%04x kdf 0x%04x aead 0x%04x info %q", sealed.GetKemId(), sealed.GetKdfId(), sealed.GetAeadId(), sealed.GetInfo())
				}
				got := openEnv(t, priv, runInfo, sealed)
				if !slices.Equal(got, tc.wantEnv) {
					t.Fatalf("opened environment: got %v, want %v", got, tc.wantEnv)
				}
				// The environment is exactly the selected secrets.
				if len(got) != len(resp.GetSelected()) {
					t.Fatalf("opened %d variables for %d selected", len(got), len(resp.GetSelected()))
				}
				for i, s := range resp.GetSelected() {
					if got[i] != v(s.GetOwner(), s.GetName()) {
						t.Fatalf("variable %d: got %q, want the value of %s/%s", i, got[i], s.GetOwner(), s.GetName())
					}
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

	t.Run("NoRecipientMetadataOnly", func(t *testing.T) {
		resp, err := c.SealRunSecrets(context.Background(), &internalapiv1.SealRunSecretsRequest{Selection: cases[0].sel})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetSealed() != nil {
			t.Fatalf("sealed: got %v, want none without a recipient", resp.GetSealed())
		}
		if got := refs(resp.GetCandidates()); !slices.Equal(got, cases[0].wantCands) {
			t.Fatalf("candidates: got %v, want %v", got, cases[0].wantCands)
		}
		if got, want := refs(resp.GetSelected()), []string{"teams/acme/DEPLOY_TOKEN@1", "users/alice/GITHUB_TOKEN@1", "users/alice/MY_NOTES@1", "teams/acme/OPENAI_API_KEY@1"}; !slices.Equal(got, want) {
			t.Fatalf("selected: got %v, want %v", got, want)
		}
		noCanaryOutsideCiphertext(t, resp)
	})

	t.Run("SelectedVersionIsTheOpenedOne", func(t *testing.T) {
		if _, err := e.svc.Update(context.Background(), principals["admin"], secretstore.UpdateRequest{
			Name: "teams/acme/secrets/PROD_DB", Value: []byte(runCanary + "|v2"), UpdateMask: []string{"value"},
		}); err != nil {
			t.Fatal(err)
		}
		priv := generateKey(t, 0x0020)
		resp, err := c.SealRunSecrets(context.Background(), &internalapiv1.SealRunSecretsRequest{
			Selection: &internalapiv1.Selection{Owners: []string{"teams/acme"}, Allowlist: &scopev1.SecretNameList{Names: []string{"PROD_DB"}}},
			Recipient: recipient(priv), Info: []byte(runInfo),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := refs(resp.GetSelected()); !slices.Equal(got, []string{"teams/acme/PROD_DB@2"}) {
			t.Fatalf("selected: got %v", got)
		}
		if got := openEnv(t, priv, runInfo, resp.GetSealed()); !slices.Equal(got, []string{"PROD_DB=" + runCanary + "|v2"}) {
			t.Fatalf("opened: got %v", got)
		}
	})

	if logs := e.logs.String(); strings.Contains(logs, runCanary) {
		t.Fatalf("a value reached the logs:\n%s", logs)
	} else if !strings.Contains(logs, `"msg":"run secrets selected"`) {
		t.Fatalf("no run log line in:\n%s", logs)
	}
}

func TestRunSecretsAccess(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	priv := generateKey(t, 0x0020)
	req := &internalapiv1.SealRunSecretsRequest{
		Selection: &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"}},
		Recipient: recipient(priv), Info: []byte(runInfo),
	}
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
			resp, err := runClient(t, e, tc.cert).SealRunSecrets(as(tc.token), req)
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != codes.OK && resp != nil {
				t.Fatalf("refused call returned %v", resp)
			}
		})
	}
}

func TestSealRunSecretsBadInput(t *testing.T) {
	e := newTestEnv(t)
	plantRun(t, e)
	c := runClient(t, e, "resolver")
	priv := generateKey(t, 0x0020)
	goodSel := &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"}}
	good := func() *internalapiv1.SealRunSecretsRequest {
		return &internalapiv1.SealRunSecretsRequest{Selection: proto.Clone(goodSel).(*internalapiv1.Selection), Recipient: recipient(priv), Info: []byte(runInfo)}
	}
	with := func(f func(r *internalapiv1.SealRunSecretsRequest)) *internalapiv1.SealRunSecretsRequest {
		r := good()
		f(r)
		return r
	}
	for _, tc := range []struct {
		name  string
		req   *internalapiv1.SealRunSecretsRequest
		field string
	}{
		{"NoSelection", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Selection = nil }), "selection.owners"},
		{"NoOwners", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Selection.Owners = nil }), "selection.owners"},
		{"OwnerMalformed", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Selection.Owners = []string{"teams/acme/secrets/X"} }), "selection.owners"},
		{"OwnerBareID", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Selection.Owners = []string{"acme"} }), "selection.owners"},
		{"OwnerTwice", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Selection.Owners = []string{"teams/acme", "teams/acme"}
		}), "selection.owners"},
		{"ExcludedOwner", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Selection.Excluded = []*internalapiv1.SecretRef{{Owner: "acme", Name: "PROD_DB"}}
		}), "selection.excluded"},
		{"ExcludedName", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Selection.Excluded = []*internalapiv1.SecretRef{{Owner: "teams/acme", Name: "PROD-DB"}}
		}), "selection.excluded"},
		{"AllowlistName", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Selection.Allowlist = &scopev1.SecretNameList{Names: []string{"OK", "9LIVES"}}
		}), "selection.allowlist.names"},
		{"KEMZero", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0 }), "recipient.kem_id"},
		{"KEMUnknown", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0x0021 }), "recipient.kem_id"},
		{"KEMMismatch", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.KemId = 0x647a }), "recipient.public_key"},
		{"PublicKeyMissing", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = nil }), "recipient.public_key"},
		{"PublicKeyShort", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = r.Recipient.PublicKey[:16] }), "recipient.public_key"},
		{"PublicKeyLowOrder", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Recipient.PublicKey = make([]byte, 32) }), "recipient.public_key"},
		{"InfoMissing", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Info = nil }), "info"},
		{"InfoTooLong", with(func(r *internalapiv1.SealRunSecretsRequest) { r.Info = bytes.Repeat([]byte("i"), 1025) }), "info"},
		{"InfoTooLongWithoutRecipient", with(func(r *internalapiv1.SealRunSecretsRequest) {
			r.Recipient = nil
			r.Info = bytes.Repeat([]byte("i"), 1025)
		}), "info"},
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
	// An owner with no secrets is not an error: nothing to select.
	resp, err := c.SealRunSecrets(context.Background(), with(func(r *internalapiv1.SealRunSecretsRequest) { r.Selection.Owners = []string{"teams/empty"} }))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetCandidates()) != 0 || len(resp.GetSelected()) != 0 || len(openEnv(t, priv, runInfo, resp.GetSealed())) != 0 {
		t.Fatalf("owner without secrets: got %v", resp)
	}
	if strings.Contains(e.logs.String(), runCanary) {
		t.Fatal("a value reached the logs")
	}
}

// BenchmarkSealRunSecrets measures one SealRunSecrets call over loopback
// mutual TLS, for a run whose owners (a user and a team) hold 10 secrets:
// read, select, open and seal; and metadata only (ExplainRun). The runner's
// key is generated once, outside the measurement.
//
//	go test -run '^$' -bench SealRunSecrets ./secretstore/grpcapi/
func BenchmarkSealRunSecrets(b *testing.B) {
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
	sel := &internalapiv1.Selection{Owners: []string{"users/alice", "teams/acme"}, Excluded: []*internalapiv1.SecretRef{{Owner: "teams/acme", Name: "A6"}}}
	for _, bc := range []struct {
		name string
		kem  uint16 // 0: no recipient
	}{{"kem=X25519", 0x0020}, {"kem=MLKEM768X25519", 0x647a}, {"metadata-only", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			req := &internalapiv1.SealRunSecretsRequest{Selection: sel}
			if bc.kem != 0 {
				req.Recipient = recipient(generateKey(b, bc.kem))
				req.Info = []byte(runInfo)
			}
			for b.Loop() {
				resp, err := c.SealRunSecrets(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if len(resp.GetCandidates()) != 10 || len(resp.GetSelected()) != 7 {
					b.Fatalf("got %d candidates, %d selected; want 10, 7", len(resp.GetCandidates()), len(resp.GetSelected()))
				}
			}
		})
	}
}
