package secret

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func createOK(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	return &secretsv1.CreateSecretResponse{Secret: &secretsv1.Secret{
		Name: r.GetParent() + "/secrets/" + r.GetSecretId(), SecretId: r.GetSecretId(), ValueVersion: 1,
	}}, nil
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(content string) string {
		t.Helper()
		p := filepath.Join(dir, strings.NewReplacer("\n", "_", "\r", "_").Replace(content)+".txt")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name       string
		scope      cmdutil.Scope
		team       string
		stdin      string
		tty        bool
		typed      string
		valueFile  string
		wantParent string
		wantOwner  string // canonical: what the value is sealed for
		wantValue  string
		wantCaller bool // GetCaller is asked: for the team, or for the user id
		wantPrompt string
	}{
		{name: "StdinOneNewlineRemoved", scope: cmdutil.ScopePersonal, stdin: "s3cret\n", wantValue: "s3cret"},
		{name: "StdinCRLFRemoved", scope: cmdutil.ScopePersonal, stdin: "s3cret\r\n", wantValue: "s3cret"},
		{name: "StdinOnlyOneNewlineRemoved", scope: cmdutil.ScopePersonal, stdin: "s3cret\n\n", wantValue: "s3cret\n"},
		{name: "StdinNoNewline", scope: cmdutil.ScopePersonal, stdin: "s3cret", wantValue: "s3cret"},
		{name: "StdinMultiline", scope: cmdutil.ScopePersonal, stdin: "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", wantValue: "-----BEGIN KEY-----\nabc\n-----END KEY-----"},
		{name: "ValueFileExactBytes", scope: cmdutil.ScopePersonal, valueFile: writeFile("line1\nline2\n\n"), wantValue: "line1\nline2\n\n"},
		{name: "ValueFileCRLFKept", scope: cmdutil.ScopePersonal, valueFile: writeFile("v\r\n"), wantValue: "v\r\n"},
		{name: "ValueFileDashIsStdinExact", scope: cmdutil.ScopePersonal, valueFile: "-", stdin: "abc\n", wantValue: "abc\n"},
		{name: "ValueFileWinsOverTerminal", scope: cmdutil.ScopePersonal, tty: true, valueFile: writeFile("fromfile"), wantValue: "fromfile"},
		{name: "PromptOnTerminal", scope: cmdutil.ScopePersonal, tty: true, typed: "typed-value", wantValue: "typed-value", wantPrompt: "Value for API_KEY: "},
		{name: "TeamChosen", scope: cmdutil.ScopeTeam, team: "beta", stdin: "v-beta", wantParent: "teams/beta", wantOwner: "teams/beta", wantValue: "v-beta"},
		{name: "TeamFromOnlyMembership", scope: cmdutil.ScopeTeam, stdin: "v-acme", wantParent: "teams/acme", wantOwner: "teams/acme", wantValue: "v-acme", wantCaller: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.scope == cmdutil.ScopePersonal {
				// Sent under users/me, sealed for the caller's own id.
				tt.wantParent, tt.wantOwner, tt.wantCaller = "users/me", "users/alice", true
			}
			srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
			ios, in, out, errOut := iostreams.Test()
			in.WriteString(tt.stdin)
			ios.StdinTTY = tt.tty
			p := &iostreams.ScriptedPrompter{Passwords: [][]byte{[]byte(tt.typed)}}
			err := runCreate(context.Background(), &CreateOptions{
				IO: ios, Prompter: p, Connect: connectTo(srv),
				Scope: tt.scope, Team: tt.team, Name: "API_KEY", ValueFile: tt.valueFile, Description: "the key",
			})
			if err != nil {
				t.Fatalf("runCreate: %v", err)
			}
			req := mustRequest[*secretsv1.CreateSecretRequest](t, srv, "CreateSecret")
			if got := req.GetParent(); got != tt.wantParent {
				t.Errorf("got parent %q, want %q", got, tt.wantParent)
			}
			if got := req.GetSecretId(); got != "API_KEY" {
				t.Errorf("got secret_id %q, want %q", got, "API_KEY")
			}
			if len(req.GetValue()) != 0 {
				t.Errorf("got a plain value (%d bytes), want the value sealed only", len(req.GetValue()))
			}
			if got := srv.Sealer.MustOpen(t, req.GetSealedValue(), tt.wantOwner, "API_KEY"); got != tt.wantValue {
				t.Errorf("got sealed value %q, want %q", got, tt.wantValue)
			}
			if got := req.GetSealedValue().GetKeyId(); got != "mlkem768x25519-1" {
				t.Errorf("sealed to key %q, want the hybrid key mlkem768x25519-1", got)
			}
			if len(tt.wantValue) >= 3 {
				wantNoPlaintext(t, srv, tt.wantValue)
			}
			if got := req.GetDescription(); got != "the key" {
				t.Errorf("got description %q, want %q", got, "the key")
			}
			if got := len(srv.CallsTo("GetCaller")); (got >= 1) != tt.wantCaller {
				t.Errorf("got %d GetCaller calls, want caller asked: %v", got, tt.wantCaller)
			}
			var gotPrompt string
			if len(p.Prompts) > 0 {
				gotPrompt = p.Prompts[0]
			}
			if gotPrompt != tt.wantPrompt {
				t.Errorf("got prompt %q, want %q", gotPrompt, tt.wantPrompt)
			}
			if tt.wantValue != "" && (strings.Contains(out.String(), tt.wantValue) || strings.Contains(errOut.String(), tt.wantValue)) {
				t.Errorf("value printed: stdout %q, stderr %q", out, errOut)
			}
		})
	}
}

// caller is the Directory of user alice, admin of acme.
func caller() *ozfake.Directory {
	return &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}
}

func TestCreateSendsAuthMetadata(t *testing.T) {
	srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, caller(), nil)
	ios, in, _, _ := iostreams.Test()
	in.WriteString("v")
	err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopePersonal, Name: "API_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	calls := srv.CallsTo("CreateSecret")
	if len(calls) != 1 {
		t.Fatalf("got %d calls, want 1", len(calls))
	}
	md := calls[0].MD
	if got, want := md.Get("authorization"), []string{"Bearer " + ozfake.Token}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("got authorization %q, want %q", got, want)
	}
	if got := md.Get("x-oz-client"); len(got) != 1 || got[0] != "cli" {
		t.Errorf("got x-oz-client %q, want [cli]", got)
	}
}

func TestCreateRefusesBeforeSending(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		stdin   string
		file    string
		wantMsg string
	}{
		{name: "EmptyStdin", secret: "API_KEY", stdin: "", wantMsg: "value: must not be empty"},
		{name: "OnlyNewline", secret: "API_KEY", stdin: "\n", wantMsg: "value: must not be empty"},
		{name: "MissingFile", secret: "API_KEY", file: "/nonexistent/value", wantMsg: "--value-file"},
		{name: "SlashInName", secret: "A/B", stdin: "v", wantMsg: `NAME: must not contain "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, caller(), nil)
			ios, in, _, _ := iostreams.Test()
			in.WriteString(tt.stdin)
			err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopePersonal, Name: tt.secret, ValueFile: tt.file})
			wantExitCode(t, err, exitcode.Usage)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %v, want it to contain %q", err, tt.wantMsg)
			}
			if got := len(srv.CallsTo("CreateSecret")); got != 0 {
				t.Errorf("got %d CreateSecret calls, want 0", got)
			}
		})
	}
}

func TestCreateTeamSelection(t *testing.T) {
	tests := []struct {
		name     string
		teams    []string
		wantCode int
		wantMsg  string
	}{
		{name: "Several", teams: []string{"beta", "acme"}, wantCode: exitcode.Usage, wantMsg: "several teams (acme, beta): set OZ_TEAM or --use-team"},
		{name: "None", teams: nil, wantCode: exitcode.Usage, wantMsg: "not a member of any team"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", tt.teams...)}, nil)
			ios, in, _, _ := iostreams.Test()
			in.WriteString("v")
			err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopeTeam, Name: "API_KEY"})
			wantExitCode(t, err, tt.wantCode)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %v, want it to contain %q", err, tt.wantMsg)
			}
			if got := len(srv.CallsTo("CreateSecret")); got != 0 {
				t.Errorf("got %d CreateSecret calls, want 0", got)
			}
		})
	}
}

func TestCreateSuccessMessageOnlyOnTerminal(t *testing.T) {
	for _, tty := range []bool{false, true} {
		srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, caller(), nil)
		ios, in, out, _ := iostreams.Test()
		in.WriteString("v")
		ios.StdoutTTY = tty
		if err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopePersonal, Name: "API_KEY"}); err != nil {
			t.Fatal(err)
		}
		want := ""
		if tty {
			want = "Created personal secret API_KEY\n"
		}
		if got := out.String(); got != want {
			t.Errorf("tty=%v: got stdout %q, want %q", tty, got, want)
		}
	}
}
