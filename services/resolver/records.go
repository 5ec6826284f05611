package resolver

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// The keys of every record in the Store, in one table so that no two
// collections can overlap. Ids never contain "/", so every key is
// unambiguous and a prefix ending in "/" scans exactly one collection.
// Records are JSON; each is defined by the package that writes it, and
// here when both domains read it.
//
//	teams/{team}                            TeamRecord
//	users/{user}                            directory
//	sysadmins/{user}                        marker: the user is a system admin
//	members/{team}/{user}                   MembershipRecord
//	userteams/{user}/{team}                 MembershipRecord (index by user)
//	invitations/{user}/{team}               directory (pending invitations, by invited user)
//	tokens/{token_id}                       directory
//	principaltokens/{principal}/{token_id}  marker (index by owner; principal is a resource name)
//	tokenchildren/{token_id}/{child_id}     marker: child was issued by token_id for its own principal
//	runners/{runner}                        directory
//	integrations/{team}/{integration}       directory
//	integrationallows/{team}/{integration}/{user}  directory
//	agents/{team}/{agent}                   AgentRecord
//	restrict/{team}/{name}/{agent}          marker: agent references team secret name (runs keep it with the AgentRecord)
//	meta/restrict-index                     marker: every AgentRecord has its restrict/ entries (runs.BuildRestrictionIndex)
//	environments/{team}/{env}               runs
//	tickets/{ticket_id}                     runs
//	runs/{team}/{run}                       runs
//	runsbytime/{team}/{inverted time}/{run} marker (newest first)
//	runsinflight/{team}/{inverted time}/{run}  marker (runs in flight)
//	runsdenials/{team}/{run}                runs: how many egress denials the run's runner reported
//	bootstrap/admin                         marker: the first system admin was made
//	outbox/…                                the audit outbox (outbox.KV)
//	auditwitness/{chain}                    the last event of each audit chain the audit service acknowledged (outbox.KV witnesses)
//	idempotency/…, idempotency_expiry/…     answers of writes sent with an idempotency key (package idempotency)
const (
	PrefixTeams             = "teams/"
	PrefixUsers             = "users/"
	PrefixSysadmins         = "sysadmins/"
	PrefixMembers           = "members/"
	PrefixUserTeams         = "userteams/"
	PrefixInvitations       = "invitations/"
	PrefixTokens            = "tokens/"
	PrefixPrincipalTokens   = "principaltokens/"
	PrefixTokenChildren     = "tokenchildren/"
	PrefixRunners           = "runners/"
	PrefixIntegrations      = "integrations/"
	PrefixIntegrationAllows = "integrationallows/"
	PrefixAgents            = "agents/"
	PrefixRestrict          = "restrict/"
	PrefixEnvironments      = "environments/"
	PrefixTickets           = "tickets/"
	PrefixRuns              = "runs/"
	PrefixRunsByTime        = "runsbytime/"
	PrefixRunsInFlight      = "runsinflight/"
	PrefixRunsDenials       = "runsdenials/"
	BootstrapKey            = "bootstrap/admin"
	// RestrictIndexKey marks a store whose restrict/ entries are complete:
	// written once the entries of every identity an older build wrote
	// without them are in place.
	RestrictIndexKey = "meta/restrict-index"
)

func TeamKey(id string) string                 { return PrefixTeams + id }
func UserKey(id string) string                 { return PrefixUsers + id }
func SysadminKey(id string) string             { return PrefixSysadmins + id }
func MembersPrefix(team string) string         { return PrefixMembers + team + "/" }
func MemberKey(team, user string) string       { return MembersPrefix(team) + user }
func UserTeamsPrefix(user string) string       { return PrefixUserTeams + user + "/" }
func UserTeamKey(user, team string) string     { return UserTeamsPrefix(user) + team }
func InvitationsPrefix(user string) string     { return PrefixInvitations + user + "/" }
func InvitationKey(user, team string) string   { return InvitationsPrefix(user) + team }
func TokenKey(id string) string                { return PrefixTokens + id }
func PrincipalTokensPrefix(name string) string { return PrefixPrincipalTokens + name + "/" }
func TokenChildrenPrefix(id string) string     { return PrefixTokenChildren + id + "/" }
func RunnerKey(id string) string               { return PrefixRunners + id }
func IntegrationsPrefix(team string) string    { return PrefixIntegrations + team + "/" }
func IntegrationKey(team, id string) string    { return IntegrationsPrefix(team) + id }
func AllowKey(team, integration, user string) string {
	return PrefixIntegrationAllows + team + "/" + integration + "/" + user
}
func AgentsPrefix(team string) string       { return PrefixAgents + team + "/" }
func AgentKey(team, id string) string       { return AgentsPrefix(team) + id }
func EnvironmentsPrefix(team string) string { return PrefixEnvironments + team + "/" }

// RestrictPrefix is where the identities of team that reference the team
// secret name are listed (a name never contains "/": envname syntax), and
// RestrictKey the entry of one of them.
func RestrictPrefix(team, name string) string { return PrefixRestrict + team + "/" + name + "/" }
func RestrictKey(team, name, agent string) string {
	return RestrictPrefix(team, name) + agent
}
func EnvironmentKey(team, id string) string { return EnvironmentsPrefix(team) + id }
func TicketKey(id string) string            { return PrefixTickets + id }
func RunsPrefix(team string) string         { return PrefixRuns + team + "/" }
func RunKey(team, id string) string         { return RunsPrefix(team) + id }

// RunDenialsKey counts the egress denials run id of team has reported
// (ReportEgressDenials): a bound on the audit events one run can write,
// and the write that lets a retried report be answered, not recorded
// twice.
func RunDenialsKey(team, id string) string { return PrefixRunsDenials + team + "/" + id }

func RunsByTimePrefix(team string) string   { return PrefixRunsByTime + team + "/" }
func RunsInFlightPrefix(team string) string { return PrefixRunsInFlight + team + "/" }

// RunByTimeKey and RunInFlightKey index run id of team by its creation
// time t, newest first.
func RunByTimeKey(team string, t time.Time, id string) string {
	return RunsByTimePrefix(team) + InvertedTime(t) + "/" + id
}
func RunInFlightKey(team string, t time.Time, id string) string {
	return RunsInFlightPrefix(team) + InvertedTime(t) + "/" + id
}

// InvertedLen is the length of an InvertedTime.
const InvertedLen = 16

// InvertedTime is t as 16 lowercase hex digits of MaxUint64 minus its Unix
// nanoseconds, so that a scan of keys holding it lists the newest first.
func InvertedTime(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.MaxUint64-uint64(t.UnixNano()))
	return hex.EncodeToString(b[:])
}

// Marker is the value of index entries that carry no data.
var Marker = []byte("{}")

// Encode is the stored form of a record.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Records are plain structs of strings, bools and times.
		panic(fmt.Sprintf("resolver: encode %T: %v", v, err))
	}
	return b
}

// Get reads the record at key into v and returns its raw bytes (for
// kv.Equal conditions). A missing key is an errs.NotFound error.
func (s *Store) Get(ctx context.Context, key string, v any) ([]byte, error) {
	b, err := s.kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return b, nil
}

// Scan reads up to limit (<= 0: all) records under prefix after the key
// after.
func Scan[R any](ctx context.Context, s *Store, prefix, after string, limit int) ([]R, error) {
	kvs, err := s.kv.Scan(ctx, prefix, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]R, 0, len(kvs))
	for _, kv := range kvs {
		var r R
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Conflict returns the index of the failed condition when err is a
// *kv.ConflictError, else -1.
func Conflict(err error) int {
	var ce *kv.ConflictError
	if errors.As(err, &ce) {
		return ce.Index
	}
	return -1
}

// IsNotFound reports whether err is of kind NotFound.
func IsNotFound(err error) bool { return errors.Is(err, errs.NotFound) }

// Records both domains read.

// TeamRecord is a team, at TeamKey. Teams are never deleted.
type TeamRecord struct {
	ID         string    `json:"id"`
	CreateTime time.Time `json:"create_time"`
}

// Team reads team id. NotFound names it.
func (s *Store) Team(ctx context.Context, id string) (TeamRecord, error) {
	var rec TeamRecord
	if _, err := s.Get(ctx, TeamKey(id), &rec); err != nil {
		if IsNotFound(err) {
			return TeamRecord{}, errs.E(errs.KindNotFound, "team %q not found", id)
		}
		return TeamRecord{}, fmt.Errorf("get team: %w", err)
	}
	return rec, nil
}

// MembershipRecord is a user's membership of a team, at MemberKey and at
// UserTeamKey.
type MembershipRecord struct {
	Team       string    `json:"team"`
	User       string    `json:"user"`
	Role       string    `json:"role"` // "member" or "admin"
	CreateTime time.Time `json:"create_time"`
}

// RoleOf is the membership's role.
func (r MembershipRecord) RoleOf() auth.Role {
	if r.Role == auth.RoleAdmin.String() {
		return auth.RoleAdmin
	}
	return auth.RoleMember
}

// Agent identities: the directory authenticates their tokens and makes
// each team's default identity with the team; runs manage them.
const (
	// DefaultAgentID is the id of each team's default identity.
	DefaultAgentID = "default"
	// DefaultAgentDisplayName is how people see it.
	DefaultAgentDisplayName = "Default Service Account"
)

// AgentRecord is an agent identity, at AgentKey.
type AgentRecord struct {
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

// DefaultAgentRecord is the record of team's default identity, made with
// the team at now.
func DefaultAgentRecord(team string, now time.Time) AgentRecord {
	return AgentRecord{
		Team: team, ID: DefaultAgentID, DisplayName: DefaultAgentDisplayName,
		Description: "Runs with no user and no identity execute as this identity.",
		Default:     true, CreateTime: now, UpdateTime: now,
	}
}

// Agent reads identity id of team, with its stored bytes. A team created
// before identities existed has no record of its default identity: it is
// then the DefaultAgentRecord as of the team's creation, with raw nil.
// NotFound names the identity (or the team, for the default).
func (s *Store) Agent(ctx context.Context, team, id string) (AgentRecord, []byte, error) {
	var rec AgentRecord
	raw, err := s.Get(ctx, AgentKey(team, id), &rec)
	switch {
	case err == nil:
		return rec, raw, nil
	case !IsNotFound(err):
		return rec, nil, fmt.Errorf("get agent identity: %w", err)
	case id != DefaultAgentID:
		return rec, nil, errs.E(errs.KindNotFound, "agent identity %q not found in team %q", id, team)
	}
	t, err := s.Team(ctx, team)
	if err != nil {
		return AgentRecord{}, nil, err
	}
	return DefaultAgentRecord(team, t.CreateTime), nil, nil
}

// AgentExists returns the condition "identity id of team exists" and the
// error saying it does not. The default identity exists as long as its
// team does, whether or not its record was ever written.
func AgentExists(team, id string) (kv.Cond, error) {
	if id == DefaultAgentID {
		return kv.Present(TeamKey(team)), errs.E(errs.KindNotFound, "team %q not found", team)
	}
	return kv.Present(AgentKey(team, id)), errs.E(errs.KindNotFound, "agent identity %q not found in team %q", id, team)
}
