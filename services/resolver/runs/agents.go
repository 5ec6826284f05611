package runs

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
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
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
func (a Agent) Name() string { return resolver.AgentName(a.Team, a.ID) }

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

// policyOf is the identity's start policy: members for the default
// identity, else as recorded (admins when not recorded).
func policyOf(r resolver.AgentRecord) StartPolicy {
	if r.Default || r.ID == resolver.DefaultAgentID {
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

func agentOf(r resolver.AgentRecord, raw []byte) Agent {
	return Agent{
		Team: r.Team, ID: r.ID, DisplayName: r.DisplayName, Description: r.Description,
		SecretNames: slices.Clone(r.SecretNames), StartPolicy: policyOf(r), Default: r.Default,
		CreateTime: r.CreateTime, UpdateTime: r.UpdateTime, Etag: resolver.EtagOf(raw),
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

// agentCond is the condition that the identity's record is still raw
// (absent, for the synthesised default identity of an old team).
func agentCond(team, id string, raw []byte) kv.Cond {
	if raw == nil {
		return kv.Absent(resolver.AgentKey(team, id))
	}
	return kv.Equal(resolver.AgentKey(team, id), raw)
}

// encodedAgent returns the stored form of rec: raw when given, else its
// encoding (the synthesised default identity), for its etag.
func encodedAgent(rec resolver.AgentRecord, raw []byte) []byte {
	if raw == nil {
		return resolver.Encode(rec)
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
func (r *Service) CreateAgent(ctx context.Context, a Agent) (Agent, error) {
	if err := resolver.CheckID("team_id", a.Team); err != nil {
		return Agent{}, err
	}
	if err := resolver.CheckID("agent_id", a.ID); err != nil {
		return Agent{}, err
	}
	if err := checkDisplayName(a.DisplayName); err != nil {
		return Agent{}, err
	}
	if err := resolver.CheckDescription(a.Description); err != nil {
		return Agent{}, err
	}
	if err := resolver.CheckSecretNames("secret_names", a.SecretNames); err != nil {
		return Agent{}, err
	}
	if err := checkStartPolicy(a.StartPolicy); err != nil {
		return Agent{}, err
	}
	if err := resolver.MayAdminTeam(ctx, a.Team, "agent identities"); err != nil {
		return Agent{}, err
	}
	if a.ID == resolver.DefaultAgentID {
		if _, err := r.s.Team(ctx, a.Team); err != nil {
			return Agent{}, err
		}
		return Agent{}, errs.E(errs.KindAlreadyExists, "agent identity %q already exists in team %q: it is the team's default identity", a.ID, a.Team)
	}
	now := r.s.Now()
	policy := a.StartPolicy
	if policy == 0 {
		policy = StartPolicyAdmins
	}
	rec := resolver.AgentRecord{
		Team: a.Team, ID: a.ID, DisplayName: a.DisplayName, Description: a.Description,
		SecretNames: resolver.UniqueNames(a.SecretNames), StartPolicy: policy.String(), CreateTime: now, UpdateTime: now,
	}
	raw := resolver.Encode(rec)
	conds := []kv.Cond{kv.Present(resolver.TeamKey(a.Team)), kv.Absent(resolver.AgentKey(a.Team, a.ID))}
	name := resolver.AgentName(a.Team, a.ID)
	details := map[string]string{resolver.DetailStartPolicy: policy.String()}
	resolver.SetNames(details, resolver.DetailSecretNames, rec.SecretNames)
	revoke, n, err := r.dir.RevokeTokens(ctx, conds, name, a.Team, "left over from an earlier agent identity of the same name", now)
	if err == nil {
		resolver.RevokedDetail(details, n)
		puts, _ := restrictionWrites(a.Team, a.ID, nil, rec.SecretNames)
		err = r.applyAgent(ctx, conds, append([]kv.Write{kv.Put(resolver.AgentKey(a.Team, a.ID), raw)}, revoke...),
			r.s.Event(ctx, resolver.ActionAgentCreate, name, a.Team, details), puts, nil, kv.Equal(resolver.AgentKey(a.Team, a.ID), raw))
	}
	switch resolver.Conflict(err) {
	case 0:
		return Agent{}, errs.E(errs.KindNotFound, "team %q not found", a.Team)
	case 1:
		return Agent{}, errs.E(errs.KindAlreadyExists, "agent identity %q already exists in team %q", a.ID, a.Team)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("create agent identity: %w", err)
	}
	return agentOf(rec, raw), nil
}

// GetAgent returns identity id of team. Callers are people: members of the
// team and system admins.
//
// Returns Invalid (fields team_id, agent_id), PermissionDenied, NotFound.
func (r *Service) GetAgent(ctx context.Context, team, id string) (Agent, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Agent{}, err
	}
	if err := resolver.CheckID("agent_id", id); err != nil {
		return Agent{}, err
	}
	if err := resolver.MayReadTeam(ctx, team, "agent identities"); err != nil {
		return Agent{}, err
	}
	rec, raw, err := r.s.Agent(ctx, team, id)
	if err != nil {
		return Agent{}, err
	}
	return agentOf(rec, encodedAgent(rec, raw)), nil
}

// ListAgents lists team's identities in id order. Callers are people:
// members of the team and system admins.
//
// Returns Invalid (fields team_id, page_size, page_token),
// PermissionDenied, NotFound (team).
func (r *Service) ListAgents(ctx context.Context, team string, page resolver.Page) ([]Agent, string, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return nil, "", err
	}
	if err := resolver.MayReadTeam(ctx, team, "agent identities"); err != nil {
		return nil, "", err
	}
	size, after, err := page.Cursor()
	if err != nil {
		return nil, "", err
	}
	t, err := r.s.Team(ctx, team)
	if err != nil {
		return nil, "", err
	}
	prefix := resolver.AgentsPrefix(team)
	kvs, err := r.s.KV().Scan(ctx, prefix, resolver.AfterKey(prefix, after), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list agent identities: %w", err)
	}
	agents := make([]Agent, 0, len(kvs)+1)
	for _, kv := range kvs {
		var rec resolver.AgentRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		agents = append(agents, agentOf(rec, kv.Value))
	}
	// A team made before identities existed lists its default identity
	// all the same, in its place.
	if after < resolver.DefaultAgentID {
		if _, err := r.s.KV().Get(ctx, resolver.AgentKey(team, resolver.DefaultAgentID)); resolver.IsNotFound(err) {
			def := resolver.DefaultAgentRecord(team, t.CreateTime)
			i, _ := slices.BinarySearchFunc(agents, resolver.DefaultAgentID, func(a Agent, id string) int { return strings.Compare(a.ID, id) })
			agents = slices.Insert(agents, i, agentOf(def, resolver.Encode(def)))
		} else if err != nil {
			return nil, "", fmt.Errorf("list agent identities: %w", err)
		}
	}
	agents, next := resolver.PageOf(agents, size, func(a Agent) string { return a.ID })
	return agents, next, nil
}

// AgentUpdate is the change of an UpdateAgent: the fields set, and the
// etag the identity must still have (empty: any).
type AgentUpdate struct {
	DisplayName *string      // nil: unchanged
	Description *string      // nil: unchanged
	StartPolicy *StartPolicy // nil: unchanged; zero: the default (admins)
	SecretNames resolver.NamesUpdate
	Etag        string
}

// UpdateAgent changes identity id of team as u says, and returns it. The
// default identity may be changed like any other. Callers are people:
// admins of the team and system admins.
//
// Returns Invalid (fields team_id, agent_id, display_name, description,
// secret_names, add_secret_names, remove_secret_names, etag),
// PermissionDenied, NotFound, FailedPrecondition (etag mismatch).
func (r *Service) UpdateAgent(ctx context.Context, team, id string, u AgentUpdate) (Agent, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Agent{}, err
	}
	if err := resolver.CheckID("agent_id", id); err != nil {
		return Agent{}, err
	}
	if u.DisplayName != nil {
		if err := checkDisplayName(*u.DisplayName); err != nil {
			return Agent{}, err
		}
	}
	if u.Description != nil {
		if err := resolver.CheckDescription(*u.Description); err != nil {
			return Agent{}, err
		}
	}
	if err := u.SecretNames.Check(); err != nil {
		return Agent{}, err
	}
	if u.StartPolicy != nil {
		// Zero is the identity's default: admins, members for the default
		// identity (an update mask naming the field, with no value).
		if err := checkStartPolicy(*u.StartPolicy); err != nil {
			return Agent{}, err
		}
		if id == resolver.DefaultAgentID && *u.StartPolicy == StartPolicyAdmins {
			return Agent{}, errs.Field("start_policy", "the default identity admits every member of the team and cannot change: runs that choose no identity execute as it")
		}
	}
	if err := resolver.CheckEtag(u.Etag); err != nil {
		return Agent{}, err
	}
	if err := resolver.MayAdminTeam(ctx, team, "agent identities"); err != nil {
		return Agent{}, err
	}
	for range 5 {
		rec, raw, err := r.s.Agent(ctx, team, id)
		if err != nil {
			return Agent{}, err
		}
		if u.Etag != "" && u.Etag != resolver.EtagOf(encodedAgent(rec, raw)) {
			return Agent{}, resolver.EtagMismatch("agent identity")
		}
		next := rec
		if u.DisplayName != nil {
			next.DisplayName = *u.DisplayName
		}
		if u.Description != nil {
			next.Description = *u.Description
		}
		if u.StartPolicy != nil && !rec.Default && id != resolver.DefaultAgentID {
			next.StartPolicy = max(*u.StartPolicy, StartPolicyAdmins).String()
		}
		if next.SecretNames, err = u.SecretNames.Apply(rec.SecretNames); err != nil {
			return Agent{}, err
		}
		// Nothing changes: nothing is written, and the etag stays.
		if next.DisplayName == rec.DisplayName && next.Description == rec.Description &&
			slices.Equal(next.SecretNames, rec.SecretNames) && policyOf(next) == policyOf(rec) {
			return agentOf(rec, encodedAgent(rec, raw)), nil
		}
		next.UpdateTime = r.s.Now()
		nextRaw := resolver.Encode(next)
		conds := []kv.Cond{agentCond(team, id, raw)}
		if raw == nil {
			conds = append(conds, kv.Present(resolver.TeamKey(team)))
		}
		details := resolver.UpdateDetails(rec.DisplayName != next.DisplayName, rec.Description != next.Description, rec.SecretNames, next.SecretNames)
		if policyOf(next) != policyOf(rec) {
			details[resolver.DetailStartPolicy] = policyOf(next).String()
		}
		puts, dels := restrictionWrites(team, id, rec.SecretNames, next.SecretNames)
		err = r.applyAgent(ctx, conds, []kv.Write{kv.Put(resolver.AgentKey(team, id), nextRaw)},
			r.s.Event(ctx, resolver.ActionAgentUpdate, resolver.AgentName(team, id), team, details),
			puts, dels, kv.Equal(resolver.AgentKey(team, id), nextRaw))
		switch resolver.Conflict(err) {
		case 0:
			if u.Etag != "" {
				return Agent{}, resolver.EtagMismatch("agent identity")
			}
			continue // changed meanwhile: apply u to what it is now
		case 1:
			return Agent{}, errs.E(errs.KindNotFound, "team %q not found", team)
		}
		if err != nil {
			return Agent{}, fmt.Errorf("update agent identity: %w", err)
		}
		return agentOf(next, nextRaw), nil
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
func (r *Service) DeleteAgent(ctx context.Context, team, id, etag string) error {
	if err := resolver.CheckID("team_id", team); err != nil {
		return err
	}
	if err := resolver.CheckID("agent_id", id); err != nil {
		return err
	}
	if err := resolver.CheckEtag(etag); err != nil {
		return err
	}
	if err := resolver.MayAdminTeam(ctx, team, "agent identities"); err != nil {
		return err
	}
	for range 5 {
		rec, raw, err := r.s.Agent(ctx, team, id)
		if err != nil {
			return err
		}
		if rec.Default || id == resolver.DefaultAgentID {
			return errs.E(errs.KindFailedPrecondition,
				"agent identity %q is the default identity of team %q: it cannot be deleted (runs with no user and no identity execute as it); change its secret references instead", id, team)
		}
		if etag != "" && etag != resolver.EtagOf(raw) {
			return resolver.EtagMismatch("agent identity")
		}
		conds := []kv.Cond{kv.Equal(resolver.AgentKey(team, id), raw)}
		name := resolver.AgentName(team, id)
		details := map[string]string{}
		revoke, n, err := r.dir.RevokeTokens(ctx, conds, name, team, "agent identity being deleted", r.s.Now())
		if err == nil {
			resolver.RevokedDetail(details, n)
			_, dels := restrictionWrites(team, id, rec.SecretNames, nil)
			err = r.applyAgent(ctx, conds, append([]kv.Write{kv.Delete(resolver.AgentKey(team, id))}, revoke...),
				r.s.Event(ctx, resolver.ActionAgentDelete, name, team, details), nil, dels, kv.Absent(resolver.AgentKey(team, id)))
		}
		if resolver.Conflict(err) == 0 {
			if etag != "" {
				return resolver.EtagMismatch("agent identity")
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

// teamIdentities returns every identity of team with its references, for
// the restriction step of a run resolution without an allowlist (DESIGN
// §5 step 2; identitiesFor).
func (r *Service) teamIdentities(ctx context.Context, team string) ([]runrules.Identity, error) {
	recs, err := resolver.Scan[resolver.AgentRecord](ctx, r.s, resolver.AgentsPrefix(team), "", 0)
	if err != nil {
		return nil, fmt.Errorf("list agent identities: %w", err)
	}
	out := make([]runrules.Identity, 0, len(recs))
	for _, rec := range recs {
		out = append(out, runrules.Identity{ID: rec.ID, SecretNames: rec.SecretNames})
	}
	return out, nil
}
