package root_test

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// On a terminal, a mutation says what it did; with --quiet (-q) it says
// nothing, and its errors still show with their exit codes.
func TestQuiet(t *testing.T) {
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{
			GetCallerFunc: ozfake.Caller("alice", "acme"),
			AcceptInvitationFunc: func(context.Context, *scopev1.AcceptInvitationRequest) (*scopev1.AcceptInvitationResponse, error) {
				return &scopev1.AcceptInvitationResponse{Membership: &scopev1.Membership{Role: scopev1.Role_ROLE_MEMBER}}, nil
			},
		},
		Agents: &ozfake.Agents{
			CreateAgentFunc: func(_ context.Context, r *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error) {
				if r.GetAgentId() == "taken" {
					return nil, status.Error(codes.AlreadyExists, "agent identity taken exists")
				}
				return &scopev1.CreateAgentResponse{Agent: &scopev1.Agent{AgentId: r.GetAgentId()}}, nil
			},
			DeleteAgentFunc: func(context.Context, *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
				return &scopev1.DeleteAgentResponse{}, nil
			},
		},
		Environments: &ozfake.Environments{
			UpdateEnvironmentFunc: func(_ context.Context, r *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error) {
				return &scopev1.UpdateEnvironmentResponse{Environment: &scopev1.Environment{Name: r.GetName(), Description: r.GetDescription()}}, nil
			},
		},
		Integrations: &ozfake.Integrations{
			AllowIntegrationFunc: func(context.Context, *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error) {
				return &scopev1.AllowIntegrationResponse{Integration: &scopev1.Integration{}}, nil
			},
		},
	})
	cfg := map[string]string{"OZ_CONFIG": filepath.Join(t.TempDir(), "config.json")}
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{name: "AgentCreate", args: []string{"agent", "create", "deployer"}},
		{name: "AgentCreateJSON", args: []string{"agent", "create", "deployer", "--output", "json"}},
		{name: "AgentDelete", args: []string{"agent", "delete", "deployer", "--force"}},
		{name: "EnvironmentUpdate", args: []string{"environment", "update", "prod", "-d", "production"}},
		{name: "IntegrationAllow", args: []string{"integration", "allow", "slack-bot"}},
		{name: "InvitationAccept", args: []string{"invitation", "accept", "acme"}},
		{name: "ConfigSet", env: cfg, args: []string{"config", "set", "team", "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loud := ozrun.Run(t, srv, ozrun.Options{TTY: true, Env: tt.env}, tt.args...)
			if loud.Code != 0 || loud.Stdout == "" {
				t.Fatalf("without --quiet: code %d, stdout %q, stderr %q; want 0 and a message", loud.Code, loud.Stdout, loud.Stderr)
			}
			for _, flag := range []string{"--quiet", "-q"} {
				r := ozrun.Run(t, srv, ozrun.Options{TTY: true, Env: tt.env}, append(tt.args, flag)...)
				if r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
					t.Errorf("%s: code %d, stdout %q, stderr %q; want 0 and nothing", flag, r.Code, r.Stdout, r.Stderr)
				}
			}
		})
	}
	r := ozrun.Run(t, srv, ozrun.Options{TTY: true}, "agent", "create", "taken", "-q")
	if r.Code != exitcode.Conflict || r.Stderr != "oz: agent identity taken exists\n" || r.Stdout != "" {
		t.Errorf("failing create -q: code %d, stdout %q, stderr %q; want %d and the error", r.Code, r.Stdout, r.Stderr, exitcode.Conflict)
	}
	// Lists and gets have no --quiet: their output is the point.
	if r := ozrun.Run(t, srv, ozrun.Options{}, "agent", "list", "-q"); r.Code != exitcode.Usage {
		t.Errorf("agent list -q: code %d, want %d", r.Code, exitcode.Usage)
	}
}
