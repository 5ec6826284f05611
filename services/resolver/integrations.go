package resolver

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
)

// Integration is a team-scoped principal that starts runs for a trigger
// (DESIGN §3): a Slack or Linear app (user-initiated triggers: it starts
// runs only on behalf of members who allowed it) or a scheduler or other
// system (user-less triggers). Team admins create and delete
// integrations; its tokens authenticate as its resource name.
type Integration struct {
	Team    string
	ID      string
	Trigger Trigger
	// Agents are the identities whose start policy is admins that it may
	// start user-less runs as (ids, sorted).
	Agents      []string
	Description string
	CreateTime  time.Time
	CreateBy    string // resource name of the team admin who created it
	// Allowed: the person asking has allowed it to start runs on their
	// behalf (set by the reads, for the caller).
	Allowed bool
}

// Name is "teams/{team}/integrations/{integration}", also the principal
// name of its tokens.
func (i Integration) Name() string { return IntegrationName(i.Team, i.ID) }

// IntegrationName is "teams/{team}/integrations/{integration}".
func IntegrationName(team, id string) string { return "teams/" + team + "/integrations/" + id }

// Keys (beside runrecords.go):
//
//	integrations/{team}/{integration}               integrationRecord
//	integrationallows/{team}/{integration}/{user}   allowRecord
//
// An integration has a random incarnation id (UID), and an allowance
// holds the UID of the integration it was given to: an integration
// deleted and made again under its name starts with no allowances, and
// deleting one need not find and delete every allowance.
const (
	prefixIntegrations      = "integrations/"
	prefixIntegrationAllows = "integrationallows/"
)

func integrationKey(team, id string) string { return prefixIntegrations + team + "/" + id }
func integrationsPrefix(team string) string { return prefixIntegrations + team + "/" }
func allowKey(team, integration, user string) string {
	return prefixIntegrationAllows + team + "/" + integration + "/" + user
}

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

type allowRecord struct {
	IntegrationUID string    `json:"integration_uid"`
	CreateTime     time.Time `json:"create_time"`
}

func (r integrationRecord) integration() Integration {
	return Integration{
		Team: r.Team, ID: r.ID, Trigger: parseTriggerName(r.Trigger), Agents: slices.Clone(r.Agents),
		Description: r.Description, CreateTime: r.CreateTime, CreateBy: r.CreateBy,
	}
}

// Audit actions of integrations.
const (
	ActionIntegrationCreate   = "integration.create"
	ActionIntegrationDelete   = "integration.delete"
	ActionIntegrationAllow    = "integration.allow"
	ActionIntegrationDisallow = "integration.disallow"
)

// MaxIntegrationAgents bounds the identities one integration names (each
// is a condition of the write that creates it).
const MaxIntegrationAgents = 50

const integrationTriggerRule = "must be slack or linear (user-initiated: runs on behalf of members who allowed it) or schedule or integration (user-less); cli, web and api runs are started by people themselves"

// integrationRecord reads integration id of team. NotFound names it.
func (d *Directory) integrationRecord(ctx context.Context, team, id string) (integrationRecord, []byte, error) {
	var rec integrationRecord
	raw, err := d.get(ctx, integrationKey(team, id), &rec)
	if isNotFound(err) {
		return rec, nil, errs.E(errs.KindNotFound, "integration %q not found in team %q", id, team)
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get integration: %w", err)
	}
	return rec, raw, nil
}

// allowed reports whether user allowed the integration rec.
func (d *Directory) allowed(ctx context.Context, rec integrationRecord, user string) (bool, error) {
	var a allowRecord
	if _, err := d.get(ctx, allowKey(rec.Team, rec.ID, user), &a); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("read allowance: %w", err)
	}
	return a.IntegrationUID == rec.UID, nil
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
	if err := checkID("team_id", in.Team); err != nil {
		return Integration{}, "", err
	}
	if err := checkID("integration_id", in.ID); err != nil {
		return Integration{}, "", err
	}
	if !in.Trigger.Valid() || in.Trigger == TriggerCLI || in.Trigger == TriggerWeb || in.Trigger == TriggerAPI {
		return Integration{}, "", errs.Field("trigger", integrationTriggerRule)
	}
	for i, a := range in.Agents {
		if !ValidID(a) {
			return Integration{}, "", errs.Field("agents", "entry %d: an agent identity id %s", i, IDRule)
		}
	}
	agents := slices.Compact(slices.Sorted(slices.Values(in.Agents)))
	if len(agents) > MaxIntegrationAgents {
		return Integration{}, "", errs.Field("agents", "must list at most %d identities (got %d)", MaxIntegrationAgents, len(agents))
	}
	if len(agents) > 0 && in.Trigger.UserInitiated() {
		return Integration{}, "", errs.Field("agents", "only an integration of a user-less trigger (schedule, integration) names identities: a %s run's identity is checked against the member it is started for", in.Trigger)
	}
	if err := checkDescription(in.Description); err != nil {
		return Integration{}, "", err
	}
	if err := mayAdminTeam(ctx, in.Team, "integrations"); err != nil {
		return Integration{}, "", err
	}
	p, _ := caller(ctx)
	now := d.clock()
	var uid [8]byte
	_, _ = rand.Read(uid[:]) // never fails (crypto/rand, Go ≥ 1.24)
	rec := integrationRecord{
		Team: in.Team, ID: in.ID, UID: hex.EncodeToString(uid[:]), Trigger: in.Trigger.String(),
		Agents: agents, Description: in.Description, CreateTime: now, CreateBy: p.Name,
	}
	name := IntegrationName(in.Team, in.ID)
	leftovers, err := d.liveTokens(ctx, name, now)
	if err != nil {
		return Integration{}, "", err
	}
	// Condition 0: the team exists; 1: the integration is new; 2…: each
	// identity named exists.
	conds := []kv.Cond{kv.Present(teamKey(in.Team)), kv.Absent(integrationKey(in.Team, in.ID))}
	for _, a := range agents {
		c, _ := agentExists(in.Team, a)
		conds = append(conds, c)
	}
	details := map[string]string{audit.DetailTrigger: rec.Trigger}
	if len(agents) > 0 {
		details[DetailAgents] = strings.Join(agents, ",")
	}
	leftovers, err = d.revokeSurplus(ctx, conds, leftovers, now, name, in.Team, "left over from an earlier integration of the same name")
	var bearer string
	if err == nil {
		revokedDetail(details, len(leftovers))
		tok := Token{Principal: IntegrationPrincipal(in.Team, in.ID), Description: "integration token (created with the integration)", CreateTime: now, CreateBy: p.Name}
		writes := append([]kv.Write{kv.Put(integrationKey(in.Team, in.ID), encode(rec))}, revocations(leftovers, now)...)
		_, bearer, err = d.issue(ctx, tok, conds, writes, func(t Token) []*auditv1.Event {
			det := maps.Clone(details)
			det[DetailTokenID] = t.ID
			return []*auditv1.Event{d.event(ctx, ActionIntegrationCreate, name, in.Team, det)}
		})
	}
	switch i := conflict(err); {
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
	if err := checkID("team_id", team); err != nil {
		return Integration{}, err
	}
	if err := checkID("integration_id", id); err != nil {
		return Integration{}, err
	}
	if err := mayReadTeam(ctx, team, "integrations"); err != nil {
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
	p, err := caller(ctx)
	if err != nil {
		return Integration{}, err
	}
	if in.Allowed, err = d.allowed(ctx, rec, p.ID); err != nil {
		return Integration{}, err
	}
	return in, nil
}

// ListIntegrations lists team's integrations in id order, each with
// whether the caller allowed it. Members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound (team).
func (d *Directory) ListIntegrations(ctx context.Context, team string, page Page) ([]Integration, string, error) {
	if err := checkID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := mayReadTeam(ctx, team, "integrations"); err != nil {
		return nil, "", err
	}
	size, after, err := page.cursor()
	if err != nil {
		return nil, "", err
	}
	if _, err := d.team(ctx, team); err != nil {
		return nil, "", err
	}
	prefix := integrationsPrefix(team)
	recs, err := scan[integrationRecord](ctx, d.store, prefix, afterKey(prefix, after), size+1)
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
	out, next := pageOf(out, size, func(i Integration) string { return i.ID })
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
	if err := checkID("team_id", team); err != nil {
		return err
	}
	if err := checkID("integration_id", id); err != nil {
		return err
	}
	if err := mayAdminTeam(ctx, team, "integrations"); err != nil {
		return err
	}
	name := IntegrationName(team, id)
	for range 5 {
		_, raw, err := d.integrationRecord(ctx, team, id)
		if err != nil {
			return err
		}
		now := d.clock()
		toks, err := d.liveTokens(ctx, name, now)
		if err != nil {
			return err
		}
		conds := []kv.Cond{kv.Equal(integrationKey(team, id), raw)}
		details := map[string]string{}
		toks, err = d.revokeSurplus(ctx, conds, toks, now, name, team, "integration being deleted")
		if err == nil {
			revokedDetail(details, len(toks))
			err = d.apply(ctx, conds, append([]kv.Write{kv.Delete(integrationKey(team, id))}, revocations(toks, now)...),
				d.event(ctx, ActionIntegrationDelete, name, team, details))
		}
		if conflict(err) == 0 {
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
	if err := checkID("team_id", team); err != nil {
		return Integration{}, err
	}
	if err := checkID("integration_id", id); err != nil {
		return Integration{}, err
	}
	p, err := person(ctx)
	if err != nil {
		return Integration{}, err
	}
	if !p.IsMember(team) {
		return Integration{}, denied("only members of team %q may allow its integrations to start runs on their behalf", team)
	}
	rec, raw, err := d.integrationRecord(ctx, team, id)
	if err != nil {
		return Integration{}, err
	}
	in := rec.integration()
	was, err := d.allowed(ctx, rec, p.ID)
	if err != nil {
		return Integration{}, err
	}
	in.Allowed = allow
	if was == allow {
		return in, nil
	}
	action, write := ActionIntegrationDisallow, kv.Delete(allowKey(team, id, p.ID))
	if allow {
		action = ActionIntegrationAllow
		write = kv.Put(allowKey(team, id, p.ID), encode(allowRecord{IntegrationUID: rec.UID, CreateTime: d.clock()}))
	}
	// The integration must still be the one read (not deleted, nor made
	// again), and the caller still a member.
	conds := []kv.Cond{kv.Equal(integrationKey(team, id), raw), kv.Present(memberKey(team, p.ID))}
	err = d.apply(ctx, conds, []kv.Write{write},
		d.event(ctx, action, IntegrationName(team, id), team, map[string]string{audit.DetailUser: p.Name}))
	switch conflict(err) {
	case 0:
		return Integration{}, errs.E(errs.KindUnavailable, "integration %q is changing; try again", id)
	case 1:
		return Integration{}, denied("only members of team %q may allow its integrations to start runs on their behalf", team)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("allow integration: %w", err)
	}
	return in, nil
}
