package secret

import (
	"context"
	"strings"
	"testing"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func deleteOK(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
	return &secretsv1.DeleteSecretResponse{}, nil
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name        string
		scope       cmdutil.Scope
		tty         bool
		force       bool
		answer      string
		wantDeleted string // resource name, or "" when nothing may be deleted
		wantPrompt  string
		wantCode    int
	}{
		{name: "ForceTeam", scope: cmdutil.ScopeTeam, force: true, wantDeleted: "teams/acme/secrets/API_KEY"},
		{name: "ForcePersonal", scope: cmdutil.ScopePersonal, force: true, wantDeleted: "users/me/secrets/API_KEY"},
		{name: "ConfirmedYes", scope: cmdutil.ScopeTeam, tty: true, answer: "y", wantDeleted: "teams/acme/secrets/API_KEY", wantPrompt: "Delete team secret API_KEY (team acme)? [y/N] "},
		{name: "ConfirmedYES", scope: cmdutil.ScopePersonal, tty: true, answer: "YES", wantDeleted: "users/me/secrets/API_KEY", wantPrompt: "Delete personal secret API_KEY? [y/N] "},
		{name: "DeclinedNo", scope: cmdutil.ScopeTeam, tty: true, answer: "n", wantPrompt: "Delete team secret API_KEY (team acme)? [y/N] ", wantCode: exitcode.Error},
		{name: "DeclinedEmpty", scope: cmdutil.ScopeTeam, tty: true, answer: "", wantPrompt: "Delete team secret API_KEY (team acme)? [y/N] ", wantCode: exitcode.Error},
		{name: "ForceOnTerminalDoesNotAsk", scope: cmdutil.ScopeTeam, tty: true, force: true, wantDeleted: "teams/acme/secrets/API_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{DeleteSecretFunc: deleteOK}, nil, nil)
			ios, _, _, _ := iostreams.Test()
			ios.StdinTTY = tt.tty
			p := &iostreams.ScriptedPrompter{Answers: []string{tt.answer}}
			err := runDelete(context.Background(), &DeleteOptions{
				IO: ios, Prompter: p, Connect: connectTo(srv), Scope: tt.scope, Team: "acme", Name: "API_KEY", Force: tt.force,
			})
			wantExitCode(t, err, tt.wantCode)
			calls := srv.CallsTo("DeleteSecret")
			switch {
			case tt.wantDeleted == "" && len(calls) != 0:
				t.Errorf("got %d DeleteSecret calls, want none", len(calls))
			case tt.wantDeleted != "":
				if req := mustRequest[*secretsv1.DeleteSecretRequest](t, srv, "DeleteSecret"); req.GetName() != tt.wantDeleted {
					t.Errorf("got name %q, want %q", req.GetName(), tt.wantDeleted)
				}
			}
			var gotPrompt string
			if len(p.Prompts) > 0 {
				gotPrompt = p.Prompts[0]
			}
			if gotPrompt != tt.wantPrompt {
				t.Errorf("got prompt %q, want %q", gotPrompt, tt.wantPrompt)
			}
		})
	}
}

func TestDeleteWithoutTerminalRefuses(t *testing.T) {
	for _, scope := range []cmdutil.Scope{cmdutil.ScopeTeam, cmdutil.ScopePersonal} {
		t.Run(scope.String(), func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{DeleteSecretFunc: deleteOK}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
			ios, in, _, _ := iostreams.Test()
			in.WriteString("y\n") // not a terminal: must not be taken as an answer
			err := runDelete(context.Background(), &DeleteOptions{
				IO: ios, Prompter: &iostreams.ScriptedPrompter{Answers: []string{"y"}}, Connect: connectTo(srv), Scope: scope, Name: "API_KEY",
			})
			wantExitCode(t, err, exitcode.Usage)
			if err == nil || !strings.Contains(err.Error(), "--force") {
				t.Errorf("got error %v, want it to mention --force", err)
			}
			wantNoCalls(t, srv)
		})
	}
}
