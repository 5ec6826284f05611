package directory

import (
	"context"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Team is a group of users that owns secrets, agent identities and
// environments.
type Team struct {
	ID         string
	CreateTime time.Time
}

// Name is the team's resource name, "teams/{team}".
func (t Team) Name() string { return resolver.TeamName(t.ID) }

// CreateTeam creates team id, with its default agent identity
// (DefaultAgentID). System admins only.
//
// Returns Invalid (field team_id) for a bad id, PermissionDenied for other
// callers, AlreadyExists when the team exists.
func (d *Directory) CreateTeam(ctx context.Context, id string) (Team, error) {
	if err := resolver.CheckID("team_id", id); err != nil {
		return Team{}, err
	}
	if _, err := resolver.RequireSystemAdmin(ctx); err != nil {
		return Team{}, err
	}
	t := Team{ID: id, CreateTime: d.s.Now()}
	rec := resolver.TeamRecord{ID: t.ID, CreateTime: t.CreateTime}
	// The team's default identity is born with it, in the same write: runs
	// with no user and no chosen identity execute as it (DESIGN §3).
	err := d.s.Apply(ctx, []kv.Cond{kv.Absent(resolver.TeamKey(id))}, []kv.Write{
		kv.Put(resolver.TeamKey(id), resolver.Encode(rec)),
		kv.Put(resolver.AgentKey(id, resolver.DefaultAgentID), resolver.Encode(resolver.DefaultAgentRecord(id, t.CreateTime))),
	}, d.s.Event(ctx, resolver.ActionTeamCreate, t.Name(), id, nil))
	if resolver.Conflict(err) == 0 {
		return Team{}, errs.E(errs.KindAlreadyExists, "team %q already exists", id)
	}
	if err != nil {
		return Team{}, fmt.Errorf("create team: %w", err)
	}
	return t, nil
}

// GetTeam returns team id. Callers are people: members of the team and
// system admins (runners and agent identities are listed as members of
// their teams, but read nothing of the directory).
//
// Returns Invalid (field team_id), PermissionDenied, NotFound.
func (d *Directory) GetTeam(ctx context.Context, id string) (Team, error) {
	if err := resolver.CheckID("team_id", id); err != nil {
		return Team{}, err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return Team{}, err
	}
	if !p.SystemAdmin && !p.IsMember(id) {
		return Team{}, resolver.Denied("only members of team %q may see it", id)
	}
	return d.team(ctx, id)
}

func (d *Directory) team(ctx context.Context, id string) (Team, error) {
	rec, err := d.s.Team(ctx, id)
	return teamOf(rec), err
}

// ListTeams lists the caller's teams, or every team for a system admin, in
// id order. Callers are people (a runner or an agent identity learns its
// teams from GetCaller).
//
// Returns Invalid (fields page_size, page_token).
func (d *Directory) ListTeams(ctx context.Context, page resolver.Page) ([]Team, string, error) {
	p, err := resolver.Person(ctx)
	if err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	var teams []Team
	if p.SystemAdmin {
		recs, err := resolver.Scan[resolver.TeamRecord](ctx, d.s, resolver.PrefixTeams, resolver.AfterKey(resolver.PrefixTeams, after), size+1)
		if err != nil {
			return nil, "", fmt.Errorf("list teams: %w", err)
		}
		for _, r := range recs {
			teams = append(teams, teamOf(r))
		}
	} else {
		for _, id := range p.TeamIDs() {
			if id <= after {
				continue
			}
			if len(teams) > size {
				break
			}
			t, err := d.team(ctx, id)
			if resolver.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, "", err
			}
			teams = append(teams, t)
		}
	}
	teams, next := resolver.PageOf(teams, size, func(t Team) string { return t.ID })
	return teams, next, nil
}
