package resolver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Audit events (DESIGN §6). Every change the resolver makes, every run
// resolution and every refused request is an audit event, written into
// the Store's outbox in the same Apply as the change it records (Apply),
// so that no change commits without its event and no event exists for a
// change that did not commit. A shipper (outbox.Shipper, with the Outbox
// as its Source) delivers them to the audit service and deletes them once
// acknowledged. Events name things and count them; they never hold a
// secret value, a bearer token or a token's hash.
//
// The outbox is a range of the store's keys (outbox.KV), so that it works
// on any kv.Store; event ids start with the emitter's name, "resolver-".

// Emitter is the resolver's name as an audit event emitter: the name of
// its certificate, with which the audit service identifies it.
const Emitter = auditevent.Resolver

// Actions the resolver emits, beside audit.ActionRunResolve and
// audit.ActionRequestDenied.
const (
	ActionTeamCreate        = "team.create"
	ActionUserCreate        = "user.create"
	ActionUserUpdate        = "user.update" // made a system admin (ozresolverd bootstrap)
	ActionMembershipCreate  = "membership.create"
	ActionMembershipDelete  = "membership.delete"
	ActionMembershipUpdate  = "membership.update" // a member's role changed
	ActionInvitationCreate  = "invitation.create"
	ActionInvitationAccept  = "invitation.accept"
	ActionInvitationDecline = "invitation.decline"
	ActionTokenCreate       = "token.create"
	ActionTokenRevoke       = "token.revoke"
	ActionAgentCreate       = "agent.create"
	ActionAgentUpdate       = "agent.update"
	ActionAgentDelete       = "agent.delete"
	ActionEnvironmentCreate = "environment.create"
	ActionEnvironmentUpdate = "environment.update"
	ActionEnvironmentDelete = "environment.delete"
	ActionRunnerCreate      = "runner.create"
	ActionRunnerDelete      = "runner.delete"

	ActionIntegrationCreate   = "integration.create"
	ActionIntegrationDelete   = "integration.delete"
	ActionIntegrationAllow    = "integration.allow"
	ActionIntegrationDisallow = "integration.disallow"

	ActionRunStart = "run.start"
	ActionRunEnd   = "run.end"
	// ActionRunEgressDenied: a request of a run in flight that its
	// runner's egress proxy refused (DESIGN §5.6), as the runner reported
	// it; OUTCOME_DENIED, one event per denial.
	ActionRunEgressDenied = "run.egress_denied"
)

// Detail keys the resolver sets, beside those of package audit.
const (
	DetailSystemAdmin        = "system_admin"         // user.create, user.update: "true" or "false"
	DetailRole               = "role"                 // membership.create: "member" or "admin"
	DetailPrincipal          = "principal"            // token.*: the owner's resource name
	DetailExpireTime         = "expire_time"          // token.create: RFC 3339, absent when it never expires
	DetailTokenID            = "token_id"             // runner.create: its first token
	DetailRevokedTokens      = "revoked_tokens"       // tokens revoked by the change, when any
	DetailTeams              = "teams"                // runner.create: the team ids granted, comma-separated
	DetailSecretNames        = "secret_names"         // agent.create, environment.create: the names, comma-separated
	DetailAddedSecretNames   = "added_secret_names"   // agent.update, environment.update
	DetailRemovedSecretNames = "removed_secret_names" // agent.update, environment.update
	// DetailCountSuffix: a list of names longer than maxNamesDetail bytes
	// is recorded by its length, under its key with this suffix
	// ("secret_names_count").
	DetailCountSuffix        = "_count"
	DetailDisplayNameChanged = "display_name_changed" // agent.update: "true"
	DetailDescriptionChanged = "description_changed"  // agent.update, environment.update: "true"
	DetailStrict             = "strict"               // run.resolve: "true" for a strict run
	DetailAgents             = "agents"               // integration.create: the identity ids it may start runs as, comma-separated
	DetailStartPolicy        = "start_policy"         // agent.create, agent.update: "admins" or "members"
	// DetailPart numbers the events of one run.resolve whose details are
	// too many for one event: "1/3", "2/3", "3/3". Each part carries the
	// run's own details and some of its injected and unresolved names.
	DetailPart = "part"

	DetailStartedBy    = "started_by"     // run.start: who started it (also the actor)
	DetailRunListCount = "run_list_count" // run.start: how many names the run's own list holds, when it has one
	DetailExitCode     = "exit_code"      // run.end
	DetailSignal       = "signal"         // run.end, when a signal ended the command
	DetailDurationMS   = "duration_ms"    // run.end
	// DetailBoundCount: run.resolve, how many of the injected team secrets
	// are bound to hosts (their agent got placeholders), when any.
	DetailBoundCount = "bound_count"
	// run.end, when the runner reported egress: how many hosts, and the
	// totals over them of substitutions and of refused requests (the
	// run's record has them per host).
	DetailEgressHosts         = "egress_hosts"
	DetailEgressSubstitutions = "egress_substitutions"
	DetailEgressDenials       = "egress_denials"
	// run.egress_denied: the host requested, and the host-bound secret
	// whose placeholder the request carried (absent when none); the
	// reason is audit.DetailReason.
	DetailHost       = "host"
	DetailSecretName = "secret_name"
)

// Bounds of what one event records.
const (
	// maxNamesDetail bounds a list of names in one detail; a longer list
	// is recorded by its length alone.
	maxNamesDetail = 8 << 10
	// MaxApplyOps is the kv.Store's limit on one Apply: conditions and
	// writes together.
	MaxApplyOps = 128
)

// Apply is kv.Store.Apply with evs added to the outbox in the same write
// (outbox.KV.Apply): the change and its events commit together or not at
// all. A failed condition is a *kv.ConflictError (Conflict). Every write
// of the resolver passes here: the first with writes of a request sent
// with an idempotency key commits the key's record too
// (idempotency.Attach), or returns idempotency.ErrClaimed when a
// duplicate came first.
func (s *Store) Apply(ctx context.Context, conds []kv.Cond, writes []kv.Write, evs ...*auditv1.Event) error {
	conds, writes, claim := idempotency.Attach(ctx, conds, writes)
	return claim.Settle(ctx, s.outbox.Apply(ctx, conds, writes, evs...))
}

// Event returns the event of a change that succeeded, made now by the
// caller of ctx (ozresolverd itself when there is none: a bootstrap).
// details may be nil.
func (s *Store) Event(ctx context.Context, action, resource, team string, details map[string]string) *auditv1.Event {
	return auditevent.New(ctx, Emitter, nil, s.Now(), action, resource, team, details)
}

// SetNames records names under key in details: comma-separated, or, when
// longer than maxNamesDetail, their number under key + DetailCountSuffix.
// Nothing is recorded for no names.
func SetNames(details map[string]string, key string, names []string) {
	if len(names) == 0 {
		return
	}
	if joined := strings.Join(names, ","); len(joined) <= maxNamesDetail {
		details[key] = joined
		return
	}
	details[key+DetailCountSuffix] = strconv.Itoa(len(names))
}

// namesDiff returns the names of after not in before, and of before not in
// after.
func namesDiff(before, after []string) (added, removed []string) {
	inBefore := make(map[string]bool, len(before))
	for _, n := range before {
		inBefore[n] = true
	}
	inAfter := make(map[string]bool, len(after))
	for _, n := range after {
		inAfter[n] = true
		if !inBefore[n] {
			added = append(added, n)
		}
	}
	for _, n := range before {
		if !inAfter[n] {
			removed = append(removed, n)
		}
	}
	return added, removed
}

// UpdateDetails are the details of an update: what changed, and the
// secret names added and removed.
func UpdateDetails(displayName, description bool, before, after []string) map[string]string {
	details := map[string]string{}
	if displayName {
		details[DetailDisplayNameChanged] = "true"
	}
	if description {
		details[DetailDescriptionChanged] = "true"
	}
	added, removed := namesDiff(before, after)
	SetNames(details, DetailAddedSecretNames, added)
	SetNames(details, DetailRemovedSecretNames, removed)
	return details
}

// RevokedDetail records how many tokens a change revoked, when any.
func RevokedDetail(details map[string]string, n int) {
	if n > 0 {
		details[DetailRevokedTokens] = strconv.Itoa(n)
	}
}

// TeamOfPrincipal is the team whose chain records events about the tokens
// of owner: an agent identity's or an integration's team; "" (the system
// chain) for users and runners.
func TeamOfPrincipal(owner PrincipalRef) string {
	if team, _ := owner.AgentID(); team != "" {
		return team
	}
	team, _ := owner.IntegrationID()
	return team
}

// RecordDenied completes ev, the request.denied event of a refused
// request (auditevent.OnDenied, the resolver's server.Config.OnDenied
// through grpcapi.OnDenied), and writes it into the outbox in an Apply of
// its own. resource is recorded only when well formed (ids and token
// ids), so that nothing pasted into it by mistake — a token — is ever
// recorded; its team, when that team exists, chooses the chain. runID is
// recorded when valid.
func (s *Store) RecordDenied(ctx context.Context, ev *auditv1.Event, resource, runID string) error {
	if !wellFormedName(resource) {
		resource = ""
	}
	team := ""
	if rest, ok := strings.CutPrefix(resource, "teams/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		// Only an existing team's chain: a refused request cannot make
		// the audit service start chains for names it made up.
		if _, err := s.kv.Get(ctx, TeamKey(id)); err == nil {
			team = id
		} else if !IsNotFound(err) {
			return fmt.Errorf("record denied request: %w", err)
		}
	}
	if !ValidRunID(runID) {
		runID = ""
	}
	ev.Resource, ev.Team, ev.RunId = resource, team, runID
	if err := s.Apply(ctx, nil, nil, ev); err != nil {
		return fmt.Errorf("record denied request: %w", err)
	}
	return nil
}

// wellFormedName reports whether name is a resource name made of ids and
// token ids ("teams/acme/agents/deployer", "tokens/0123456789abcdef"):
// no segment can then hold a bearer token or a secret value.
func wellFormedName(name string) bool {
	if name == "" || len(name) > audit.MaxNameLength {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if !ValidID(seg) && !ValidTokenID(seg) {
			return false
		}
	}
	return true
}
