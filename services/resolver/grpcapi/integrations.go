package grpcapi

import (
	"context"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// IntegrationServer implements scopev1.IntegrationServiceServer.
type IntegrationServer struct {
	scopev1.UnimplementedIntegrationServiceServer
	Dir *directory.Directory
}

var _ scopev1.IntegrationServiceServer = (*IntegrationServer)(nil)

func integrationProto(i directory.Integration) *scopev1.Integration {
	return &scopev1.Integration{
		Name:          i.Name(),
		IntegrationId: i.ID,
		Trigger:       scopev1.Trigger(i.Trigger),
		Agents:        i.Agents,
		Description:   i.Description,
		CreateTime:    timestamp(i.CreateTime),
		CreateBy:      i.CreateBy,
		Allowed:       i.Allowed,
	}
}

// parseIntegration parses "teams/{team}/integrations/{integration}".
func parseIntegration(field, name string) (team, id string, err error) {
	return parseTeamChild(field, name, "integrations", "integration")
}

func (s *IntegrationServer) CreateIntegration(ctx context.Context, req *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error) {
	return rememberWithheld(ctx, s.Dir.Store(), req, s.createIntegration)
}

func (s *IntegrationServer) createIntegration(ctx context.Context, req *scopev1.CreateIntegrationRequest) (*scopev1.CreateIntegrationResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	in, bearer, err := s.Dir.CreateIntegration(ctx, directory.Integration{
		Team: team, ID: req.GetIntegrationId(), Trigger: resolver.Trigger(req.GetTrigger()),
		Agents: req.GetAgents(), Description: req.GetDescription(),
	})
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateIntegrationResponse{Integration: integrationProto(in), BearerToken: bearer}, nil
}

func (s *IntegrationServer) GetIntegration(ctx context.Context, req *scopev1.GetIntegrationRequest) (*scopev1.GetIntegrationResponse, error) {
	team, id, err := parseIntegration("name", req.GetName())
	if err != nil {
		return nil, err
	}
	in, err := s.Dir.GetIntegration(ctx, team, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetIntegrationResponse{Integration: integrationProto(in)}, nil
}

func (s *IntegrationServer) ListIntegrations(ctx context.Context, req *scopev1.ListIntegrationsRequest) (*scopev1.ListIntegrationsResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	ins, next, err := s.Dir.ListIntegrations(ctx, team, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListIntegrationsResponse{NextPageToken: next}
	for _, in := range ins {
		resp.Integrations = append(resp.Integrations, integrationProto(in))
	}
	return resp, nil
}

func (s *IntegrationServer) DeleteIntegration(ctx context.Context, req *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.deleteIntegration)
}

func (s *IntegrationServer) deleteIntegration(ctx context.Context, req *scopev1.DeleteIntegrationRequest) (*scopev1.DeleteIntegrationResponse, error) {
	team, id, err := parseIntegration("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Dir.DeleteIntegration(ctx, team, id); err != nil {
		return nil, err
	}
	return &scopev1.DeleteIntegrationResponse{}, nil
}

func (s *IntegrationServer) AllowIntegration(ctx context.Context, req *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.allowIntegration)
}

func (s *IntegrationServer) allowIntegration(ctx context.Context, req *scopev1.AllowIntegrationRequest) (*scopev1.AllowIntegrationResponse, error) {
	in, err := s.allow(ctx, req.GetName(), true)
	if err != nil {
		return nil, err
	}
	return &scopev1.AllowIntegrationResponse{Integration: in}, nil
}

func (s *IntegrationServer) DisallowIntegration(ctx context.Context, req *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.disallowIntegration)
}

func (s *IntegrationServer) disallowIntegration(ctx context.Context, req *scopev1.DisallowIntegrationRequest) (*scopev1.DisallowIntegrationResponse, error) {
	in, err := s.allow(ctx, req.GetName(), false)
	if err != nil {
		return nil, err
	}
	return &scopev1.DisallowIntegrationResponse{Integration: in}, nil
}

func (s *IntegrationServer) allow(ctx context.Context, name string, allow bool) (*scopev1.Integration, error) {
	team, id, err := parseIntegration("name", name)
	if err != nil {
		return nil, err
	}
	in, err := s.Dir.AllowIntegration(ctx, team, id, allow)
	if err != nil {
		return nil, err
	}
	return integrationProto(in), nil
}
