package resolver

import (
	"strings"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// MaxIDLength is the longest team or user id.
const MaxIDLength = 63

// IDRule says what a team or user id may be, for error messages.
const IDRule = "must match [a-z][a-z0-9-]* and be at most 63 characters"

// Me is the user id that names the caller in resource names ("users/me");
// no user may have it.
const Me = "me"

// ValidID reports whether id is a valid team or user id:
// [a-z][a-z0-9-]*, at most MaxIDLength characters.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength || id[0] < 'a' || id[0] > 'z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkID validates a team or user id given in field. It never echoes the
// value: a confused caller may have pasted a token into it.
func checkID(field, id string) error {
	if id == "" {
		return errs.Field(field, "is required")
	}
	if !ValidID(id) {
		return errs.Field(field, IDRule)
	}
	return nil
}

// Resource names (AIP-122).

// TeamName is the resource name of a team: "teams/{team}".
func TeamName(id string) string { return "teams/" + id }

// UserName is the resource name of a user: "users/{user}".
func UserName(id string) string { return "users/" + id }

// MembershipName is the resource name of a membership:
// "teams/{team}/members/{user}".
func MembershipName(team, user string) string { return "teams/" + team + "/members/" + user }

// TokenName is the resource name of a token: "tokens/{token_id}".
func TokenName(id string) string { return "tokens/" + id }

// PrincipalRef names a token's owner: its kind and resource name. Four
// kinds own tokens, with the same record:
//
//	users/{user}                 a person
//	teams/{team}/agents/{agent}  an agent identity (runs started with its
//	                             tokens execute as it)
//	teams/{team}/integrations/{integration}
//	                             an integration (starts runs for a trigger)
//	runners/{runner}             a runner
type PrincipalRef struct {
	Kind auth.Kind
	Name string
}

// UserPrincipal is the PrincipalRef of user id.
func UserPrincipal(id string) PrincipalRef {
	return PrincipalRef{Kind: auth.KindUser, Name: UserName(id)}
}

// AgentPrincipal is the PrincipalRef of agent identity id of team.
func AgentPrincipal(team, id string) PrincipalRef {
	return PrincipalRef{Kind: auth.KindAgent, Name: AgentName(team, id)}
}

// IntegrationPrincipal is the PrincipalRef of integration id of team.
func IntegrationPrincipal(team, id string) PrincipalRef {
	return PrincipalRef{Kind: auth.KindIntegration, Name: IntegrationName(team, id)}
}

// RunnerPrincipal is the PrincipalRef of runner id.
func RunnerPrincipal(id string) PrincipalRef {
	return PrincipalRef{Kind: auth.KindRunner, Name: RunnerName(id)}
}

// PrincipalRule says what a principal's name may be, for error messages.
const PrincipalRule = `must be "users/{user}", "teams/{team}/agents/{agent}", "teams/{team}/integrations/{integration}" or "runners/{runner}"; each id ` + IDRule

// ParsePrincipal parses a principal's resource name: "users/{user}",
// "teams/{team}/agents/{agent}", "teams/{team}/integrations/{integration}"
// or "runners/{runner}". It does not resolve
// "users/me"; callers do that.
func ParsePrincipal(name string) (PrincipalRef, bool) {
	if id, ok := strings.CutPrefix(name, "users/"); ok && ValidID(id) {
		return UserPrincipal(id), true
	}
	if id, ok := strings.CutPrefix(name, "runners/"); ok && ValidID(id) {
		return RunnerPrincipal(id), true
	}
	if rest, ok := strings.CutPrefix(name, "teams/"); ok {
		if team, id, ok := strings.Cut(rest, "/agents/"); ok && ValidID(team) && ValidID(id) {
			return AgentPrincipal(team, id), true
		}
		if team, id, ok := strings.Cut(rest, "/integrations/"); ok && ValidID(team) && ValidID(id) {
			return IntegrationPrincipal(team, id), true
		}
	}
	return PrincipalRef{}, false
}

// userID returns the id of a user principal, "" for any other.
func (p PrincipalRef) userID() string {
	if p.Kind != auth.KindUser {
		return ""
	}
	id, _ := strings.CutPrefix(p.Name, "users/")
	return id
}

// agentID returns the team and id of an agent principal, "" for any other.
func (p PrincipalRef) agentID() (team, id string) {
	if p.Kind != auth.KindAgent {
		return "", ""
	}
	rest, _ := strings.CutPrefix(p.Name, "teams/")
	team, id, _ = strings.Cut(rest, "/agents/")
	return team, id
}

// integrationID returns the team and id of an integration principal, ""
// for any other.
func (p PrincipalRef) integrationID() (team, id string) {
	if p.Kind != auth.KindIntegration {
		return "", ""
	}
	rest, _ := strings.CutPrefix(p.Name, "teams/")
	team, id, _ = strings.Cut(rest, "/integrations/")
	return team, id
}

// runnerID returns the id of a runner principal, "" for any other.
func (p PrincipalRef) runnerID() string {
	if p.Kind != auth.KindRunner {
		return ""
	}
	id, _ := strings.CutPrefix(p.Name, "runners/")
	return id
}
