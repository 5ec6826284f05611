package grpcapi

import (
	"context"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// EnvironmentServer implements scopev1.EnvironmentServiceServer.
type EnvironmentServer struct {
	scopev1.UnimplementedEnvironmentServiceServer
	Runs *runs.Service
}

var _ scopev1.EnvironmentServiceServer = (*EnvironmentServer)(nil)

func environmentProto(e runs.Environment) *scopev1.Environment {
	return &scopev1.Environment{
		Name:          e.Name(),
		EnvironmentId: e.ID,
		Description:   e.Description,
		SecretNames:   e.SecretNames,
		CreateTime:    timestamp(e.CreateTime),
		UpdateTime:    timestamp(e.UpdateTime),
		Etag:          e.Etag,
	}
}

// parseEnvironment parses "teams/{team}/environments/{environment}".
func parseEnvironment(field, name string) (team, id string, err error) {
	return parseTeamChild(field, name, "environments", "environment")
}

func (s *EnvironmentServer) CreateEnvironment(ctx context.Context, req *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.createEnvironment)
}

func (s *EnvironmentServer) createEnvironment(ctx context.Context, req *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	e, err := s.Runs.CreateEnvironment(ctx, runs.Environment{
		Team: team, ID: req.GetEnvironmentId(), Description: req.GetDescription(), SecretNames: req.GetSecretNames(),
	})
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateEnvironmentResponse{Environment: environmentProto(e)}, nil
}

func (s *EnvironmentServer) GetEnvironment(ctx context.Context, req *scopev1.GetEnvironmentRequest) (*scopev1.GetEnvironmentResponse, error) {
	team, id, err := parseEnvironment("name", req.GetName())
	if err != nil {
		return nil, err
	}
	e, err := s.Runs.GetEnvironment(ctx, team, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetEnvironmentResponse{Environment: environmentProto(e)}, nil
}

func (s *EnvironmentServer) ListEnvironments(ctx context.Context, req *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	envs, next, err := s.Runs.ListEnvironments(ctx, team, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListEnvironmentsResponse{NextPageToken: next}
	for _, e := range envs {
		resp.Environments = append(resp.Environments, environmentProto(e))
	}
	return resp, nil
}

// UpdateEnvironment changes what the mask names or, with no mask, what is
// non-empty (AIP-134); the added and removed names apply either way.
func (s *EnvironmentServer) UpdateEnvironment(ctx context.Context, req *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.updateEnvironment)
}

func (s *EnvironmentServer) updateEnvironment(ctx context.Context, req *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error) {
	team, id, err := parseEnvironment("name", req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := readMask(req.GetUpdateMask(), "description", "secret_names")
	if err != nil {
		return nil, err
	}
	e, err := s.Runs.UpdateEnvironment(ctx, team, id, runs.EnvironmentUpdate{
		Description: m.text("description", req.GetDescription()),
		SecretNames: m.names(req.GetSecretNames(), req.GetAddSecretNames(), req.GetRemoveSecretNames()),
		Etag:        req.GetEtag(),
	})
	if err != nil {
		return nil, err
	}
	return &scopev1.UpdateEnvironmentResponse{Environment: environmentProto(e)}, nil
}

func (s *EnvironmentServer) DeleteEnvironment(ctx context.Context, req *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.deleteEnvironment)
}

func (s *EnvironmentServer) deleteEnvironment(ctx context.Context, req *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error) {
	team, id, err := parseEnvironment("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Runs.DeleteEnvironment(ctx, team, id, req.GetEtag()); err != nil {
		return nil, err
	}
	return &scopev1.DeleteEnvironmentResponse{}, nil
}
