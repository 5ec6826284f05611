package root_test

import (
	"context"
	"strings"
	"testing"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// An empty list is one line saying so, on standard error and only on a
// terminal: a person sees why there is no table; a script reads an empty
// standard output (and [] with --output json).
func TestEmptyLists(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{
			GetCallerFunc: ozfake.Caller("alice", "acme"),
			ListInvitationsFunc: func(context.Context, *scopev1.ListInvitationsRequest) (*scopev1.ListInvitationsResponse, error) {
				return &scopev1.ListInvitationsResponse{}, nil
			},
		},
		Agents: &ozfake.Agents{ListAgentsFunc: func(context.Context, *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
			return &scopev1.ListAgentsResponse{}, nil
		}},
		Environments: &ozfake.Environments{ListEnvironmentsFunc: func(context.Context, *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
			return &scopev1.ListEnvironmentsResponse{}, nil
		}},
		Runs: &ozfake.Runs{ListRunsFunc: func(context.Context, *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
			return &scopev1.ListRunsResponse{}, nil
		}},
		Integrations: &ozfake.Integrations{ListIntegrationsFunc: func(context.Context, *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error) {
			return &scopev1.ListIntegrationsResponse{}, nil
		}},
		Audit: &ozfake.Audit{ListEventsFunc: func(context.Context, *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
			return &auditv1.ListEventsResponse{}, nil
		}},
	})
	for _, tt := range []struct {
		args []string
		line string
	}{
		{[]string{"agent", "list"}, "No agent identities.\n"},
		{[]string{"environment", "list"}, "No environments.\n"},
		{[]string{"run", "list"}, "No runs.\n"},
		{[]string{"invitation", "list"}, "No invitations.\n"},
		{[]string{"integration", "list"}, "No integrations in team acme.\n"},
		{[]string{"audit", "list"}, "No audit events.\n"},
	} {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, tt.args...)
			if r.Code != 0 || r.Stdout != "" || r.Stderr != tt.line {
				t.Errorf("terminal: code %d, stdout %q, stderr %q; want 0, nothing, %q", r.Code, r.Stdout, r.Stderr, tt.line)
			}
			r = ozrun.Run(t, srv, ozrun.Options{}, tt.args...)
			if r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
				t.Errorf("script: code %d, stdout %q, stderr %q; want 0 and nothing", r.Code, r.Stdout, r.Stderr)
			}
			r = ozrun.Run(t, srv, ozrun.Options{}, append(tt.args, "--output", "json")...)
			if r.Code != 0 || strings.TrimSpace(r.Stdout) != "[]" {
				t.Errorf("json: code %d, stdout %q; want []", r.Code, r.Stdout)
			}
		})
	}
}
