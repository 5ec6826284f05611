package resolver

import (
	"context"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
)

// Keys of the run-resolution records (beside those in records.go):
//
//	agents/{team}/{agent}                  agentRecord
//	environments/{team}/{env}              environmentRecord
//	runners/{runner}                       runnerRecord
//	runs/{team}/{run}                      runRecord
//	runsbytime/{team}/{inverted time}/{run} marker (newest first)
//
// Agent and environment ids follow the team/user id rule (ValidID). The
// default identity of every team has id DefaultAgentID and is written in
// the same Apply that creates the team.
const (
	prefixAgents       = "agents/"
	prefixEnvironments = "environments/"
	prefixRunners      = "runners/"
	prefixRuns         = "runs/"
	prefixRunsByTime   = "runsbytime/"

	// DefaultAgentID is the id of each team's default identity.
	DefaultAgentID = "default"
	// DefaultAgentDisplayName is how people see it.
	DefaultAgentDisplayName = "Default Service Account"
)

func agentKey(team, id string) string       { return prefixAgents + team + "/" + id }
func agentsPrefix(team string) string       { return prefixAgents + team + "/" }
func environmentKey(team, id string) string { return prefixEnvironments + team + "/" + id }
func environmentsPrefix(team string) string { return prefixEnvironments + team + "/" }
func runnerKey(id string) string            { return prefixRunners + id }
func runKey(team, id string) string         { return prefixRuns + team + "/" + id }
func runsByTimePrefix(team string) string   { return prefixRunsByTime + team + "/" }

// AgentName is the resource name of an agent identity:
// "teams/{team}/agents/{agent}"; it is also the principal name of the
// identity's tokens.
func AgentName(team, id string) string { return "teams/" + team + "/agents/" + id }

// EnvironmentName is "teams/{team}/environments/{env}".
func EnvironmentName(team, id string) string { return "teams/" + team + "/environments/" + id }

// RunnerName is "runners/{runner}"; also the principal name of its tokens.
func RunnerName(id string) string { return "runners/" + id }

// RunName is "teams/{team}/runs/{run}".
func RunName(team, id string) string { return "teams/" + team + "/runs/" + id }

type agentRecord struct {
	Team        string    `json:"team"`
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name,omitempty"`
	Description string    `json:"description,omitempty"`
	SecretNames []string  `json:"secret_names,omitempty"`
	StartPolicy string    `json:"start_policy,omitempty"` // "admins" (also when absent) or "members"; the default identity is always "members"
	Default     bool      `json:"default,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	UpdateTime  time.Time `json:"update_time"`
}

type environmentRecord struct {
	Team        string    `json:"team"`
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	SecretNames []string  `json:"secret_names,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	UpdateTime  time.Time `json:"update_time"`
}

type runnerRecord struct {
	ID         string    `json:"id"`
	Teams      []string  `json:"teams"` // team ids, sorted
	CreateTime time.Time `json:"create_time"`
	CreateBy   string    `json:"create_by,omitempty"`
}

// defaultAgentRecord is the record of team's default identity.
func defaultAgentRecord(team string, now time.Time) agentRecord {
	return agentRecord{
		Team: team, ID: DefaultAgentID, DisplayName: DefaultAgentDisplayName,
		Description: "Runs with no user and no identity execute as this identity.",
		Default:     true, CreateTime: now, UpdateTime: now,
	}
}

// agentRecord reads agent id of team. NotFound names the agent.
func (d *Directory) agentRecord(ctx context.Context, team, id string) (agentRecord, []byte, error) {
	var rec agentRecord
	raw, err := d.get(ctx, agentKey(team, id), &rec)
	if isNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "agent identity %q not found in team %q", id, team)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get agent identity: %w", err)
	}
	return rec, raw, nil
}

// environmentRecord reads environment id of team. NotFound names it.
func (d *Directory) environmentRecord(ctx context.Context, team, id string) (environmentRecord, []byte, error) {
	var rec environmentRecord
	raw, err := d.get(ctx, environmentKey(team, id), &rec)
	if isNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "environment %q not found in team %q", id, team)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get environment: %w", err)
	}
	return rec, raw, nil
}

// runnerRecord reads runner id. NotFound names it.
func (d *Directory) runnerRecord(ctx context.Context, id string) (runnerRecord, []byte, error) {
	var rec runnerRecord
	raw, err := d.get(ctx, runnerKey(id), &rec)
	if isNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "runner %q not found", id)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get runner: %w", err)
	}
	return rec, raw, nil
}

// teamIdentities returns every identity of team with its references, for
// the restriction step of run resolution (DESIGN §5 step 2).
func (d *Directory) teamIdentities(ctx context.Context, team string) ([]runrules.Identity, error) {
	recs, err := scan[agentRecord](ctx, d.store, agentsPrefix(team), "", 0)
	if err != nil {
		return nil, fmt.Errorf("list agent identities: %w", err)
	}
	out := make([]runrules.Identity, 0, len(recs))
	for _, r := range recs {
		out = append(out, runrules.Identity{ID: r.ID, SecretNames: r.SecretNames})
	}
	return out, nil
}
