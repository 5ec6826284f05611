package directory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Runner is an internal principal that resolves runs, and receives their
// values, for the teams it is granted (DESIGN §3). Its tokens
// authenticate as a member of each of those teams, but a runner is not a
// person: it is admitted by its Kind, to run resolution only.
type Runner struct {
	ID         string
	Teams      []string // team ids, sorted
	CreateTime time.Time
	CreateBy   string // resource name of the system admin who created it
}

// Name is the runner's resource name, "runners/{runner}"; its tokens
// authenticate as this name.
func (r Runner) Name() string { return resolver.RunnerName(r.ID) }

// MaxRunnerTeams bounds the teams one runner is granted (each is a
// condition of the write that creates it).
const MaxRunnerTeams = 50

func (r runnerRecord) runner() Runner {
	return Runner{ID: r.ID, Teams: slices.Clone(r.Teams), CreateTime: r.CreateTime, CreateBy: r.CreateBy}
}

// CreateRunner creates runner id, granted teams (team ids; at least one,
// each existing), and issues its first token, which it returns with the
// runner: the bearer token is shown only here. Tokens left over from an
// earlier runner of the same name are revoked in the same write. System
// admins only.
//
// Returns Invalid (fields runner_id, teams), PermissionDenied, NotFound (a
// team), AlreadyExists.
func (d *Directory) CreateRunner(ctx context.Context, id string, teams []string) (Runner, string, error) {
	if err := resolver.CheckID("runner_id", id); err != nil {
		return Runner{}, "", err
	}
	if len(teams) == 0 {
		return Runner{}, "", errs.Field("teams", "at least one team is required: the teams the runner may resolve runs for")
	}
	for i, t := range teams {
		if !resolver.ValidID(t) {
			return Runner{}, "", errs.Field("teams", "entry %d: a team id %s", i, resolver.IDRule)
		}
	}
	teams = slices.Compact(slices.Sorted(slices.Values(teams)))
	if len(teams) > MaxRunnerTeams {
		return Runner{}, "", errs.Field("teams", "must list at most %d teams (got %d)", MaxRunnerTeams, len(teams))
	}
	p, err := resolver.RequireSystemAdmin(ctx)
	if err != nil {
		return Runner{}, "", err
	}
	now := d.s.Now()
	rec := runnerRecord{ID: id, Teams: teams, CreateTime: now, CreateBy: p.Name}
	// Condition 0: the runner is new; 1…: each team exists.
	conds := []kv.Cond{kv.Absent(resolver.RunnerKey(id))}
	for _, t := range teams {
		conds = append(conds, kv.Present(resolver.TeamKey(t)))
	}
	details := map[string]string{resolver.DetailTeams: strings.Join(teams, ",")}
	revoke, n, err := d.RevokeTokens(ctx, conds, resolver.RunnerName(id), "", "left over from an earlier runner of the same name", now)
	var bearer string
	if err == nil {
		resolver.RevokedDetail(details, n)
		tok := Token{Principal: resolver.RunnerPrincipal(id), Description: "runner token (created with the runner)", CreateTime: now, CreateBy: p.Name}
		writes := append([]kv.Write{kv.Put(resolver.RunnerKey(id), resolver.Encode(rec))}, revoke...)
		_, bearer, err = d.issue(ctx, tok, conds, writes, func(t Token) []*auditv1.Event {
			details := maps.Clone(details)
			details[resolver.DetailTokenID] = t.ID
			return []*auditv1.Event{d.s.Event(ctx, resolver.ActionRunnerCreate, resolver.RunnerName(id), "", details)}
		})
	}
	switch i := resolver.Conflict(err); {
	case i == 0:
		return Runner{}, "", errs.E(errs.KindAlreadyExists, "runner %q already exists", id)
	case i > 0:
		return Runner{}, "", errs.E(errs.KindNotFound, "team %q not found", teams[i-1])
	}
	if err != nil {
		return Runner{}, "", fmt.Errorf("create runner: %w", err)
	}
	return rec.runner(), bearer, nil
}

// GetRunner returns runner id. System admins only.
//
// Returns Invalid (field runner_id), PermissionDenied, NotFound.
func (d *Directory) GetRunner(ctx context.Context, id string) (Runner, error) {
	if err := resolver.CheckID("runner_id", id); err != nil {
		return Runner{}, err
	}
	if _, err := resolver.RequireSystemAdmin(ctx); err != nil {
		return Runner{}, err
	}
	rec, _, err := d.runnerRecord(ctx, id)
	if err != nil {
		return Runner{}, err
	}
	return rec.runner(), nil
}

// ListRunners lists the runners in id order. System admins only.
//
// Returns Invalid (fields page_size, page_token), PermissionDenied.
func (d *Directory) ListRunners(ctx context.Context, page resolver.Page) ([]Runner, string, error) {
	if _, err := resolver.RequireSystemAdmin(ctx); err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	recs, err := resolver.Scan[runnerRecord](ctx, d.s, resolver.PrefixRunners, resolver.AfterKey(resolver.PrefixRunners, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list runners: %w", err)
	}
	runners := make([]Runner, 0, len(recs))
	for _, r := range recs {
		runners = append(runners, r.runner())
	}
	runners, next := resolver.PageOf(runners, size, func(r Runner) string { return r.ID })
	return runners, next, nil
}

// DeleteRunner deletes runner id and revokes its tokens in the same write
// (in several writes, the last one deleting it, when it has more than fit
// in one). System admins only.
//
// Returns Invalid (field runner_id), PermissionDenied, NotFound.
func (d *Directory) DeleteRunner(ctx context.Context, id string) error {
	if err := resolver.CheckID("runner_id", id); err != nil {
		return err
	}
	if _, err := resolver.RequireSystemAdmin(ctx); err != nil {
		return err
	}
	for range 5 {
		_, raw, err := d.runnerRecord(ctx, id)
		if err != nil {
			return err
		}
		conds := []kv.Cond{kv.Equal(resolver.RunnerKey(id), raw)}
		details := map[string]string{}
		revoke, n, err := d.RevokeTokens(ctx, conds, resolver.RunnerName(id), "", "runner being deleted", d.s.Now())
		if err == nil {
			resolver.RevokedDetail(details, n)
			err = d.s.Apply(ctx, conds, append([]kv.Write{kv.Delete(resolver.RunnerKey(id))}, revoke...),
				d.s.Event(ctx, resolver.ActionRunnerDelete, resolver.RunnerName(id), "", details))
		}
		if resolver.Conflict(err) == 0 {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("delete runner: %w", err)
		}
		return nil
	}
	return errs.E(errs.KindUnavailable, "runner %q is changing; try again", id)
}
