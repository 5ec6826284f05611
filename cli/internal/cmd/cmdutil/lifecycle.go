package cmdutil

import (
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// RunStateKey renders where a run is in its life, for machines:
// "started" (its ticket waits for a runner), "in_flight" (resolved, its
// end not reported yet), "ended", "failed" (strict: nothing handed out),
// "expired" (the ticket was never redeemed); "unspecified" from a server
// that does not say.
func RunStateKey(s scopev1.RunState) string {
	if s == scopev1.RunState_RUN_STATE_RESOLVED {
		return "in_flight"
	}
	return EnumKey(s, "unspecified")
}

// RunStateName renders a run's state for people: "started", "in flight",
// "ended", "failed", "expired"; "-" when the server does not say.
func RunStateName(s scopev1.RunState) string {
	if s == scopev1.RunState_RUN_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.ReplaceAll(RunStateKey(s), "_", " ")
}

// ValueStateKey renders whether a run in flight still holds an injected
// secret's current value: "current", "rotated" (rotated since), "deleted"
// (deleted since); "" when not checked (the run is not in flight, or the
// entry is redacted).
func ValueStateKey(s scopev1.InjectedValueState) string { return EnumKey(s, "") }

// Stale reports whether s says a run holds a value that is no longer the
// secret's current one: rotated or deleted since the run received it.
func Stale(s scopev1.InjectedValueState) bool {
	return s == scopev1.InjectedValueState_INJECTED_VALUE_STATE_ROTATED ||
		s == scopev1.InjectedValueState_INJECTED_VALUE_STATE_DELETED
}

// StartPolicyFlag is the flag that sets an agent identity's start policy.
const StartPolicyFlag = "start-policy"

// ParseStartPolicy parses --start-policy: "admins" or "members".
func ParseStartPolicy(s string) (scopev1.StartPolicy, error) {
	switch s {
	case "admins":
		return scopev1.StartPolicy_START_POLICY_ADMINS, nil
	case "members":
		return scopev1.StartPolicy_START_POLICY_MEMBERS, nil
	}
	return 0, exitcode.Usagef("--%s: must be admins or members (got %q)", StartPolicyFlag, s)
}

// StartPolicyKey renders an agent identity's start policy as
// --start-policy takes it: "admins", "members"; "unspecified" from a
// server that does not say.
func StartPolicyKey(p scopev1.StartPolicy) string { return EnumKey(p, "unspecified") }

// PrincipalText renders a principal's resource name for people:
// "users/alice" is "alice", "teams/acme/agents/deployer" is "agent
// deployer", "teams/acme/integrations/slack-bot" is "integration
// slack-bot", "runners/ci" is "runner ci"; anything else as it is, and
// "-" for none.
func PrincipalText(name string) string {
	parts := strings.Split(name, "/")
	switch {
	case name == "":
		return "-"
	case len(parts) == 2 && parts[0] == "users":
		return parts[1]
	case len(parts) == 2 && parts[0] == "runners":
		return "runner " + parts[1]
	case len(parts) == 4 && parts[0] == "teams" && parts[2] == "agents":
		return "agent " + parts[3]
	case len(parts) == 4 && parts[0] == "teams" && parts[2] == "integrations":
		return "integration " + parts[3]
	}
	return name
}
