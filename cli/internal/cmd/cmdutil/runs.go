package cmdutil

import (
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// OtherUsersSecret stands for a secret the caller may not see by name:
// another user's personal secret in a run record.
const OtherUsersSecret = "(personal secret of another user)"

var triggers = []struct {
	name string
	t    scopev1.Trigger
}{
	{"cli", scopev1.Trigger_TRIGGER_CLI},
	{"slack", scopev1.Trigger_TRIGGER_SLACK},
	{"linear", scopev1.Trigger_TRIGGER_LINEAR},
	{"web", scopev1.Trigger_TRIGGER_WEB},
	{"api", scopev1.Trigger_TRIGGER_API},
	{"schedule", scopev1.Trigger_TRIGGER_SCHEDULE},
	{"integration", scopev1.Trigger_TRIGGER_INTEGRATION},
}

// TriggerNames lists the values of --trigger, user-initiated first.
func TriggerNames() []string {
	out := make([]string, 0, len(triggers))
	for _, t := range triggers {
		out = append(out, t.name)
	}
	return out
}

// ParseTrigger parses the value of --trigger: one of TriggerNames. Empty
// or anything else is a usage error that lists the valid values.
func ParseTrigger(s string) (scopev1.Trigger, error) {
	valid := strings.Join(TriggerNames(), ", ")
	if s == "" {
		return 0, exitcode.Usagef("--trigger is required (%s)", valid)
	}
	for _, t := range triggers {
		if t.name == s {
			return t.t, nil
		}
	}
	return 0, exitcode.Usagef("--trigger: must be one of %s (got %q)", valid, s)
}

// TriggerName renders a trigger as --trigger takes it; "" for none.
func TriggerName(t scopev1.Trigger) string {
	for _, tr := range triggers {
		if tr.t == t {
			return tr.name
		}
	}
	if t == scopev1.Trigger_TRIGGER_UNSPECIFIED {
		return ""
	}
	return "unknown"
}

// SecretScopeName renders where an injected or candidate secret came
// from: "team" or "personal".
func SecretScopeName(s scopev1.SecretScope) string {
	switch s {
	case scopev1.SecretScope_SECRET_SCOPE_TEAM:
		return "team"
	case scopev1.SecretScope_SECRET_SCOPE_PERSONAL:
		return "personal"
	}
	return "unknown"
}

// ReasonName renders why a reference is unresolved, for people.
func ReasonName(r scopev1.UnresolvedReason) string {
	switch r {
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND:
		return "not found"
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED:
		return "restricted to other agent identities"
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_RESERVED:
		return "reserved name: never injected"
	}
	return "unresolved"
}

// ReasonKey renders why a reference is unresolved, for machines:
// "not_found", "restricted", "reserved".
func ReasonKey(r scopev1.UnresolvedReason) string {
	switch r {
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND:
		return "not_found"
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED:
		return "restricted"
	case scopev1.UnresolvedReason_UNRESOLVED_REASON_RESERVED:
		return "reserved"
	}
	return "unspecified"
}

// OutcomeKey renders a run's outcome: "resolved", "failed_strict".
func OutcomeKey(o scopev1.RunOutcome) string {
	switch o {
	case scopev1.RunOutcome_RUN_OUTCOME_RESOLVED:
		return "resolved"
	case scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT:
		return "failed_strict"
	}
	return "unspecified"
}

// AllowlistSourceKey renders where a run's allowlist came from: "none",
// "run", "environment".
func AllowlistSourceKey(s scopev1.AllowlistSource) string {
	switch s {
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_NONE:
		return "none"
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN:
		return "run"
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT:
		return "environment"
	}
	return "unspecified"
}

// DecisionKey renders one candidate's fate: "injected",
// "excluded_not_in_allowlist", "excluded_restricted",
// "excluded_overridden", "excluded_reserved".
func DecisionKey(d scopev1.Decision) string {
	switch d {
	case scopev1.Decision_DECISION_INJECTED:
		return "injected"
	case scopev1.Decision_DECISION_EXCLUDED_NOT_IN_ALLOWLIST:
		return "excluded_not_in_allowlist"
	case scopev1.Decision_DECISION_EXCLUDED_RESTRICTED:
		return "excluded_restricted"
	case scopev1.Decision_DECISION_EXCLUDED_OVERRIDDEN:
		return "excluded_overridden"
	case scopev1.Decision_DECISION_EXCLUDED_RESERVED:
		return "excluded_reserved"
	}
	return "unspecified"
}
