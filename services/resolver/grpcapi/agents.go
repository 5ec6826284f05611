package grpcapi

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// AgentServer implements scopev1.AgentServiceServer.
type AgentServer struct {
	scopev1.UnimplementedAgentServiceServer
	Runs *runs.Service
}

var _ scopev1.AgentServiceServer = (*AgentServer)(nil)

func agentProto(a runs.Agent) *scopev1.Agent {
	return &scopev1.Agent{
		Name:        a.Name(),
		AgentId:     a.ID,
		DisplayName: a.DisplayName,
		Description: a.Description,
		SecretNames: a.SecretNames,
		StartPolicy: scopev1.StartPolicy(a.StartPolicy),
		Default:     a.Default,
		CreateTime:  timestamp(a.CreateTime),
		UpdateTime:  timestamp(a.UpdateTime),
		Etag:        a.Etag,
	}
}

// parseAgent parses "teams/{team}/agents/{agent}".
func parseAgent(field, name string) (team, id string, err error) {
	return parseTeamChild(field, name, "agents", "agent")
}

// parseTeamChild parses "teams/{team}/{collection}/{id}".
func parseTeamChild(field, name, collection, singular string) (team, id string, err error) {
	rest, ok := strings.CutPrefix(name, "teams/")
	if ok {
		team, id, ok = strings.Cut(rest, "/"+collection+"/")
	}
	if !ok || !resolver.ValidID(team) || !resolver.ValidID(id) {
		return "", "", errs.Field(field, `must be "teams/{team}/%s/{%s}"; {team} and {%s} %s`, collection, singular, singular, resolver.IDRule)
	}
	return team, id, nil
}

func (s *AgentServer) CreateAgent(ctx context.Context, req *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.createAgent)
}

func (s *AgentServer) createAgent(ctx context.Context, req *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	a, err := s.Runs.CreateAgent(ctx, runs.Agent{
		Team: team, ID: req.GetAgentId(), DisplayName: req.GetDisplayName(),
		Description: req.GetDescription(), SecretNames: req.GetSecretNames(),
		StartPolicy: runs.StartPolicy(req.GetStartPolicy()),
	})
	if err != nil {
		return nil, err
	}
	return &scopev1.CreateAgentResponse{Agent: agentProto(a)}, nil
}

func (s *AgentServer) GetAgent(ctx context.Context, req *scopev1.GetAgentRequest) (*scopev1.GetAgentResponse, error) {
	team, id, err := parseAgent("name", req.GetName())
	if err != nil {
		return nil, err
	}
	a, err := s.Runs.GetAgent(ctx, team, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetAgentResponse{Agent: agentProto(a)}, nil
}

func (s *AgentServer) ListAgents(ctx context.Context, req *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	agents, next, err := s.Runs.ListAgents(ctx, team, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListAgentsResponse{NextPageToken: next}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, agentProto(a))
	}
	return resp, nil
}

// UpdateAgent changes what the mask names or, with no mask, what is
// non-empty (AIP-134); the added and removed names apply either way.
func (s *AgentServer) UpdateAgent(ctx context.Context, req *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.updateAgent)
}

func (s *AgentServer) updateAgent(ctx context.Context, req *scopev1.UpdateAgentRequest) (*scopev1.UpdateAgentResponse, error) {
	team, id, err := parseAgent("name", req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := readMask(req.GetUpdateMask(), "display_name", "description", "secret_names", "start_policy")
	if err != nil {
		return nil, err
	}
	u := runs.AgentUpdate{
		DisplayName: m.text("display_name", req.GetDisplayName()),
		Description: m.text("description", req.GetDescription()),
		SecretNames: m.names(req.GetSecretNames(), req.GetAddSecretNames(), req.GetRemoveSecretNames()),
		Etag:        req.GetEtag(),
	}
	if p := req.GetStartPolicy(); m.paths["start_policy"] || !m.set && p != scopev1.StartPolicy_START_POLICY_UNSPECIFIED {
		sp := runs.StartPolicy(p)
		u.StartPolicy = &sp
	}
	a, err := s.Runs.UpdateAgent(ctx, team, id, u)
	if err != nil {
		return nil, err
	}
	return &scopev1.UpdateAgentResponse{Agent: agentProto(a)}, nil
}

func (s *AgentServer) DeleteAgent(ctx context.Context, req *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.deleteAgent)
}

func (s *AgentServer) deleteAgent(ctx context.Context, req *scopev1.DeleteAgentRequest) (*scopev1.DeleteAgentResponse, error) {
	team, id, err := parseAgent("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.Runs.DeleteAgent(ctx, team, id, req.GetEtag()); err != nil {
		return nil, err
	}
	return &scopev1.DeleteAgentResponse{}, nil
}

// mask is an update mask read against the fields an Update may change.
type mask struct {
	set   bool            // a mask was given
	paths map[string]bool // the fields it names
}

// readMask checks the paths of fm: each must be one of fields, or "*"
// (every field). A nil or empty mask means "the non-empty fields".
func readMask(fm *fieldmaskpb.FieldMask, fields ...string) (mask, error) {
	m := mask{paths: map[string]bool{}}
	for i, p := range fm.GetPaths() {
		switch {
		case p == "*":
			for _, f := range fields {
				m.paths[f] = true
			}
		case slices.Contains(fields, p):
			m.paths[p] = true
		default:
			return mask{}, errs.Field("update_mask", "path %d must be one of %s, or *", i, strings.Join(fields, ", "))
		}
	}
	m.set = len(fm.GetPaths()) > 0
	return m, nil
}

// text is the new value of a text field: v when the mask names field (an
// empty v then clears it) or, with no mask, when v is non-empty; nil
// otherwise (unchanged).
func (m mask) text(field, v string) *string {
	if m.paths[field] || !m.set && v != "" {
		return &v
	}
	return nil
}

// names is the change of the "secret_names" list: replaced when the mask
// names it (an empty list then clears it) or, with no mask, when names is
// non-empty; then add and remove apply.
func (m mask) names(names, add, remove []string) resolver.NamesUpdate {
	return resolver.NamesUpdate{
		Set:    m.paths["secret_names"] || !m.set && len(names) > 0,
		Names:  names,
		Add:    add,
		Remove: remove,
	}
}
