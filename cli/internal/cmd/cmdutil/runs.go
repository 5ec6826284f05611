package cmdutil

import (
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// OtherUsersSecret stands for a secret the caller may not see by name:
// another user's personal secret in a run record.
const OtherUsersSecret = "(personal secret of another user)"

// triggers are the values of --trigger, user-initiated first.
var triggers = []scopev1.Trigger{
	scopev1.Trigger_TRIGGER_CLI,
	scopev1.Trigger_TRIGGER_SLACK,
	scopev1.Trigger_TRIGGER_LINEAR,
	scopev1.Trigger_TRIGGER_WEB,
	scopev1.Trigger_TRIGGER_API,
	scopev1.Trigger_TRIGGER_SCHEDULE,
	scopev1.Trigger_TRIGGER_INTEGRATION,
}

// TriggerNames lists the values of --trigger, user-initiated first.
func TriggerNames() []string { return triggerNames(triggers) }

// ParseTrigger parses the value of --trigger: one of TriggerNames. Empty
// or anything else is a usage error that lists the valid values.
func ParseTrigger(s string) (scopev1.Trigger, error) { return parseTrigger(s, triggers, "") }

func triggerNames(among []scopev1.Trigger) []string {
	out := make([]string, 0, len(among))
	for _, t := range among {
		out = append(out, TriggerName(t))
	}
	return out
}

// parseTrigger parses --trigger, one of among; a usage error lists them,
// and ends with hint when it refuses a value.
func parseTrigger(s string, among []scopev1.Trigger, hint string) (scopev1.Trigger, error) {
	valid := strings.Join(triggerNames(among), ", ")
	if s == "" {
		return 0, exitcode.Usagef("--trigger is required (%s)", valid)
	}
	for _, t := range among {
		if TriggerName(t) == s {
			return t, nil
		}
	}
	return 0, exitcode.Usagef("--trigger: must be one of %s (got %q)%s", valid, s, hint)
}

// TriggerName renders a trigger as --trigger takes it; "" for none.
func TriggerName(t scopev1.Trigger) string {
	if t == scopev1.Trigger_TRIGGER_UNSPECIFIED {
		return ""
	}
	return EnumKey(t, "unknown")
}

// SecretScopeName renders where an injected or candidate secret came
// from: "team" or "personal".
func SecretScopeName(s scopev1.SecretScope) string { return EnumKey(s, "unknown") }

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
func ReasonKey(r scopev1.UnresolvedReason) string { return EnumKey(r, "unspecified") }

// OutcomeKey renders a run's outcome: "resolved", "failed_strict".
func OutcomeKey(o scopev1.RunOutcome) string { return EnumKey(o, "unspecified") }

// AllowlistSourceKey renders where a run's allowlist came from: "none",
// "run", "environment".
func AllowlistSourceKey(s scopev1.AllowlistSource) string { return EnumKey(s, "unspecified") }

// DecisionKey renders one candidate's fate: "injected",
// "excluded_not_in_allowlist", "excluded_restricted",
// "excluded_overridden", "excluded_reserved".
func DecisionKey(d scopev1.Decision) string { return EnumKey(d, "unspecified") }
