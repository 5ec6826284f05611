package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Agent is an agent identity: a team-scoped bot account that runs execute
// as (DESIGN §3). A team secret that one or more identities reference by
// name is restricted to runs executing as one of them (DESIGN §5 step 2).
// Every team has a default identity (DefaultAgentID), made with the team,
// which cannot be deleted.
type Agent struct {
	Team        string // team id
	ID          string
	DisplayName string
	Description string
	SecretNames []string // team secrets referenced, by name; they need not exist
	// StartPolicy says who may start runs executing as the identity
	// (StartRun); zero in a request means StartPolicyAdmins.
	StartPolicy StartPolicy
	Default     bool
	CreateTime  time.Time
	UpdateTime  time.Time
	Etag        string
}

// Name is the identity's resource name, "teams/{team}/agents/{agent}";
// its tokens authenticate as this name.
func (a Agent) Name() string { return AgentName(a.Team, a.ID) }

// StartPolicy says who may start runs executing as an agent identity
// (DESIGN §3, §5.0). Whatever it says, the identity's own tokens start
// runs as it, and an integration created naming it may start user-less
// runs as it. The values are those of the wire enum oz.scope.v1.StartPolicy.
type StartPolicy int

const (
	// StartPolicyAdmins: the team's admins only (for themselves, or
	// through an integration they allowed). The default for a new
	// identity: an identity exists to be given restricted secrets.
	StartPolicyAdmins StartPolicy = iota + 1
	// StartPolicyMembers: any member of the team (for themselves, or
	// through an integration they allowed), and every integration of the
	// team. The default identity's policy, which cannot change: runs that
	// choose no identity execute as it.
	StartPolicyMembers
)

// String is the policy's name in records, events and messages.
func (s StartPolicy) String() string {
	switch s {
	case StartPolicyAdmins:
		return "admins"
	case StartPolicyMembers:
		return "members"
	}
	return "unknown"
}

func parseStartPolicy(s string) StartPolicy {
	if s == StartPolicyMembers.String() {
		return StartPolicyMembers
	}
	return StartPolicyAdmins
}

// policy is the identity's start policy: members for the default
// identity, else as recorded (admins when not recorded).
func (r agentRecord) policy() StartPolicy {
	if r.Default || r.ID == DefaultAgentID {
		return StartPolicyMembers
	}
	return parseStartPolicy(r.StartPolicy)
}

func checkStartPolicy(s StartPolicy) error {
	if s != 0 && s != StartPolicyAdmins && s != StartPolicyMembers {
		return errs.Field("start_policy", "must be admins or members")
	}
	return nil
}

// MaxDisplayNameLength is the longest display name, in characters.
const MaxDisplayNameLength = 256

func (r agentRecord) agent(raw []byte) Agent {
	return Agent{
		Team: r.Team, ID: r.ID, DisplayName: r.DisplayName, Description: r.Description,
		SecretNames: slices.Clone(r.SecretNames), StartPolicy: r.policy(), Default: r.Default,
		CreateTime: r.CreateTime, UpdateTime: r.UpdateTime, Etag: etagOf(raw),
	}
}

func checkDisplayName(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxDisplayNameLength {
		return errs.Field("display_name", "must be valid UTF-8 of at most %d characters", MaxDisplayNameLength)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return errs.Field("display_name", "must not contain control characters (one line of text)")
	}
	return nil
}

// mayReadTeam checks that the caller is a person who may read team's
// identities and environments: a member of the team or a system admin.
// Runners and agent identities are listed as members of their teams but
// are not people (see Authenticate).
func mayReadTeam(ctx context.Context, team, what string) error {
	p, err := person(ctx)
	if err != nil {
		return err
	}
	if !p.SystemAdmin && !p.IsMember(team) {
		return denied("only members of team %q may see its %s", team, what)
	}
	return nil
}

// mayAdminTeam checks that the caller is a person who may change team's
// identities and environments: an admin of the team or a system admin.
func mayAdminTeam(ctx context.Context, team, what string) error {
	p, err := person(ctx)
	if err != nil {
		return err
	}
	if !p.SystemAdmin && !p.IsAdmin(team) {
		return denied("only admins of team %q may manage its %s", team, what)
	}
	return nil
}

// agent reads identity id of team, with its stored bytes. A team created
// before identities existed has no record of its default identity: it is
// then the defaultAgentRecord as of the team's creation, with raw nil.
// NotFound names the identity (or the team, for the default).
func (d *Directory) agent(ctx context.Context, team, id string) (agentRecord, []byte, error) {
	rec, raw, err := d.agentRecord(ctx, team, id)
	if err == nil || id != DefaultAgentID || !isNotFound(err) {
		return rec, raw, err
	}
	t, err := d.team(ctx, team)
	if err != nil {
		return agentRecord{}, nil, err
	}
	return defaultAgentRecord(team, t.CreateTime), nil, nil
}

// agentExists returns the condition "identity id of team exists" and the
// error saying it does not. The default identity exists as long as its
// team does, whether or not its record was ever written.
func agentExists(team, id string) (kv.Cond, error) {
	if id == DefaultAgentID {
		return kv.Present(teamKey(team)), errs.E(errs.KindNotFound, "team %q not found", team)
	}
	return kv.Present(agentKey(team, id)), errs.E(errs.KindNotFound, "agent identity %q not found in team %q", id, team)
}

// agentCond is the condition that the identity's record is still raw
// (absent, for the synthesised default identity of an old team).
func agentCond(team, id string, raw []byte) kv.Cond {
	if raw == nil {
		return kv.Absent(agentKey(team, id))
	}
	return kv.Equal(agentKey(team, id), raw)
}

// encodedAgent returns the stored form of rec: raw when given, else its
// encoding (the synthesised default identity), for its etag.
func encodedAgent(rec agentRecord, raw []byte) []byte {
	if raw == nil {
		return encode(rec)
	}
	return raw
}

// CreateAgent creates identity a.ID of a.Team with a's display name,
// description and secret names (other fields are ignored). Callers are
// people: admins of the team and system admins. Tokens left over from an
// earlier identity of the same name are revoked in the same write.
//
// Returns Invalid (fields agent_id, display_name, description,
// secret_names), PermissionDenied, NotFound (team), AlreadyExists (also
// for "default", which every team has).
func (d *Directory) CreateAgent(ctx context.Context, a Agent) (Agent, error) {
	if err := checkID("team_id", a.Team); err != nil {
		return Agent{}, err
	}
	if err := checkID("agent_id", a.ID); err != nil {
		return Agent{}, err
	}
	if err := checkDisplayName(a.DisplayName); err != nil {
		return Agent{}, err
	}
	if err := checkDescription(a.Description); err != nil {
		return Agent{}, err
	}
	if err := checkSecretNames("secret_names", a.SecretNames); err != nil {
		return Agent{}, err
	}
	if err := checkStartPolicy(a.StartPolicy); err != nil {
		return Agent{}, err
	}
	if err := mayAdminTeam(ctx, a.Team, "agent identities"); err != nil {
		return Agent{}, err
	}
	if a.ID == DefaultAgentID {
		if _, err := d.team(ctx, a.Team); err != nil {
			return Agent{}, err
		}
		return Agent{}, errs.E(errs.KindAlreadyExists, "agent identity %q already exists in team %q: it is the team's default identity", a.ID, a.Team)
	}
	now := d.clock()
	policy := a.StartPolicy
	if policy == 0 {
		policy = StartPolicyAdmins
	}
	rec := agentRecord{
		Team: a.Team, ID: a.ID, DisplayName: a.DisplayName, Description: a.Description,
		SecretNames: uniqueNames(a.SecretNames), StartPolicy: policy.String(), CreateTime: now, UpdateTime: now,
	}
	raw := encode(rec)
	leftovers, err := d.liveTokens(ctx, AgentName(a.Team, a.ID), now)
	if err != nil {
		return Agent{}, err
	}
	conds := []kv.Cond{kv.Present(teamKey(a.Team)), kv.Absent(agentKey(a.Team, a.ID))}
	name := AgentName(a.Team, a.ID)
	details := map[string]string{DetailStartPolicy: policy.String()}
	setNames(details, DetailSecretNames, rec.SecretNames)
	leftovers, err = d.revokeSurplus(ctx, conds, leftovers, now, name, a.Team, "left over from an earlier agent identity of the same name")
	if err == nil {
		revokedDetail(details, len(leftovers))
		err = d.apply(ctx, conds, append([]kv.Write{kv.Put(agentKey(a.Team, a.ID), raw)}, revocations(leftovers, now)...),
			d.event(ctx, ActionAgentCreate, name, a.Team, details))
	}
	switch conflict(err) {
	case 0:
		return Agent{}, errs.E(errs.KindNotFound, "team %q not found", a.Team)
	case 1:
		return Agent{}, errs.E(errs.KindAlreadyExists, "agent identity %q already exists in team %q", a.ID, a.Team)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("create agent identity: %w", err)
	}
	return rec.agent(raw), nil
}

// GetAgent returns identity id of team. Callers are people: members of the
// team and system admins.
//
// Returns Invalid (fields team_id, agent_id), PermissionDenied, NotFound.
func (d *Directory) GetAgent(ctx context.Context, team, id string) (Agent, error) {
	if err := checkID("team_id", team); err != nil {
		return Agent{}, err
	}
	if err := checkID("agent_id", id); err != nil {
		return Agent{}, err
	}
	if err := mayReadTeam(ctx, team, "agent identities"); err != nil {
		return Agent{}, err
	}
	rec, raw, err := d.agent(ctx, team, id)
	if err != nil {
		return Agent{}, err
	}
	return rec.agent(encodedAgent(rec, raw)), nil
}

// ListAgents lists team's identities in id order. Callers are people:
// members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound (team).
func (d *Directory) ListAgents(ctx context.Context, team string, page Page) ([]Agent, string, error) {
	if err := checkID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := mayReadTeam(ctx, team, "agent identities"); err != nil {
		return nil, "", err
	}
	size, after, err := page.cursor()
	if err != nil {
		return nil, "", err
	}
	t, err := d.team(ctx, team)
	if err != nil {
		return nil, "", err
	}
	prefix := agentsPrefix(team)
	kvs, err := d.store.Scan(ctx, prefix, afterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list agent identities: %w", err)
	}
	agents := make([]Agent, 0, len(kvs)+1)
	for _, kv := range kvs {
		var rec agentRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		agents = append(agents, rec.agent(kv.Value))
	}
	// A team made before identities existed lists its default identity
	// all the same, in its place.
	if after < DefaultAgentID {
		if _, err := d.store.Get(ctx, agentKey(team, DefaultAgentID)); isNotFound(err) {
			def := defaultAgentRecord(team, t.CreateTime)
			i, _ := slices.BinarySearchFunc(agents, DefaultAgentID, func(a Agent, id string) int { return strings.Compare(a.ID, id) })
			agents = slices.Insert(agents, i, def.agent(encode(def)))
		} else if err != nil {
			return nil, "", fmt.Errorf("list agent identities: %w", err)
		}
	}
	agents, next := pageOf(agents, size, func(a Agent) string { return a.ID })
	return agents, next, nil
}

// AgentUpdate is the change of an UpdateAgent: the fields set, and the
// etag the identity must still have (empty: any).
type AgentUpdate struct {
	DisplayName *string      // nil: unchanged
	Description *string      // nil: unchanged
	StartPolicy *StartPolicy // nil: unchanged; zero: the default (admins)
	SecretNames NamesUpdate
	Etag        string
}

// UpdateAgent changes identity id of team as u says, and returns it. The
// default identity may be changed like any other. Callers are people:
// admins of the team and system admins.
//
// Returns Invalid (fields team_id, agent_id, display_name, description,
// secret_names, add_secret_names, remove_secret_names, etag),
// PermissionDenied, NotFound, FailedPrecondition (etag mismatch).
func (d *Directory) UpdateAgent(ctx context.Context, team, id string, u AgentUpdate) (Agent, error) {
	if err := checkID("team_id", team); err != nil {
		return Agent{}, err
	}
	if err := checkID("agent_id", id); err != nil {
		return Agent{}, err
	}
	if u.DisplayName != nil {
		if err := checkDisplayName(*u.DisplayName); err != nil {
			return Agent{}, err
		}
	}
	if u.Description != nil {
		if err := checkDescription(*u.Description); err != nil {
			return Agent{}, err
		}
	}
	if err := u.SecretNames.check(); err != nil {
		return Agent{}, err
	}
	if u.StartPolicy != nil {
		// Zero is the identity's default: admins, members for the default
		// identity (an update mask naming the field, with no value).
		if err := checkStartPolicy(*u.StartPolicy); err != nil {
			return Agent{}, err
		}
		if id == DefaultAgentID && *u.StartPolicy == StartPolicyAdmins {
			return Agent{}, errs.Field("start_policy", "the default identity admits every member of the team and cannot change: runs that choose no identity execute as it")
		}
	}
	if err := checkEtag(u.Etag); err != nil {
		return Agent{}, err
	}
	if err := mayAdminTeam(ctx, team, "agent identities"); err != nil {
		return Agent{}, err
	}
	for range 5 {
		rec, raw, err := d.agent(ctx, team, id)
		if err != nil {
			return Agent{}, err
		}
		if u.Etag != "" && u.Etag != etagOf(encodedAgent(rec, raw)) {
			return Agent{}, etagMismatch("agent identity")
		}
		next := rec
		if u.DisplayName != nil {
			next.DisplayName = *u.DisplayName
		}
		if u.Description != nil {
			next.Description = *u.Description
		}
		if u.StartPolicy != nil && !rec.Default && id != DefaultAgentID {
			next.StartPolicy = max(*u.StartPolicy, StartPolicyAdmins).String()
		}
		if next.SecretNames, err = u.SecretNames.apply(rec.SecretNames); err != nil {
			return Agent{}, err
		}
		// Nothing changes: nothing is written, and the etag stays.
		if next.DisplayName == rec.DisplayName && next.Description == rec.Description &&
			slices.Equal(next.SecretNames, rec.SecretNames) && next.policy() == rec.policy() {
			return rec.agent(encodedAgent(rec, raw)), nil
		}
		next.UpdateTime = d.clock()
		nextRaw := encode(next)
		conds := []kv.Cond{agentCond(team, id, raw)}
		if raw == nil {
			conds = append(conds, kv.Present(teamKey(team)))
		}
		details := updateDetails(rec.DisplayName != next.DisplayName, rec.Description != next.Description, rec.SecretNames, next.SecretNames)
		if next.policy() != rec.policy() {
			details[DetailStartPolicy] = next.policy().String()
		}
		err = d.apply(ctx, conds, []kv.Write{kv.Put(agentKey(team, id), nextRaw)},
			d.event(ctx, ActionAgentUpdate, AgentName(team, id), team, details))
		switch conflict(err) {
		case 0:
			if u.Etag != "" {
				return Agent{}, etagMismatch("agent identity")
			}
			continue // changed meanwhile: apply u to what it is now
		case 1:
			return Agent{}, errs.E(errs.KindNotFound, "team %q not found", team)
		}
		if err != nil {
			return Agent{}, fmt.Errorf("update agent identity: %w", err)
		}
		return next.agent(nextRaw), nil
	}
	return Agent{}, errs.E(errs.KindUnavailable, "agent identity %q is changing; try again", id)
}

// DeleteAgent deletes identity id of team and revokes its tokens in the
// same write (in several writes, the last one deleting it, when it has
// more than fit in one). etag, when set, must be the identity's. Callers
// are people: admins of the team and system admins.
//
// Returns Invalid (fields team_id, agent_id, etag), PermissionDenied,
// NotFound, FailedPrecondition (the default identity; etag mismatch).
func (d *Directory) DeleteAgent(ctx context.Context, team, id, etag string) error {
	if err := checkID("team_id", team); err != nil {
		return err
	}
	if err := checkID("agent_id", id); err != nil {
		return err
	}
	if err := checkEtag(etag); err != nil {
		return err
	}
	if err := mayAdminTeam(ctx, team, "agent identities"); err != nil {
		return err
	}
	for range 5 {
		rec, raw, err := d.agent(ctx, team, id)
		if err != nil {
			return err
		}
		if rec.Default || id == DefaultAgentID {
			return errs.E(errs.KindFailedPrecondition,
				"agent identity %q is the default identity of team %q: it cannot be deleted (runs with no user and no identity execute as it); change its secret references instead", id, team)
		}
		if etag != "" && etag != etagOf(raw) {
			return etagMismatch("agent identity")
		}
		now := d.clock()
		toks, err := d.liveTokens(ctx, AgentName(team, id), now)
		if err != nil {
			return err
		}
		conds := []kv.Cond{kv.Equal(agentKey(team, id), raw)}
		name := AgentName(team, id)
		details := map[string]string{}
		toks, err = d.revokeSurplus(ctx, conds, toks, now, name, team, "agent identity being deleted")
		if err == nil {
			revokedDetail(details, len(toks))
			err = d.apply(ctx, conds, append([]kv.Write{kv.Delete(agentKey(team, id))}, revocations(toks, now)...),
				d.event(ctx, ActionAgentDelete, name, team, details))
		}
		if conflict(err) == 0 {
			if etag != "" {
				return etagMismatch("agent identity")
			}
			continue // changed meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("delete agent identity: %w", err)
		}
		return nil
	}
	return errs.E(errs.KindUnavailable, "agent identity %q is changing; try again", id)
}
