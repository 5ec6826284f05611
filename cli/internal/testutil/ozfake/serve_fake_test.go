package ozfake

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
)

// TestFakesMatchServices checks every fake against its service: each
// field serves a method of it, with its types; and names the methods no
// fake serves yet (they answer Unimplemented).
func TestFakesMatchServices(t *testing.T) {
	tests := []struct {
		desc *grpc.ServiceDesc
		fake any
	}{
		{&secretsv1.SecretService_ServiceDesc, &Secrets{}},
		{&secretsv1.SealingKeyService_ServiceDesc, &SealingKeys{}},
		{&scopev1.DirectoryService_ServiceDesc, &Directory{}},
		{&scopev1.TokenService_ServiceDesc, &Tokens{}},
		{&scopev1.AgentService_ServiceDesc, &Agents{}},
		{&scopev1.EnvironmentService_ServiceDesc, &Environments{}},
		{&scopev1.RunnerService_ServiceDesc, &Runners{}},
		{&scopev1.RunService_ServiceDesc, &Runs{}},
		{&scopev1.IntegrationService_ServiceDesc, &Integrations{}},
		{&auditv1.AuditService_ServiceDesc, &Audit{}},
	}
	for _, tt := range tests {
		t.Run(tt.desc.ServiceName, func(t *testing.T) {
			_, fields, err := fakeFields(tt.desc, tt.fake)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.desc.Methods {
				if _, ok := fields[m.MethodName]; !ok {
					t.Logf("no field %sFunc: %s answers Unimplemented", m.MethodName, m.MethodName)
				}
			}
		})
	}
}

func TestFakeFieldsRefused(t *testing.T) {
	tests := []struct {
		name string
		fake any
		want string
	}{
		{"NotAPointer", Agents{}, "want a pointer to a struct"},
		{"UnknownMethod", &struct {
			CreateAgentsFunc func(context.Context, *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error)
		}{}, "CreateAgentsFunc serves no method"},
		{"NotFunc", &struct{ GetAgent string }{}, "GetAgent serves no method"},
		{"WrongRequest", &struct {
			GetAgentFunc func(context.Context, *scopev1.GetRunRequest) (*scopev1.GetAgentResponse, error)
		}{}, "want func(context.Context, *GetAgentRequest) (*GetAgentResponse, error)"},
		{"WrongResult", &struct {
			GetAgentFunc func(context.Context, *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, bool)
		}{}, "want func(context.Context, *GetAgentRequest)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := fakeFields(&scopev1.AgentService_ServiceDesc, tt.fake)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestFakeServes(t *testing.T) {
	srv := StartServices(t, Services{Agents: &Agents{
		GetAgentFunc: func(_ context.Context, r *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error) {
			return &scopev1.GetAgentResponse{Agent: &scopev1.Agent{Name: r.GetName()}}, nil
		},
		DeleteAgentFunc: func(context.Context, *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
			return nil, status.Error(codes.FailedPrecondition, "etag")
		},
	}})
	conn, err := client.Dial(srv.Settings())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()

	resp, err := conn.Agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: "teams/acme/agents/a"})
	if err != nil || resp.GetAgent().GetName() != "teams/acme/agents/a" {
		t.Errorf("GetAgent: got %v, %v; want the agent", resp, err)
	}
	if _, err := conn.Agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("DeleteAgent: got %v, want FailedPrecondition", err)
	}
	_, err = conn.Agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/acme"})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "fake: ListAgents not set") {
		t.Errorf("ListAgents: got %v, want Unimplemented: fake: ListAgents not set", err)
	}
	if _, err := conn.Runs.GetRun(ctx, &scopev1.GetRunRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("GetRun of an unset service: got %v, want Unimplemented", err)
	}

	calls := srv.Calls()
	if len(calls) != 4 {
		t.Fatalf("got %d calls, want 4", len(calls))
	}
	if got := calls[2]; got.Method != "/oz.scope.v1.AgentService/ListAgents" || got.Req.(*scopev1.ListAgentsRequest).GetParent() != "teams/acme" {
		t.Errorf("got call %s %v, want ListAgents of teams/acme recorded", got.Method, got.Req)
	}
	if got := calls[0].MD.Get("authorization"); len(got) != 1 || !strings.HasSuffix(got[0], Token) {
		t.Errorf("got authorization %q, want the token", got)
	}
}
