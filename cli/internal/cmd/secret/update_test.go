package secret

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func updateOK(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
	return &secretsv1.UpdateSecretResponse{Secret: &secretsv1.Secret{Name: r.GetName()}}, nil
}

func TestUpdate(t *testing.T) {
	valueFile := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(valueFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		opts      UpdateOptions
		stdin     string
		tty       bool
		wantName  string
		wantOwner string // canonical: what the value is sealed for
		wantMask  []string
		wantValue string
		wantDesc  string
	}{
		{
			name:     "ValueFromStdin",
			opts:     UpdateOptions{Scope: cmdutil.ScopeTeam, Team: "acme", Value: true},
			stdin:    "new-value\n",
			wantName: "teams/acme/secrets/API_KEY", wantOwner: "teams/acme", wantMask: []string{"value"}, wantValue: "new-value",
		},
		{
			name:     "ValueFromPrompt",
			opts:     UpdateOptions{Scope: cmdutil.ScopePersonal, Value: true},
			tty:      true,
			wantName: "users/me/secrets/API_KEY", wantOwner: "users/alice", wantMask: []string{"value"}, wantValue: "typed",
		},
		{
			name:     "ValueFile",
			opts:     UpdateOptions{Scope: cmdutil.ScopePersonal, ValueFile: valueFile},
			wantName: "users/me/secrets/API_KEY", wantOwner: "users/alice", wantMask: []string{"value"}, wantValue: "from-file\n",
		},
		{
			name:     "DescriptionOnly",
			opts:     UpdateOptions{Scope: cmdutil.ScopeTeam, Team: "acme", SetDescription: true, Description: "rotated"},
			wantName: "teams/acme/secrets/API_KEY", wantMask: []string{"description"}, wantDesc: "rotated",
		},
		{
			name:     "DescriptionCleared",
			opts:     UpdateOptions{Scope: cmdutil.ScopeTeam, Team: "acme", SetDescription: true},
			wantName: "teams/acme/secrets/API_KEY", wantMask: []string{"description"},
		},
		{
			name:     "ValueAndDescription",
			opts:     UpdateOptions{Scope: cmdutil.ScopePersonal, Value: true, SetDescription: true, Description: "d"},
			stdin:    "both",
			wantName: "users/me/secrets/API_KEY", wantOwner: "users/alice", wantMask: []string{"value", "description"}, wantValue: "both", wantDesc: "d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{UpdateSecretFunc: updateOK}, caller(), nil)
			ios, in, _, _ := iostreams.Test()
			in.WriteString(tt.stdin)
			ios.StdinTTY = tt.tty
			opts := tt.opts
			opts.IO, opts.Connect, opts.Name = ios, connectTo(srv), "API_KEY"
			opts.Prompter = &iostreams.ScriptedPrompter{Passwords: [][]byte{[]byte("typed")}}
			if err := runUpdate(context.Background(), &opts); err != nil {
				t.Fatalf("runUpdate: %v", err)
			}
			req := mustRequest[*secretsv1.UpdateSecretRequest](t, srv, "UpdateSecret")
			if got := req.GetName(); got != tt.wantName {
				t.Errorf("got name %q, want %q", got, tt.wantName)
			}
			if got := req.GetUpdateMask().GetPaths(); !slices.Equal(got, tt.wantMask) {
				t.Errorf("got update mask %q, want %q", got, tt.wantMask)
			}
			if len(req.GetValue()) != 0 {
				t.Errorf("got a plain value (%d bytes), want the value sealed only", len(req.GetValue()))
			}
			if tt.wantValue == "" {
				if req.GetSealedValue() != nil {
					t.Errorf("got a sealed value, want none")
				}
				if n := len(srv.CallsTo("ListSealingKeys")); n != 0 {
					t.Errorf("got %d ListSealingKeys calls for a description update, want none", n)
				}
			} else {
				if got := srv.Sealer.MustOpen(t, req.GetSealedValue(), tt.wantOwner, "API_KEY"); got != tt.wantValue {
					t.Errorf("got sealed value %q, want %q", got, tt.wantValue)
				}
				wantNoPlaintext(t, srv, tt.wantValue)
			}
			if got := req.GetDescription(); got != tt.wantDesc {
				t.Errorf("got description %q, want %q", got, tt.wantDesc)
			}
		})
	}
}

func TestUpdateNothingToChange(t *testing.T) {
	srv := ozfake.Start(t, &ozfake.Secrets{UpdateSecretFunc: updateOK}, nil, nil)
	ios, _, _, _ := iostreams.Test()
	err := runUpdate(context.Background(), &UpdateOptions{IO: ios, Connect: connectTo(srv), Scope: cmdutil.ScopePersonal, Name: "API_KEY"})
	wantExitCode(t, err, exitcode.Usage)
	wantNoCalls(t, srv)
}
