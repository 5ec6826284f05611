package runs

import (
	"context"
	"slices"
	"time"

	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Fixtures of the run tests: they write agent identities and environments
// as records, so that run resolution is tested on its own.

// RunsTestPutAgent writes agent identity id of team, referencing names.
func RunsTestPutAgent(ctx context.Context, s kv.Store, team, id string, names []string) error {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := resolver.AgentRecord{Team: team, ID: id, SecretNames: names, CreateTime: now, UpdateTime: now}
	if id == resolver.DefaultAgentID {
		rec = resolver.DefaultAgentRecord(team, now)
		rec.SecretNames = names
	}
	// With its restriction entries, as CreateAgent and UpdateAgent keep them.
	puts, dels := restrictionWrites(team, id, testAgentNames(ctx, s, team, id), names)
	return s.Apply(ctx, nil, slices.Concat([]kv.Write{kv.Put(resolver.AgentKey(team, id), resolver.Encode(rec))}, puts, dels))
}

// RunsTestDeleteAgent removes agent identity id of team.
func RunsTestDeleteAgent(ctx context.Context, s kv.Store, team, id string) error {
	_, dels := restrictionWrites(team, id, testAgentNames(ctx, s, team, id), nil)
	return s.Apply(ctx, nil, append([]kv.Write{kv.Delete(resolver.AgentKey(team, id))}, dels...))
}

// testAgentNames is what identity id of team references now (none when
// it is absent).
func testAgentNames(ctx context.Context, s kv.Store, team, id string) []string {
	var rec resolver.AgentRecord
	if _, err := resolver.NewStore(s, nil).Get(ctx, resolver.AgentKey(team, id), &rec); err != nil {
		return nil
	}
	return rec.SecretNames
}

// RunsTestPutEnvironment writes environment id of team, listing names.
func RunsTestPutEnvironment(ctx context.Context, s kv.Store, team, id string, names []string) error {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := environmentRecord{Team: team, ID: id, SecretNames: names, CreateTime: now, UpdateTime: now}
	return s.Apply(ctx, nil, []kv.Write{kv.Put(resolver.EnvironmentKey(team, id), resolver.Encode(rec))})
}

// RunsTestStart starts a run of team with rc as StartRun would after its
// permission checks (started by the triggering user, else the identity),
// so that resolution is tested on its own, and returns its ticket. Errors
// of the context's syntax and references are StartRun's.
func RunsTestStart(ctx context.Context, r *Service, team string, rc RunContext, runID string) (string, error) {
	rc, user, err := normalize(rc)
	if err != nil {
		return "", err
	}
	prep, err := r.prepare(ctx, team, rc, user, false)
	if err != nil {
		return "", err
	}
	by := resolver.AgentName(team, prep.input.Agent)
	if user != "" {
		by = resolver.UserName(user)
	}
	st, err := r.issueTicket(ctx, prep, runID, DefaultTicketTTL, by)
	return st.Ticket, err
}

// RunsTestResolve starts a run (RunsTestStart) and resolves it with ctx's
// runner: what ResolveRun did before start tickets.
func RunsTestResolve(ctx context.Context, r *Service, team string, rc RunContext, runID string, rcpt Recipient) (Resolution, error) {
	ticket, err := RunsTestStart(ctx, r, team, rc, runID)
	if err != nil {
		return Resolution{}, err
	}
	return r.ResolveRun(ctx, ResolveRequest{Team: team, Ticket: ticket, Recipient: &rcpt})
}
