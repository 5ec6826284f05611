package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
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
func (e Environment) Name() string { return EnvironmentName(e.Team, e.ID) }

func (r environmentRecord) environment(raw []byte) Environment {
	return Environment{
		Team: r.Team, ID: r.ID, Description: r.Description, SecretNames: slices.Clone(r.SecretNames),
		CreateTime: r.CreateTime, UpdateTime: r.UpdateTime, Etag: etagOf(raw),
	}
}

// CreateEnvironment creates environment e.ID of e.Team with e's
// description and secret names (other fields are ignored). Callers are
// people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id, description,
// secret_names), PermissionDenied, NotFound (team), AlreadyExists.
func (d *Directory) CreateEnvironment(ctx context.Context, e Environment) (Environment, error) {
	if err := checkID("team_id", e.Team); err != nil {
		return Environment{}, err
	}
	if err := checkID("environment_id", e.ID); err != nil {
		return Environment{}, err
	}
	if err := checkDescription(e.Description); err != nil {
		return Environment{}, err
	}
	if err := checkSecretNames("secret_names", e.SecretNames); err != nil {
		return Environment{}, err
	}
	if err := mayAdminTeam(ctx, e.Team, "environments"); err != nil {
		return Environment{}, err
	}
	now := d.clock()
	rec := environmentRecord{
		Team: e.Team, ID: e.ID, Description: e.Description,
		SecretNames: uniqueNames(e.SecretNames), CreateTime: now, UpdateTime: now,
	}
	raw := encode(rec)
	details := map[string]string{}
	setNames(details, DetailSecretNames, rec.SecretNames)
	err := d.apply(ctx,
		[]kv.Cond{kv.Present(teamKey(e.Team)), kv.Absent(environmentKey(e.Team, e.ID))},
		[]kv.Write{kv.Put(environmentKey(e.Team, e.ID), raw)},
		d.event(ctx, ActionEnvironmentCreate, EnvironmentName(e.Team, e.ID), e.Team, details))
	switch conflict(err) {
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
func (d *Directory) GetEnvironment(ctx context.Context, team, id string) (Environment, error) {
	if err := checkID("team_id", team); err != nil {
		return Environment{}, err
	}
	if err := checkID("environment_id", id); err != nil {
		return Environment{}, err
	}
	if err := mayReadTeam(ctx, team, "environments"); err != nil {
		return Environment{}, err
	}
	rec, raw, err := d.environmentRecord(ctx, team, id)
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
func (d *Directory) ListEnvironments(ctx context.Context, team string, page Page) ([]Environment, string, error) {
	if err := checkID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := mayReadTeam(ctx, team, "environments"); err != nil {
		return nil, "", err
	}
	size, after, err := page.cursor()
	if err != nil {
		return nil, "", err
	}
	if _, err := d.team(ctx, team); err != nil {
		return nil, "", err
	}
	prefix := environmentsPrefix(team)
	kvs, err := d.store.Scan(ctx, prefix, afterKey(prefix, after), size+1)
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
	envs, next := pageOf(envs, size, func(e Environment) string { return e.ID })
	return envs, next, nil
}

// EnvironmentUpdate is the change of an UpdateEnvironment: the fields set,
// and the etag the environment must still have (empty: any).
type EnvironmentUpdate struct {
	Description *string // nil: unchanged
	SecretNames NamesUpdate
	Etag        string
}

// UpdateEnvironment changes environment id of team as u says, and returns
// it. Callers are people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, environment_id, description,
// secret_names, add_secret_names, remove_secret_names, etag),
// PermissionDenied, NotFound, FailedPrecondition (etag mismatch).
func (d *Directory) UpdateEnvironment(ctx context.Context, team, id string, u EnvironmentUpdate) (Environment, error) {
	if err := checkID("team_id", team); err != nil {
		return Environment{}, err
	}
	if err := checkID("environment_id", id); err != nil {
		return Environment{}, err
	}
	if u.Description != nil {
		if err := checkDescription(*u.Description); err != nil {
			return Environment{}, err
		}
	}
	if err := u.SecretNames.check(); err != nil {
		return Environment{}, err
	}
	if err := checkEtag(u.Etag); err != nil {
		return Environment{}, err
	}
	if err := mayAdminTeam(ctx, team, "environments"); err != nil {
		return Environment{}, err
	}
	for range 5 {
		rec, raw, err := d.environmentRecord(ctx, team, id)
		if err != nil {
			return Environment{}, err
		}
		if u.Etag != "" && u.Etag != etagOf(raw) {
			return Environment{}, etagMismatch("environment")
		}
		next := rec
		if u.Description != nil {
			next.Description = *u.Description
		}
		if next.SecretNames, err = u.SecretNames.apply(rec.SecretNames); err != nil {
			return Environment{}, err
		}
		// Nothing changes: nothing is written, and the etag stays.
		if next.Description == rec.Description && slices.Equal(next.SecretNames, rec.SecretNames) {
			return rec.environment(raw), nil
		}
		next.UpdateTime = d.clock()
		nextRaw := encode(next)
		err = d.apply(ctx, []kv.Cond{kv.Equal(environmentKey(team, id), raw)}, []kv.Write{kv.Put(environmentKey(team, id), nextRaw)},
			d.event(ctx, ActionEnvironmentUpdate, EnvironmentName(team, id), team,
				updateDetails(false, rec.Description != next.Description, rec.SecretNames, next.SecretNames)))
		if conflict(err) == 0 {
			if u.Etag != "" {
				return Environment{}, etagMismatch("environment")
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
func (d *Directory) DeleteEnvironment(ctx context.Context, team, id, etag string) error {
	if err := checkID("team_id", team); err != nil {
		return err
	}
	if err := checkID("environment_id", id); err != nil {
		return err
	}
	if err := checkEtag(etag); err != nil {
		return err
	}
	if err := mayAdminTeam(ctx, team, "environments"); err != nil {
		return err
	}
	for range 5 {
		_, raw, err := d.environmentRecord(ctx, team, id)
		if err != nil {
			return err
		}
		if etag != "" && etag != etagOf(raw) {
			return etagMismatch("environment")
		}
		err = d.apply(ctx, []kv.Cond{kv.Equal(environmentKey(team, id), raw)}, []kv.Write{kv.Delete(environmentKey(team, id))},
			d.event(ctx, ActionEnvironmentDelete, EnvironmentName(team, id), team, nil))
		if conflict(err) == 0 {
			if etag != "" {
				return etagMismatch("environment")
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
