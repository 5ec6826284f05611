package ozfake

import (
	"context"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// The fake services: a func field per RPC that tests set, served by
// register (serve_fake.go); an unset field answers Unimplemented.

// Secrets is a fake SecretService.
type Secrets struct {
	CreateSecretFunc         func(context.Context, *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error)
	GetSecretFunc            func(context.Context, *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error)
	ListSecretsFunc          func(context.Context, *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error)
	UpdateSecretFunc         func(context.Context, *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error)
	DeleteSecretFunc         func(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error)
	ListAvailableSecretsFunc func(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error)
}

// SealingKeys is a fake SealingKeyService; Sealer.Fake serves real keys.
type SealingKeys struct {
	ListSealingKeysFunc   func(context.Context, *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error)
	RotateSealingKeysFunc func(context.Context, *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error)
}

// Directory is a fake DirectoryService.
type Directory struct {
	CreateTeamFunc        func(context.Context, *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error)
	CreateUserFunc        func(context.Context, *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error)
	CreateMembershipFunc  func(context.Context, *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error)
	GetCallerFunc         func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error)
	CreateInvitationFunc  func(context.Context, *scopev1.CreateInvitationRequest) (*scopev1.CreateInvitationResponse, error)
	ListInvitationsFunc   func(context.Context, *scopev1.ListInvitationsRequest) (*scopev1.ListInvitationsResponse, error)
	AcceptInvitationFunc  func(context.Context, *scopev1.AcceptInvitationRequest) (*scopev1.AcceptInvitationResponse, error)
	DeclineInvitationFunc func(context.Context, *scopev1.DeclineInvitationRequest) (*scopev1.DeclineInvitationResponse, error)
}

// Tokens is a fake TokenService.
type Tokens struct {
	CreateTokenFunc func(context.Context, *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error)
	ListTokensFunc  func(context.Context, *scopev1.ListTokensRequest) (*scopev1.ListTokensResponse, error)
	RevokeTokenFunc func(context.Context, *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error)
}

// Agents is a fake AgentService.
type Agents struct {
	CreateAgentFunc func(context.Context, *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error)
	GetAgentFunc    func(context.Context, *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error)
	ListAgentsFunc  func(context.Context, *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error)
	UpdateAgentFunc func(context.Context, *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error)
	DeleteAgentFunc func(context.Context, *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error)
}

// Environments is a fake EnvironmentService.
type Environments struct {
	CreateEnvironmentFunc func(context.Context, *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error)
	GetEnvironmentFunc    func(context.Context, *scopev1.GetEnvironmentRequest) (*scopev1.GetEnvironmentResponse, error)
	ListEnvironmentsFunc  func(context.Context, *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error)
	UpdateEnvironmentFunc func(context.Context, *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error)
	DeleteEnvironmentFunc func(context.Context, *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error)
}

// Runners is a fake RunnerService.
type Runners struct {
	CreateRunnerFunc func(context.Context, *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error)
	GetRunnerFunc    func(context.Context, *scopev1.GetRunnerRequest) (*scopev1.GetRunnerResponse, error)
	ListRunnersFunc  func(context.Context, *scopev1.ListRunnersRequest) (*scopev1.ListRunnersResponse, error)
	DeleteRunnerFunc func(context.Context, *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error)
}

// Runs is a fake RunService.
type Runs struct {
	StartRunFunc   func(context.Context, *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error)
	EndRunFunc     func(context.Context, *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error)
	ResolveRunFunc func(context.Context, *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error)
	ExplainRunFunc func(context.Context, *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error)
	GetRunFunc     func(context.Context, *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error)
	ListRunsFunc   func(context.Context, *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error)
}

// Integrations is a fake IntegrationService.
type Integrations struct {
	CreateIntegrationFunc   func(context.Context, *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error)
	GetIntegrationFunc      func(context.Context, *scopev1.GetIntegrationRequest) (*scopev1.GetIntegrationResponse, error)
	ListIntegrationsFunc    func(context.Context, *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error)
	DeleteIntegrationFunc   func(context.Context, *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error)
	AllowIntegrationFunc    func(context.Context, *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error)
	DisallowIntegrationFunc func(context.Context, *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error)
}

// Audit is a fake AuditService.
type Audit struct {
	ListEventsFunc     func(context.Context, *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error)
	VerifyChainFunc    func(context.Context, *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error)
	ExportEventsFunc   func(context.Context, *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error)
	GetSecretUsageFunc func(context.Context, *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error)
	ReviewSecretsFunc  func(context.Context, *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error)
}

// Caller answers GetCaller with user users/{user} in teams (all as admin).
func Caller(user string, teams ...string) func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	p := &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/" + user, TokenId: "tok1"}
	for _, t := range teams {
		p.Teams = append(p.Teams, &scopev1.TeamRole{Team: t, Role: scopev1.Role_ROLE_ADMIN})
	}
	return func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
		return &scopev1.GetCallerResponse{Principal: p}, nil
	}
}
