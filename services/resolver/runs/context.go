package runs

import (
	"context"
	"fmt"
	"strings"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// A run's context: its validation (normalize), who may read runs, and
// what the decision needs (prepare).

// normalize checks rc's syntax and returns it with User as "users/{user}",
// and the user id ("" for user-less triggers). Errors name the field.
func normalize(rc RunContext) (RunContext, string, error) {
	switch {
	case rc.Trigger == 0:
		return rc, "", errs.Field("context.trigger", "is required: it %s", resolver.TriggerRule)
	case !rc.Trigger.Valid():
		return rc, "", errs.Field("context.trigger", resolver.TriggerRule)
	}
	var user string
	switch {
	case rc.Trigger.UserInitiated() && rc.User == "":
		return rc, "", errs.Field("context.user", "is required for user-initiated triggers (%s): the triggering user", rc.Trigger)
	case !rc.Trigger.UserInitiated() && rc.User != "":
		return rc, "", errs.Field("context.user", "must be empty for user-less triggers (%s): they carry no user", rc.Trigger)
	case rc.User != "":
		user = strings.TrimPrefix(rc.User, "users/")
		if !resolver.ValidID(user) || user == resolver.Me {
			return rc, "", errs.Field("context.user", `must be "users/{user}" or "{user}"; {user} %s and not "me"`, resolver.IDRule)
		}
		rc.User = resolver.UserName(user)
	}
	if rc.Agent != "" && !resolver.ValidID(rc.Agent) {
		return rc, "", errs.Field("context.agent", "must be empty or an agent identity id: it %s", resolver.IDRule)
	}
	if rc.Environment != "" && !resolver.ValidID(rc.Environment) {
		return rc, "", errs.Field("context.environment", "must be empty or an environment id: it %s", resolver.IDRule)
	}
	// The names follow the rule of identities' and environments' lists.
	if err := resolver.CheckSecretNames("context.secrets.names", rc.Secrets); err != nil {
		return rc, "", err
	}
	return rc, user, nil
}

// granted reports whether p is a runner granted team.
func granted(p *auth.Principal, team string) bool {
	if p == nil || p.Kind != auth.KindRunner {
		return false
	}
	_, ok := p.Teams[team]
	return ok
}

// mayRead reports whether p may read team's run records: its members (people),
// system admins, and runners granted the team.
func mayRead(p *auth.Principal, team string) bool {
	return (p.IsHuman() && (p.SystemAdmin || p.IsMember(team))) || granted(p, team)
}

// prepared is a validated run context with everything the decision needs
// except the candidates.
type prepared struct {
	team  string
	rc    RunContext // normalized, StartToken cleared
	user  string     // user id; "" for user-less triggers
	input runrules.Input
	env   string // environment id, "" when none
	// userRole is the triggering user's role in the team (RoleNone for
	// user-less triggers); policy the start policy of the identity the
	// run executes as (for StartRun).
	userRole auth.Role
	policy   StartPolicy
}

// prepare checks what rc refers to, in team, and gathers the decision's
// input. The caller has checked rc's syntax (normalize) and permission.
func (r *Service) prepare(ctx context.Context, team string, rc RunContext, user string, teamExists bool) (prepared, error) {
	if !teamExists {
		if _, err := r.s.Team(ctx, team); err != nil {
			return prepared{}, err
		}
	}
	role := auth.RoleNone
	if user != "" {
		var m resolver.MembershipRecord
		if _, err := r.s.Get(ctx, resolver.MemberKey(team, user), &m); err != nil {
			if resolver.IsNotFound(err) {
				return prepared{}, resolver.Denied("context.user: user %q is not a member of team %q: a run may act only for a member", user, team)
			}
			return prepared{}, fmt.Errorf("read membership: %w", err)
		}
		role = m.RoleOf()
	}
	agent := rc.Agent
	if agent == "" {
		agent = resolver.DefaultAgentID
	}
	// The default identity always exists (a team created before identities
	// existed may lack its record); any other must be there.
	policy := StartPolicyMembers
	if agent != resolver.DefaultAgentID {
		rec, _, err := r.s.Agent(ctx, team, agent)
		if err != nil {
			if resolver.IsNotFound(err) {
				return prepared{}, errs.Field("context.agent", "no agent identity %q in team %q", agent, team)
			}
			return prepared{}, err
		}
		policy = policyOf(rec)
	}
	in := runrules.Input{Team: resolver.TeamName(team), Agent: agent, RunList: rc.Secrets}
	if user != "" {
		in.User = resolver.UserName(user)
	}
	if rc.Environment != "" {
		env, _, err := r.environmentRecord(ctx, team, rc.Environment)
		if resolver.IsNotFound(err) {
			return prepared{}, errs.Field("context.environment", "no environment %q in team %q", rc.Environment, team)
		}
		if err != nil {
			return prepared{}, err
		}
		in.EnvList = env.SecretNames
	}
	// Step 2 needs only the identities that reference a name the run may
	// receive: with an allowlist, the index entries of its names.
	ids, err := r.identitiesFor(ctx, team, in.CandidateNames())
	if err != nil {
		return prepared{}, err
	}
	in.Identities = ids
	rc.StartToken = ""
	return prepared{team: team, rc: rc, user: user, input: in, env: rc.Environment, userRole: role, policy: policy}, nil
}

// startTokenRefused is the answer to a request that still sends
// context.start_token.
func startTokenRefused() error {
	return errs.Field("context.start_token", "is no longer accepted: the run is started with StartRun (oz run start) by the token that starts it — an agent identity's token starts runs as that identity — and the runner redeems the ticket")
}
