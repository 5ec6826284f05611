package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Environment is a named list of secret names (team or personal), the
// default allowlist of the runs that use it (DESIGN §5 step 3). An empty
// list means no allowlist. Names are resolved at run start and need not
// exist.
type Environment struct {
	Team        string // team id
	ID          string
	Description string
	SecretNames []string
	CreateTime  time.Time
	UpdateTime  time.Time
	Etag        string
}

// Name is the environment's resource name,
// "teams/{team}/environments/{env}".
func (e Environment) Name() string { return resolver.EnvironmentName(e.Team, e.ID) }

func (r environmentRecord) environment(raw []byte) Environment {
	return Environment{
		Team: r.Team, ID: r.ID, Description: r.Description, SecretNames: slices.Clone(r.SecretNames),
		CreateTime: r.CreateTime, UpdateTime: r.UpdateTime, Etag: resolver.EtagOf(raw),
	}
}

// CreateEnvironment creates environment e.ID of e.Team with e's
// description and secret names (other fields are ignored). Callers are
// people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id, description,
// secret_names), PermissionDenied, NotFound (team), AlreadyExists.
func (r *Service) CreateEnvironment(ctx context.Context, e Environment) (Environment, error) {
	if err := resolver.CheckID("team_id", e.Team); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckID("environment_id", e.ID); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckDescription(e.Description); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckSecretNames("secret_names", e.SecretNames); err != nil {
		return Environment{}, err
	}
	if err := resolver.MayAdminTeam(ctx, e.Team, "environments"); err != nil {
		return Environment{}, err
	}
	now := r.s.Now()
	rec := environmentRecord{
		Team: e.Team, ID: e.ID, Description: e.Description,
		SecretNames: resolver.UniqueNames(e.SecretNames), CreateTime: now, UpdateTime: now,
	}
	raw := resolver.Encode(rec)
	details := map[string]string{}
	resolver.SetNames(details, resolver.DetailSecretNames, rec.SecretNames)
	err := r.s.Apply(ctx,
		[]kv.Cond{kv.Present(resolver.TeamKey(e.Team)), kv.Absent(resolver.EnvironmentKey(e.Team, e.ID))},
		[]kv.Write{kv.Put(resolver.EnvironmentKey(e.Team, e.ID), raw)},
		r.s.Event(ctx, resolver.ActionEnvironmentCreate, resolver.EnvironmentName(e.Team, e.ID), e.Team, details))
	switch resolver.Conflict(err) {
	case 0:
		return Environment{}, errs.E(errs.KindNotFound, "team %q not found", e.Team)
	case 1:
		return Environment{}, errs.E(errs.KindAlreadyExists, "environment %q already exists in team %q", e.ID, e.Team)
	}
	if err != nil {
		return Environment{}, fmt.Errorf("create environment: %w", err)
	}
	return rec.environment(raw), nil
}

// GetEnvironment returns environment id of team. Callers are people:
// members of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id), PermissionDenied,
// NotFound.
func (r *Service) GetEnvironment(ctx context.Context, team, id string) (Environment, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckID("environment_id", id); err != nil {
		return Environment{}, err
	}
	if err := resolver.MayReadTeam(ctx, team, "environments"); err != nil {
		return Environment{}, err
	}
	rec, raw, err := r.environmentRecord(ctx, team, id)
	if err != nil {
		return Environment{}, err
	}
	return rec.environment(raw), nil
}

// ListEnvironments lists team's environments in id order. Callers are
// people: members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound (team).
func (r *Service) ListEnvironments(ctx context.Context, team string, page resolver.Page) ([]Environment, string, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := resolver.MayReadTeam(ctx, team, "environments"); err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	if _, err := r.s.Team(ctx, team); err != nil {
		return nil, "", err
	}
	prefix := resolver.EnvironmentsPrefix(team)
	kvs, err := r.s.KV().Scan(ctx, prefix, resolver.AfterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list environments: %w", err)
	}
	envs := make([]Environment, 0, len(kvs))
	for _, kv := range kvs {
		var rec environmentRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		envs = append(envs, rec.environment(kv.Value))
	}
	envs, next := resolver.PageOf(envs, size, func(e Environment) string { return e.ID })
	return envs, next, nil
}

// EnvironmentUpdate is the change of an UpdateEnvironment: the fields set,
// and the etag the environment must still have (empty: any).
type EnvironmentUpdate struct {
	Description *string // nil: unchanged
	SecretNames resolver.NamesUpdate
	Etag        string
}

// UpdateEnvironment changes environment id of team as u says, and returns
// it. Callers are people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id, description,
// secret_names, add_secret_names, remove_secret_names, etag),
// PermissionDenied, NotFound, FailedPrecondition (etag mismatch).
func (r *Service) UpdateEnvironment(ctx context.Context, team, id string, u EnvironmentUpdate) (Environment, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckID("environment_id", id); err != nil {
		return Environment{}, err
	}
	if u.Description != nil {
		if err := resolver.CheckDescription(*u.Description); err != nil {
			return Environment{}, err
		}
	}
	if err := u.SecretNames.Check(); err != nil {
		return Environment{}, err
	}
	if err := resolver.CheckEtag(u.Etag); err != nil {
		return Environment{}, err
	}
	if err := resolver.MayAdminTeam(ctx, team, "environments"); err != nil {
		return Environment{}, err
	}
	for range 5 {
		rec, raw, err := r.environmentRecord(ctx, team, id)
		if err != nil {
			return Environment{}, err
		}
		if u.Etag != "" && u.Etag != resolver.EtagOf(raw) {
			return Environment{}, resolver.EtagMismatch("environment")
		}
		next := rec
		if u.Description != nil {
			next.Description = *u.Description
		}
		if next.SecretNames, err = u.SecretNames.Apply(rec.SecretNames); err != nil {
			return Environment{}, err
		}
		// Nothing changes: nothing is written, and the etag stays.
		if next.Description == rec.Description && slices.Equal(next.SecretNames, rec.SecretNames) {
			return rec.environment(raw), nil
		}
		next.UpdateTime = r.s.Now()
		nextRaw := resolver.Encode(next)
		err = r.s.Apply(ctx, []kv.Cond{kv.Equal(resolver.EnvironmentKey(team, id), raw)}, []kv.Write{kv.Put(resolver.EnvironmentKey(team, id), nextRaw)},
			r.s.Event(ctx, resolver.ActionEnvironmentUpdate, resolver.EnvironmentName(team, id), team,
				resolver.UpdateDetails(false, rec.Description != next.Description, rec.SecretNames, next.SecretNames)))
		if resolver.Conflict(err) == 0 {
			if u.Etag != "" {
				return Environment{}, resolver.EtagMismatch("environment")
			}
			continue // changed meanwhile: apply u to what it is now
		}
		if err != nil {
			return Environment{}, fmt.Errorf("update environment: %w", err)
		}
		return next.environment(nextRaw), nil
	}
	return Environment{}, errs.E(errs.KindUnavailable, "environment %q is changing; try again", id)
}

// DeleteEnvironment deletes environment id of team; etag, when set, must
// be the environment's. Runs naming it afterwards are refused. Callers are
// people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id, etag), PermissionDenied,
// NotFound, FailedPrecondition (etag mismatch).
func (r *Service) DeleteEnvironment(ctx context.Context, team, id, etag string) error {
	if err := resolver.CheckID("team_id", team); err != nil {
		return err
	}
	if err := resolver.CheckID("environment_id", id); err != nil {
		return err
	}
	if err := resolver.CheckEtag(etag); err != nil {
		return err
	}
	if err := resolver.MayAdminTeam(ctx, team, "environments"); err != nil {
		return err
	}
	for range 5 {
		_, raw, err := r.environmentRecord(ctx, team, id)
		if err != nil {
			return err
		}
		if etag != "" && etag != resolver.EtagOf(raw) {
			return resolver.EtagMismatch("environment")
		}
		err = r.s.Apply(ctx, []kv.Cond{kv.Equal(resolver.EnvironmentKey(team, id), raw)}, []kv.Write{kv.Delete(resolver.EnvironmentKey(team, id))},
			r.s.Event(ctx, resolver.ActionEnvironmentDelete, resolver.EnvironmentName(team, id), team, nil))
		if resolver.Conflict(err) == 0 {
			if etag != "" {
				return resolver.EtagMismatch("environment")
			}
			continue // changed meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("delete environment: %w", err)
		}
		return nil
	}
	return errs.E(errs.KindUnavailable, "environment %q is changing; try again", id)
}

// environmentRecord reads environment id of team. NotFound names it.
func (r *Service) environmentRecord(ctx context.Context, team, id string) (environmentRecord, []byte, error) {
	var rec environmentRecord
	raw, err := r.s.Get(ctx, resolver.EnvironmentKey(team, id), &rec)
	if resolver.IsNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "environment %q not found in team %q", id, team)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get environment: %w", err)
	}
	return rec, raw, nil
}
