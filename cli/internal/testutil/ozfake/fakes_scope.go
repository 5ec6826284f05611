package ozfake

import (
	"context"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// Agents is an AgentService whose methods call the func fields; an unset
// field answers Unimplemented.
type Agents struct {
	scopev1.UnimplementedAgentServiceServer
	CreateAgentFunc func(context.Context, *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error)
	GetAgentFunc    func(context.Context, *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error)
	ListAgentsFunc  func(context.Context, *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error)
	UpdateAgentFunc func(context.Context, *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error)
	DeleteAgentFunc func(context.Context, *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error)
}

var _ scopev1.AgentServiceServer = (*Agents)(nil)

func (f *Agents) CreateAgent(ctx context.Context, r *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error) {
	if f.CreateAgentFunc == nil {
		return nil, unimplemented("CreateAgent")
	}
	return f.CreateAgentFunc(ctx, r)
}

func (f *Agents) GetAgent(ctx context.Context, r *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error) {
	if f.GetAgentFunc == nil {
		return nil, unimplemented("GetAgent")
	}
	return f.GetAgentFunc(ctx, r)
}

func (f *Agents) ListAgents(ctx context.Context, r *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
	if f.ListAgentsFunc == nil {
		return nil, unimplemented("ListAgents")
	}
	return f.ListAgentsFunc(ctx, r)
}

func (f *Agents) UpdateAgent(ctx context.Context, r *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error) {
	if f.UpdateAgentFunc == nil {
		return nil, unimplemented("UpdateAgent")
	}
	return f.UpdateAgentFunc(ctx, r)
}

func (f *Agents) DeleteAgent(ctx context.Context, r *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
	if f.DeleteAgentFunc == nil {
		return nil, unimplemented("DeleteAgent")
	}
	return f.DeleteAgentFunc(ctx, r)
}

// Environments is an EnvironmentService whose methods call the func fields; an unset
// field answers Unimplemented.
type Environments struct {
	scopev1.UnimplementedEnvironmentServiceServer
	CreateEnvironmentFunc func(context.Context, *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error)
	GetEnvironmentFunc    func(context.Context, *scopev1.GetEnvironmentRequest) (*scopev1.GetEnvironmentResponse, error)
	ListEnvironmentsFunc  func(context.Context, *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error)
	UpdateEnvironmentFunc func(context.Context, *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error)
	DeleteEnvironmentFunc func(context.Context, *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error)
}

var _ scopev1.EnvironmentServiceServer = (*Environments)(nil)

func (f *Environments) CreateEnvironment(ctx context.Context, r *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error) {
	if f.CreateEnvironmentFunc == nil {
		return nil, unimplemented("CreateEnvironment")
	}
	return f.CreateEnvironmentFunc(ctx, r)
}

func (f *Environments) GetEnvironment(ctx context.Context, r *scopev1.GetEnvironmentRequest) (*scopev1.GetEnvironmentResponse, error) {
	if f.GetEnvironmentFunc == nil {
		return nil, unimplemented("GetEnvironment")
	}
	return f.GetEnvironmentFunc(ctx, r)
}

func (f *Environments) ListEnvironments(ctx context.Context, r *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
	if f.ListEnvironmentsFunc == nil {
		return nil, unimplemented("ListEnvironments")
	}
	return f.ListEnvironmentsFunc(ctx, r)
}

func (f *Environments) UpdateEnvironment(ctx context.Context, r *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error) {
	if f.UpdateEnvironmentFunc == nil {
		return nil, unimplemented("UpdateEnvironment")
	}
	return f.UpdateEnvironmentFunc(ctx, r)
}

func (f *Environments) DeleteEnvironment(ctx context.Context, r *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error) {
	if f.DeleteEnvironmentFunc == nil {
		return nil, unimplemented("DeleteEnvironment")
	}
	return f.DeleteEnvironmentFunc(ctx, r)
}

// Runners is a RunnerService whose methods call the func fields; an unset
// field answers Unimplemented.
type Runners struct {
	scopev1.UnimplementedRunnerServiceServer
	CreateRunnerFunc func(context.Context, *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error)
	GetRunnerFunc    func(context.Context, *scopev1.GetRunnerRequest) (*scopev1.GetRunnerResponse, error)
	ListRunnersFunc  func(context.Context, *scopev1.ListRunnersRequest) (*scopev1.ListRunnersResponse, error)
	DeleteRunnerFunc func(context.Context, *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error)
}

var _ scopev1.RunnerServiceServer = (*Runners)(nil)

func (f *Runners) CreateRunner(ctx context.Context, r *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error) {
	if f.CreateRunnerFunc == nil {
		return nil, unimplemented("CreateRunner")
	}
	return f.CreateRunnerFunc(ctx, r)
}

func (f *Runners) GetRunner(ctx context.Context, r *scopev1.GetRunnerRequest) (*scopev1.GetRunnerResponse, error) {
	if f.GetRunnerFunc == nil {
		return nil, unimplemented("GetRunner")
	}
	return f.GetRunnerFunc(ctx, r)
}

func (f *Runners) ListRunners(ctx context.Context, r *scopev1.ListRunnersRequest) (*scopev1.ListRunnersResponse, error) {
	if f.ListRunnersFunc == nil {
		return nil, unimplemented("ListRunners")
	}
	return f.ListRunnersFunc(ctx, r)
}

func (f *Runners) DeleteRunner(ctx context.Context, r *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error) {
	if f.DeleteRunnerFunc == nil {
		return nil, unimplemented("DeleteRunner")
	}
	return f.DeleteRunnerFunc(ctx, r)
}

// Runs is a RunService whose methods call the func fields; an unset
// field answers Unimplemented.
type Runs struct {
	scopev1.UnimplementedRunServiceServer
	StartRunFunc   func(context.Context, *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error)
	EndRunFunc     func(context.Context, *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error)
	ResolveRunFunc func(context.Context, *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error)
	ExplainRunFunc func(context.Context, *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error)
	GetRunFunc     func(context.Context, *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error)
	ListRunsFunc   func(context.Context, *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error)
}

var _ scopev1.RunServiceServer = (*Runs)(nil)

func (f *Runs) StartRun(ctx context.Context, r *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error) {
	if f.StartRunFunc == nil {
		return nil, unimplemented("StartRun")
	}
	return f.StartRunFunc(ctx, r)
}

func (f *Runs) EndRun(ctx context.Context, r *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error) {
	if f.EndRunFunc == nil {
		return nil, unimplemented("EndRun")
	}
	return f.EndRunFunc(ctx, r)
}

func (f *Runs) ResolveRun(ctx context.Context, r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
	if f.ResolveRunFunc == nil {
		return nil, unimplemented("ResolveRun")
	}
	return f.ResolveRunFunc(ctx, r)
}

func (f *Runs) ExplainRun(ctx context.Context, r *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error) {
	if f.ExplainRunFunc == nil {
		return nil, unimplemented("ExplainRun")
	}
	return f.ExplainRunFunc(ctx, r)
}

func (f *Runs) GetRun(ctx context.Context, r *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
	if f.GetRunFunc == nil {
		return nil, unimplemented("GetRun")
	}
	return f.GetRunFunc(ctx, r)
}

func (f *Runs) ListRuns(ctx context.Context, r *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
	if f.ListRunsFunc == nil {
		return nil, unimplemented("ListRuns")
	}
	return f.ListRunsFunc(ctx, r)
}

// Integrations is an IntegrationService whose methods call the func
// fields; an unset field answers Unimplemented.
type Integrations struct {
	scopev1.UnimplementedIntegrationServiceServer
	CreateIntegrationFunc   func(context.Context, *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error)
	GetIntegrationFunc      func(context.Context, *scopev1.GetIntegrationRequest) (*scopev1.GetIntegrationResponse, error)
	ListIntegrationsFunc    func(context.Context, *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error)
	DeleteIntegrationFunc   func(context.Context, *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error)
	AllowIntegrationFunc    func(context.Context, *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error)
	DisallowIntegrationFunc func(context.Context, *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error)
}

var _ scopev1.IntegrationServiceServer = (*Integrations)(nil)

func (f *Integrations) CreateIntegration(ctx context.Context, r *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error) {
	if f.CreateIntegrationFunc == nil {
		return nil, unimplemented("CreateIntegration")
	}
	return f.CreateIntegrationFunc(ctx, r)
}

func (f *Integrations) GetIntegration(ctx context.Context, r *scopev1.GetIntegrationRequest) (*scopev1.GetIntegrationResponse, error) {
	if f.GetIntegrationFunc == nil {
		return nil, unimplemented("GetIntegration")
	}
	return f.GetIntegrationFunc(ctx, r)
}

func (f *Integrations) ListIntegrations(ctx context.Context, r *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error) {
	if f.ListIntegrationsFunc == nil {
		return nil, unimplemented("ListIntegrations")
	}
	return f.ListIntegrationsFunc(ctx, r)
}

func (f *Integrations) DeleteIntegration(ctx context.Context, r *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error) {
	if f.DeleteIntegrationFunc == nil {
		return nil, unimplemented("DeleteIntegration")
	}
	return f.DeleteIntegrationFunc(ctx, r)
}

func (f *Integrations) AllowIntegration(ctx context.Context, r *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error) {
	if f.AllowIntegrationFunc == nil {
		return nil, unimplemented("AllowIntegration")
	}
	return f.AllowIntegrationFunc(ctx, r)
}

func (f *Integrations) DisallowIntegration(ctx context.Context, r *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error) {
	if f.DisallowIntegrationFunc == nil {
		return nil, unimplemented("DisallowIntegration")
	}
	return f.DisallowIntegrationFunc(ctx, r)
}
