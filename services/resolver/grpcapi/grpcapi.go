// Package grpcapi serves the resolver over gRPC: the directory (the public
// oz.scope.v1 DirectoryService, TokenService, RunnerService and
// IntegrationService, and the internal oz.internalapi.v1 AuthService that
// the other services call to authenticate bearer tokens; Register) and
// run resolution (AgentService, EnvironmentService and RunService;
// RegisterRuns). It also adapts the secretstore's internal
// RunSecretsService to the domain's runs.SecretStore (NewSecretStore).
// Handlers convert between the wire and the domain; the rules live in the
// domain packages. See docs/ARCHITECTURE.md.
package grpcapi

import (
	"google.golang.org/grpc"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// AuthCallers are the services allowed to call AuthService.Authenticate,
// by the common name of their certificate.
var AuthCallers = []string{"secretstore", "audit", "gateway"}

// Rules are the access rules of the resolver's services. DirectoryService
// and TokenService need a bearer token (the Directory then checks each
// operation); AuthService admits only AuthCallers, by mutual TLS.
var Rules = auth.Rules{
	"/" + scopev1.DirectoryService_ServiceDesc.ServiceName + "/": {Access: auth.Token},
	"/" + scopev1.TokenService_ServiceDesc.ServiceName + "/":     {Access: auth.Token},
	"/" + scopev1.RunService_ServiceDesc.ServiceName + "/":       {Access: auth.Token},
	// Agent identities, environments, runners and integrations: the
	// domain admits people only, and checks their role in each operation.
	"/" + scopev1.AgentService_ServiceDesc.ServiceName + "/":       {Access: auth.Token},
	"/" + scopev1.EnvironmentService_ServiceDesc.ServiceName + "/": {Access: auth.Token},
	"/" + scopev1.RunnerService_ServiceDesc.ServiceName + "/":      {Access: auth.Token},
	"/" + scopev1.IntegrationService_ServiceDesc.ServiceName + "/": {Access: auth.Token},
	"/" + internalapiv1.AuthService_ServiceDesc.ServiceName + "/": {
		Access: auth.Internal, Services: AuthCallers,
	},
	// The audit service asks for the outbox's audit witnesses.
	outbox.WitnessService: outbox.WitnessRule,
}

// Register registers the services of the directory, backed by d, on s:
// DirectoryService, TokenService, RunnerService, IntegrationService, the
// internal AuthService, and the internal AuditWitnessService of the
// store's outbox. Serve them with Rules.
func Register(s grpc.ServiceRegistrar, d *directory.Directory) {
	scopev1.RegisterDirectoryServiceServer(s, &DirectoryServer{Dir: d})
	scopev1.RegisterTokenServiceServer(s, &TokenServer{Dir: d})
	scopev1.RegisterRunnerServiceServer(s, &RunnerServer{Dir: d})
	scopev1.RegisterIntegrationServiceServer(s, &IntegrationServer{Dir: d})
	internalapiv1.RegisterAuthServiceServer(s, &AuthServer{Dir: d})
	outbox.RegisterWitnesses(s, d.Store().Outbox())
}
