package directory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// Integration is a team-scoped principal that starts runs for a trigger
// (DESIGN §3): a Slack or Linear app (user-initiated triggers: it starts
// runs only on behalf of members who allowed it) or a scheduler or other
// system (user-less triggers). Team admins create and delete
// integrations; its tokens authenticate as its resource name.
type Integration struct {
	Team    string
	ID      string
	Trigger resolver.Trigger
	// Agents are the identities whose start policy is admins that it may
	// start user-less runs as (ids, sorted).
	Agents      []string
	Description string
	CreateTime  time.Time
	CreateBy    string // resource name of the team admin who created it
	// Allowed: the person asking has allowed it to start runs on their
	// behalf (set by the reads, for the caller).
	Allowed bool

	uid string // its incarnation, as read
}

// Name is "teams/{team}/integrations/{integration}", also the principal
// name of its tokens.
func (i Integration) Name() string { return resolver.IntegrationName(i.Team, i.ID) }

// An integration has a random incarnation id (UID), and an allowance
// holds the UID of the integration it was given to: an integration
// deleted and made again under its name starts with no allowances, and
// deleting one need not find and delete every allowance.

// integrationRecord is an integration, at resolver.IntegrationKey.
type integrationRecord struct {
	Team        string    `json:"team"`
	ID          string    `json:"id"`
	UID         string    `json:"uid"`
	Trigger     string    `json:"trigger"`
	Agents      []string  `json:"agents,omitempty"`
	Description string    `json:"description,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	CreateBy    string    `json:"create_by,omitempty"`
}

// allowRecord is a member's allowance, at resolver.AllowKey.
type allowRecord struct {
	IntegrationUID string    `json:"integration_uid"`
	CreateTime     time.Time `json:"create_time"`
}

func (r integrationRecord) integration() Integration {
	return Integration{
		Team: r.Team, ID: r.ID, Trigger: resolver.ParseTrigger(r.Trigger), Agents: slices.Clone(r.Agents),
		Description: r.Description, CreateTime: r.CreateTime, CreateBy: r.CreateBy, uid: r.UID,
	}
}

// MaxIntegrationAgents bounds the identities one integration names (each
// is a condition of the write that creates it).
const MaxIntegrationAgents = 50

const integrationTriggerRule = "must be slack or linear (user-initiated: runs on behalf of members who allowed it) or schedule or integration (user-less); cli, web and api runs are started by people themselves"

// integrationRecord reads integration id of team. NotFound names it.
func (d *Directory) integrationRecord(ctx context.Context, team, id string) (integrationRecord, []byte, error) {
	var rec integrationRecord
	raw, err := d.s.Get(ctx, resolver.IntegrationKey(team, id), &rec)
	if resolver.IsNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "integration %q not found in team %q", id, team)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get integration: %w", err)
	}
	return rec, raw, nil
}

// IntegrationOf returns integration id of team, for run resolution (which
// starts runs for integrations): it checks no caller. NotFound names it.
func (d *Directory) IntegrationOf(ctx context.Context, team, id string) (Integration, error) {
	rec, _, err := d.integrationRecord(ctx, team, id)
	return rec.integration(), err
}

// Allowed reports whether user allowed in, as IntegrationOf read it, to
// start runs on their behalf: an allowance given to an earlier
// integration of the same name does not count. It checks no caller.
func (d *Directory) Allowed(ctx context.Context, in Integration, user string) (bool, error) {
	var a allowRecord
	if _, err := d.s.Get(ctx, resolver.AllowKey(in.Team, in.ID, user), &a); err != nil {
		if resolver.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("read allowance: %w", err)
	}
	return a.IntegrationUID == in.uid, nil
}

// CreateIntegration creates integration in.ID of in.Team for in.Trigger,
// naming in.Agents (identities of the team that exist), and issues its
// first token, which it returns with it: the bearer token is shown only
// here. Tokens left over from an earlier integration of the same name are
// revoked in the same write. Team admins and system admins.
//
// Returns Invalid (fields team_id, integration_id, trigger, agents,
// description), PermissionDenied, NotFound (team, an identity),
// AlreadyExists.
func (d *Directory) CreateIntegration(ctx context.Context, in Integration) (Integration, string, error) {
	if err := resolver.CheckID("team_id", in.Team); err != nil {
		return Integration{}, "", err
	}
	if err := resolver.CheckID("integration_id", in.ID); err != nil {
		return Integration{}, "", err
	}
	if !in.Trigger.Valid() || in.Trigger == resolver.TriggerCLI || in.Trigger == resolver.TriggerWeb || in.Trigger == resolver.TriggerAPI {
		return Integration{}, "", errs.Field("trigger", integrationTriggerRule)
	}
	for i, a := range in.Agents {
		if !resolver.ValidID(a) {
			return Integration{}, "", errs.Field("agents", "entry %d: an agent identity id %s", i, resolver.IDRule)
		}
	}
	agents := slices.Compact(slices.Sorted(slices.Values(in.Agents)))
	if len(agents) > MaxIntegrationAgents {
		return Integration{}, "", errs.Field("agents", "must list at most %d identities (got %d)", MaxIntegrationAgents, len(agents))
	}
	if len(agents) > 0 && in.Trigger.UserInitiated() {
		return Integration{}, "", errs.Field("agents", "only an integration of a user-less trigger (schedule, integration) names identities: a %s run's identity is checked against the member it is started for", in.Trigger)
	}
	if err := resolver.CheckDescription(in.Description); err != nil {
		return Integration{}, "", err
	}
	if err := resolver.MayAdminTeam(ctx, in.Team, "integrations"); err != nil {
		return Integration{}, "", err
	}
	p, _ := resolver.Caller(ctx)
	now := d.s.Now()
	var uid [8]byte
	_, _ = rand.Read(uid[:]) // never fails (crypto/rand, Go ≥ 1.24)
	rec := integrationRecord{
		Team: in.Team, ID: in.ID, UID: hex.EncodeToString(uid[:]), Trigger: in.Trigger.String(),
		Agents: agents, Description: in.Description, CreateTime: now, CreateBy: p.Name,
	}
	name := resolver.IntegrationName(in.Team, in.ID)
	// Condition 0: the team exists; 1: the integration is new; 2…: each
	// identity named exists.
	conds := []kv.Cond{kv.Present(resolver.TeamKey(in.Team)), kv.Absent(resolver.IntegrationKey(in.Team, in.ID))}
	for _, a := range agents {
		c, _ := resolver.AgentExists(in.Team, a)
		conds = append(conds, c)
	}
	details := map[string]string{audit.DetailTrigger: rec.Trigger}
	if len(agents) > 0 {
		details[resolver.DetailAgents] = strings.Join(agents, ",")
	}
	revoke, n, err := d.RevokeTokens(ctx, conds, name, in.Team, "left over from an earlier integration of the same name", now)
	var bearer string
	if err == nil {
		resolver.RevokedDetail(details, n)
		tok := Token{Principal: resolver.IntegrationPrincipal(in.Team, in.ID), Description: "integration token (created with the integration)", CreateTime: now, CreateBy: p.Name}
		writes := append([]kv.Write{kv.Put(resolver.IntegrationKey(in.Team, in.ID), resolver.Encode(rec))}, revoke...)
		_, bearer, err = d.issue(ctx, tok, conds, writes, func(t Token) []*auditv1.Event {
			det := maps.Clone(details)
			det[resolver.DetailTokenID] = t.ID
			return []*auditv1.Event{d.s.Event(ctx, resolver.ActionIntegrationCreate, name, in.Team, det)}
		})
	}
	switch i := resolver.Conflict(err); {
	case i == 0:
		return Integration{}, "", errs.E(errs.KindNotFound, "team %q not found", in.Team)
	case i == 1:
		return Integration{}, "", errs.E(errs.KindAlreadyExists, "integration %q already exists in team %q", in.ID, in.Team)
	case i > 1:
		return Integration{}, "", errs.E(errs.KindNotFound, "agent identity %q not found in team %q", agents[i-2], in.Team)
	}
	if err != nil {
		return Integration{}, "", fmt.Errorf("create integration: %w", err)
	}
	return rec.integration(), bearer, nil
}

// GetIntegration returns integration id of team, with whether the caller
// allowed it. Members of the team and system admins.
//
// Returns Invalid (fields team_id, integration_id), PermissionDenied,
// NotFound.
func (d *Directory) GetIntegration(ctx context.Context, team, id string) (Integration, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Integration{}, err
	}
	if err := resolver.CheckID("integration_id", id); err != nil {
		return Integration{}, err
	}
	if err := resolver.MayReadTeam(ctx, team, "integrations"); err != nil {
		return Integration{}, err
	}
	rec, _, err := d.integrationRecord(ctx, team, id)
	if err != nil {
		return Integration{}, err
	}
	return d.withAllowed(ctx, rec)
}

// withAllowed is rec with Allowed set for the caller.
func (d *Directory) withAllowed(ctx context.Context, rec integrationRecord) (Integration, error) {
	in := rec.integration()
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Integration{}, err
	}
	if in.Allowed, err = d.Allowed(ctx, rec.integration(), p.ID); err != nil {
		return Integration{}, err
	}
	return in, nil
}

// ListIntegrations lists team's integrations in id order, each with
// whether the caller allowed it. Members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound (team).
func (d *Directory) ListIntegrations(ctx context.Context, team string, page resolver.Page) ([]Integration, string, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := resolver.MayReadTeam(ctx, team, "integrations"); err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	if _, err := d.team(ctx, team); err != nil {
		return nil, "", err
	}
	prefix := resolver.IntegrationsPrefix(team)
	recs, err := resolver.Scan[integrationRecord](ctx, d.s, prefix, resolver.AfterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list integrations: %w", err)
	}
	out := make([]Integration, 0, len(recs))
	for _, rec := range recs {
		in, err := d.withAllowed(ctx, rec)
		if err != nil {
			return nil, "", err
		}
		out = append(out, in)
	}
	out, next := resolver.PageOf(out, size, func(i Integration) string { return i.ID })
	return out, next, nil
}

// DeleteIntegration deletes integration id of team and revokes its tokens
// (in several writes, the last one deleting it, when it has more than fit
// in one). The allowances members gave it lapse with it. Team admins and
// system admins.
//
// Returns Invalid (fields team_id, integration_id), PermissionDenied,
// NotFound.
func (d *Directory) DeleteIntegration(ctx context.Context, team, id string) error {
	if err := resolver.CheckID("team_id", team); err != nil {
		return err
	}
	if err := resolver.CheckID("integration_id", id); err != nil {
		return err
	}
	if err := resolver.MayAdminTeam(ctx, team, "integrations"); err != nil {
		return err
	}
	name := resolver.IntegrationName(team, id)
	for range 5 {
		_, raw, err := d.integrationRecord(ctx, team, id)
		if err != nil {
			return err
		}
		conds := []kv.Cond{kv.Equal(resolver.IntegrationKey(team, id), raw)}
		details := map[string]string{}
		revoke, n, err := d.RevokeTokens(ctx, conds, name, team, "integration being deleted", d.s.Now())
		if err == nil {
			resolver.RevokedDetail(details, n)
			err = d.s.Apply(ctx, conds, append([]kv.Write{kv.Delete(resolver.IntegrationKey(team, id))}, revoke...),
				d.s.Event(ctx, resolver.ActionIntegrationDelete, name, team, details))
		}
		if resolver.Conflict(err) == 0 {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("delete integration: %w", err)
		}
		return nil
	}
	return errs.E(errs.KindUnavailable, "integration %q is changing; try again", id)
}

// AllowIntegration lets integration id of team start user-initiated runs
// on the caller's behalf, or, with allow false, takes that back; it
// returns the integration as the caller now sees it. Allowing twice (or
// disallowing what was not allowed) changes nothing. Members of the team,
// for themselves.
//
// Returns Invalid (fields team_id, integration_id), PermissionDenied,
// NotFound.
func (d *Directory) AllowIntegration(ctx context.Context, team, id string, allow bool) (Integration, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Integration{}, err
	}
	if err := resolver.CheckID("integration_id", id); err != nil {
		return Integration{}, err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return Integration{}, err
	}
	if !p.IsMember(team) {
		return Integration{}, resolver.Denied("only members of team %q may allow its integrations to start runs on their behalf", team)
	}
	rec, raw, err := d.integrationRecord(ctx, team, id)
	if err != nil {
		return Integration{}, err
	}
	in := rec.integration()
	was, err := d.Allowed(ctx, rec.integration(), p.ID)
	if err != nil {
		return Integration{}, err
	}
	in.Allowed = allow
	if was == allow {
		return in, nil
	}
	action, write := resolver.ActionIntegrationDisallow, kv.Delete(resolver.AllowKey(team, id, p.ID))
	if allow {
		action = resolver.ActionIntegrationAllow
		write = kv.Put(resolver.AllowKey(team, id, p.ID), resolver.Encode(allowRecord{IntegrationUID: rec.UID, CreateTime: d.s.Now()}))
	}
	// The integration must still be the one read (not deleted, nor made
	// again), and the caller still a member.
	conds := []kv.Cond{kv.Equal(resolver.IntegrationKey(team, id), raw), kv.Present(resolver.MemberKey(team, p.ID))}
	err = d.s.Apply(ctx, conds, []kv.Write{write},
		d.s.Event(ctx, action, resolver.IntegrationName(team, id), team, map[string]string{audit.DetailUser: p.Name}))
	switch resolver.Conflict(err) {
	case 0:
		return Integration{}, errs.E(errs.KindUnavailable, "integration %q is changing; try again", id)
	case 1:
		return Integration{}, resolver.Denied("only members of team %q may allow its integrations to start runs on their behalf", team)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("allow integration: %w", err)
	}
	return in, nil
}
