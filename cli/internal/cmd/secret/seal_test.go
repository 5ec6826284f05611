package secret

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func TestSeal(t *testing.T) {
	const value = "sk-live-CANARY-seal-4242"
	for _, tt := range []struct {
		name      string
		scope     cmdutil.Scope
		team      string
		stdin     string
		tty       bool
		wantOwner string
	}{
		{name: "TeamFromStdin", scope: cmdutil.ScopeTeam, stdin: value + "\n", wantOwner: "teams/acme"},
		{name: "ChosenTeam", scope: cmdutil.ScopeTeam, team: "beta", stdin: value, wantOwner: "teams/beta"},
		{name: "PersonalFromPrompt", scope: cmdutil.ScopePersonal, tty: true, wantOwner: "users/alice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, caller(), nil)
			ios, in, out, errOut := iostreams.Test()
			in.WriteString(tt.stdin)
			ios.StdinTTY, ios.StdoutTTY = tt.tty, tt.tty
			p := &iostreams.ScriptedPrompter{Passwords: [][]byte{[]byte(value)}}
			err := runSeal(context.Background(), &SealOptions{IO: ios, Prompter: p, Connect: connectTo(srv), Scope: tt.scope, Team: tt.team, Name: "API_KEY"})
			if err != nil {
				t.Fatalf("runSeal: %v", err)
			}
			// One line of JSON, exactly the REST form of a SealedValue.
			line := out.String()
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || !strings.HasPrefix(line, `{"keyId":"mlkem768x25519-1","ciphertext":"`) {
				t.Fatalf("got output %q, want one line {\"keyId\":…,\"ciphertext\":…}", line)
			}
			var sv secretsv1.SealedValue
			if err := protojson.Unmarshal([]byte(line), &sv); err != nil {
				t.Fatalf("the output is not a protojson SealedValue: %v", err)
			}
			if got := srv.Sealer.MustOpen(t, &sv, tt.wantOwner, "API_KEY"); got != value {
				t.Fatalf("opened server-side: got %q, want the value", got)
			}
			// Sealed for that secret only.
			for _, other := range []struct{ owner, name string }{{tt.wantOwner, "OTHER"}, {"teams/gamma", "API_KEY"}, {"users/me", "API_KEY"}} {
				if _, err := srv.Sealer.Open(&sv, other.owner, other.name); err == nil {
					t.Errorf("the blob opens for %s/secrets/%s too", other.owner, other.name)
				}
			}
			if strings.Contains(line+errOut.String(), value) {
				t.Errorf("the value was printed")
			}
			if n := len(srv.CallsTo("CreateSecret")); n != 0 {
				t.Errorf("got %d CreateSecret calls, want none: seal stores nothing", n)
			}
			wantNoPlaintext(t, srv, value)
		})
	}
}

// TestSealOutputIsARESTSealedValue checks that the JSON printed is what a
// REST create takes as sealedValue.
func TestSealOutputIsARESTSealedValue(t *testing.T) {
	srv := ozfake.Start(t, nil, caller(), nil)
	ios, in, out, _ := iostreams.Test()
	in.WriteString("v4lue\n")
	err := runSeal(context.Background(), &SealOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "DB_PASSWORD"})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"secretId":"DB_PASSWORD","sealedValue":` + strings.TrimSpace(out.String()) + `,"description":"primary db"}`
	var req secretsv1.CreateSecretRequest
	if err := protojson.Unmarshal([]byte(body), &req); err != nil {
		t.Fatalf("a REST body with the output as sealedValue: %v", err)
	}
	if got := srv.Sealer.MustOpen(t, req.GetSealedValue(), "teams/acme", "DB_PASSWORD"); got != "v4lue" {
		t.Fatalf("opened: got %q", got)
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil || len(raw) != 2 {
		t.Fatalf("output: got %v (%v), want exactly keyId and ciphertext", raw, err)
	}
}

func TestSealKeyChoice(t *testing.T) {
	sealer := ozfake.NewSealer(t)
	only := func(kem uint32) *ozfake.SealingKeys {
		return &ozfake.SealingKeys{ListSealingKeysFunc: func(context.Context, *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
			resp := &secretsv1.ListSealingKeysResponse{}
			for _, k := range sealer.Keys(t) {
				if k.GetKemId() == kem {
					resp.Keys = append(resp.Keys, k)
				}
			}
			return resp, nil
		}}
	}
	t.Run("FallsBackToX25519", func(t *testing.T) {
		srv := ozfake.StartServices(t, ozfake.Services{Secrets: &ozfake.Secrets{CreateSecretFunc: createOK}, Directory: caller(), SealingKeys: only(kemX25519)})
		ios, in, _, _ := iostreams.Test()
		in.WriteString("value-x")
		if err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "K"}); err != nil {
			t.Fatal(err)
		}
		req := mustRequest[*secretsv1.CreateSecretRequest](t, srv, "CreateSecret")
		if req.GetSealedValue().GetKeyId() != "x25519-1" {
			t.Fatalf("sealed to %q, want x25519-1", req.GetSealedValue().GetKeyId())
		}
		if got := sealer.MustOpen(t, req.GetSealedValue(), "teams/acme", "K"); got != "value-x" {
			t.Fatalf("opened: got %q", got)
		}
	})
	t.Run("AfterRotation", func(t *testing.T) {
		rotated := ozfake.NewSealer(t)
		if _, err := rotated.Fake().RotateSealingKeysFunc(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		srv := ozfake.StartServices(t, ozfake.Services{Secrets: &ozfake.Secrets{CreateSecretFunc: createOK}, Directory: caller(), Sealer: rotated})
		ios, in, _, _ := iostreams.Test()
		in.WriteString("value-r")
		if err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "K"}); err != nil {
			t.Fatal(err)
		}
		req := mustRequest[*secretsv1.CreateSecretRequest](t, srv, "CreateSecret")
		if got := req.GetSealedValue().GetKeyId(); got != "mlkem768x25519-2" {
			t.Fatalf("sealed to %q, want the current hybrid key mlkem768x25519-2", got)
		}
	})
	for _, tc := range []struct {
		name     string
		keys     *ozfake.SealingKeys
		wantCode int
		wantMsg  string
	}{
		{"NoUsableKey", only(0x0010), exitcode.Error, "no sealing key this oz can use"},
		{"OldServer", &ozfake.SealingKeys{}, exitcode.Error, "the server publishes no sealing keys"},
		{"Unreachable", &ozfake.SealingKeys{ListSealingKeysFunc: func(context.Context, *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
			return nil, status.Error(codes.Unavailable, "secretstore unavailable")
		}}, exitcode.Unavailable, "secretstore unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ozfake.StartServices(t, ozfake.Services{Secrets: &ozfake.Secrets{CreateSecretFunc: createOK}, Directory: caller(), SealingKeys: tc.keys})
			ios, in, _, _ := iostreams.Test()
			ios.StdinTTY = true
			in.WriteString("v")
			p := &iostreams.ScriptedPrompter{Passwords: [][]byte{[]byte("typed")}}
			err := runCreate(context.Background(), &CreateOptions{IO: ios, Prompter: p, Connect: connectTo(srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "K"})
			wantExitCode(t, err, tc.wantCode)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("got %v, want %q", err, tc.wantMsg)
			}
			if len(p.Prompts) != 0 {
				t.Errorf("prompted %q: want no prompt for a value that cannot be sealed", p.Prompts)
			}
			if n := len(srv.CallsTo("CreateSecret")); n != 0 {
				t.Errorf("got %d CreateSecret calls, want none", n)
			}
		})
	}
}

func TestSealPersonalNeedsAUser(t *testing.T) {
	for _, tc := range []struct {
		name     string
		caller   func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error)
		wantCode int
	}{
		{"TokenExpired", func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			return nil, status.Error(codes.Unauthenticated, "token expired")
		}, exitcode.Denied},
		{"AgentToken", func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			return &scopev1.GetCallerResponse{Principal: &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_AGENT, Name: "teams/acme/agents/deployer"}}, nil
		}, exitcode.Denied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: tc.caller}, nil)
			ios, in, out, _ := iostreams.Test()
			in.WriteString("value")
			err := runSeal(context.Background(), &SealOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopePersonal, Name: "K"})
			wantExitCode(t, err, tc.wantCode)
			if out.Len() != 0 {
				t.Errorf("got output %q, want none", out)
			}
		})
	}
}
