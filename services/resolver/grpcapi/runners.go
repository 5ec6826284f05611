package grpcapi

import (
	"context"
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// RunnerServer implements scopev1.RunnerServiceServer.
type RunnerServer struct {
	scopev1.UnimplementedRunnerServiceServer
	Dir *directory.Directory
}

var _ scopev1.RunnerServiceServer = (*RunnerServer)(nil)

func runnerProto(r directory.Runner) *scopev1.Runner {
	return &scopev1.Runner{
		Name:       r.Name(),
		RunnerId:   r.ID,
		Teams:      r.Teams,
		CreateTime: timestamp(r.CreateTime),
	}
}

// parseRunner parses "runners/{runner}".
func parseRunner(field, name string) (string, error) {
	id, ok := strings.CutPrefix(name, "runners/")
	if !ok || !resolver.ValidID(id) {
		return "", errs.Field(field, `must be "runners/{runner}"; {runner} `+resolver.IDRule)
	}
	return id, nil
}

// CreateRunner creates a runner and returns it with its first token.
func (s *RunnerServer) CreateRunner(ctx context.Context, req *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error) {
	return rememberWithheld(ctx, s.Dir.Store(), req, s.createRunner)
}

func (s *RunnerServer) createRunner(ctx context.Context, req *scopev1.CreateRunnerRequest) (*scopev1.CreateRunnerResponse, error) {
	r, bearer, err := s.Dir.CreateRunner(ctx, req.GetRunnerId(), req.GetTeams())
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateRunnerResponse{Runner: runnerProto(r), BearerToken: bearer}, nil
}

func (s *RunnerServer) GetRunner(ctx context.Context, req *scopev1.GetRunnerRequest) (*scopev1.GetRunnerResponse, error) {
	id, err := parseRunner("name", req.GetName())
	if err != nil {
		return nil, err
	}
	r, err := s.Dir.GetRunner(ctx, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetRunnerResponse{Runner: runnerProto(r)}, nil
}

func (s *RunnerServer) ListRunners(ctx context.Context, req *scopev1.ListRunnersRequest) (*scopev1.ListRunnersResponse, error) {
	runners, next, err := s.Dir.ListRunners(ctx, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListRunnersResponse{NextPageToken: next}
	for _, r := range runners {
		resp.Runners = append(resp.Runners, runnerProto(r))
	}
	return resp, nil
}

// DeleteRunner deletes a runner and revokes its tokens.
func (s *RunnerServer) DeleteRunner(ctx context.Context, req *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error) {
	return remember(ctx, s.Dir.Store(), req, s.deleteRunner)
}

func (s *RunnerServer) deleteRunner(ctx context.Context, req *scopev1.DeleteRunnerRequest) (*scopev1.DeleteRunnerResponse, error) {
	id, err := parseRunner("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Dir.DeleteRunner(ctx, id); err != nil {
		return nil, err
	}
	return &scopev1.DeleteRunnerResponse{}, nil
}
