package resolver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
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

// CheckID validates a team or user id given in field. It never echoes the
// value: a confused caller may have pasted a token into it.
func CheckID(field, id string) error {
	if id == "" {
		return errs.Field(field, "is required")
	}
	if !ValidID(id) {
		return errs.Field(field, IDRule)
	}
	return nil
}

// ValidRunID reports whether id is a valid run id: the team/user id rule.
func ValidRunID(id string) bool { return ValidID(id) }

// RunIDRule says what a run id may be, for error messages.
const RunIDRule = IDRule

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

// AgentName is the resource name of an agent identity:
// "teams/{team}/agents/{agent}"; it is also the principal name of the
// identity's tokens.
func AgentName(team, id string) string { return "teams/" + team + "/agents/" + id }

// EnvironmentName is "teams/{team}/environments/{env}".
func EnvironmentName(team, id string) string { return "teams/" + team + "/environments/" + id }

// IntegrationName is "teams/{team}/integrations/{integration}"; also the
// principal name of its tokens.
func IntegrationName(team, id string) string { return "teams/" + team + "/integrations/" + id }

// RunnerName is "runners/{runner}"; also the principal name of its tokens.
func RunnerName(id string) string { return "runners/" + id }

// RunName is "teams/{team}/runs/{run}".
func RunName(team, id string) string { return "teams/" + team + "/runs/" + id }

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

// UserID returns the id of a user principal, "" for any other.
func (p PrincipalRef) UserID() string {
	if p.Kind != auth.KindUser {
		return ""
	}
	id, _ := strings.CutPrefix(p.Name, "users/")
	return id
}

// AgentID returns the team and id of an agent principal, "" for any other.
func (p PrincipalRef) AgentID() (team, id string) {
	if p.Kind != auth.KindAgent {
		return "", ""
	}
	rest, _ := strings.CutPrefix(p.Name, "teams/")
	team, id, _ = strings.Cut(rest, "/agents/")
	return team, id
}

// IntegrationID returns the team and id of an integration principal, ""
// for any other.
func (p PrincipalRef) IntegrationID() (team, id string) {
	if p.Kind != auth.KindIntegration {
		return "", ""
	}
	rest, _ := strings.CutPrefix(p.Name, "teams/")
	team, id, _ = strings.Cut(rest, "/integrations/")
	return team, id
}

// RunnerID returns the id of a runner principal, "" for any other.
func (p PrincipalRef) RunnerID() string {
	if p.Kind != auth.KindRunner {
		return ""
	}
	id, _ := strings.CutPrefix(p.Name, "runners/")
	return id
}

// Opaque credentials: bearer tokens ("oz_…") and start tickets ("ozt_…")
// share one shape,
//
//	<prefix><id>_<secret>
//
// where the id is 16 lowercase hexadecimal digits (64 random bits; shown
// in lists, used to revoke) and the secret is 32 random bytes in unpadded
// URL-safe base64 (43 characters, 256 bits). Only the SHA-256 of the whole
// credential (auth.TokenKey) is stored; embedding the id finds the record
// with one read, and the hashes are compared in constant time.
const (
	opaqueIDBytes     = 8
	opaqueIDLen       = 2 * opaqueIDBytes
	opaqueSecretBytes = 32
	opaqueSecretLen   = 43 // base64.RawURLEncoding.EncodedLen(opaqueSecretBytes)
)

// OpaqueLen is the length of a credential of NewOpaque(prefix).
func OpaqueLen(prefix string) int { return len(prefix) + opaqueIDLen + 1 + opaqueSecretLen }

// ValidTokenID reports whether id has the shape of a token (or ticket) id.
func ValidTokenID(id string) bool {
	if len(id) != opaqueIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// TokenIDRule says what a token id is, for error messages.
const TokenIDRule = "must be 16 lowercase hexadecimal digits"

// NewOpaque returns a fresh id and credential of the shape above, with
// prefix: "{prefix}{id}_{secret}".
func NewOpaque(prefix string) (id, opaque string) {
	var b [opaqueIDBytes + opaqueSecretBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	id = hex.EncodeToString(b[:opaqueIDBytes])
	return id, prefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[opaqueIDBytes:])
}

// ParseOpaque returns the id embedded in a well-formed NewOpaque(prefix).
func ParseOpaque(prefix, s string) (string, bool) {
	if len(s) != OpaqueLen(prefix) || !strings.HasPrefix(s, prefix) {
		return "", false
	}
	rest := s[len(prefix):]
	id, secret := rest[:opaqueIDLen], rest[opaqueIDLen+1:]
	if rest[opaqueIDLen] != '_' || !ValidTokenID(id) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}
