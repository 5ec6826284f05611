package cmdutil_test

import (
	"slices"
	"testing"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// TestEnumKeys pins what the commands print for machines: EnumKey keeps
// the keys the switches they replaced printed.
func TestEnumKeys(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"DecisionInjected", cmdutil.DecisionKey(scopev1.Decision_DECISION_INJECTED), "injected"},
		{"DecisionNotInAllowlist", cmdutil.DecisionKey(scopev1.Decision_DECISION_EXCLUDED_NOT_IN_ALLOWLIST), "excluded_not_in_allowlist"},
		{"DecisionRestricted", cmdutil.DecisionKey(scopev1.Decision_DECISION_EXCLUDED_RESTRICTED), "excluded_restricted"},
		{"DecisionOverridden", cmdutil.DecisionKey(scopev1.Decision_DECISION_EXCLUDED_OVERRIDDEN), "excluded_overridden"},
		{"DecisionUnknown", cmdutil.DecisionKey(scopev1.Decision(99)), "unspecified"},
		{"ReasonNotFound", cmdutil.ReasonKey(scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND), "not_found"},
		{"ReasonRestricted", cmdutil.ReasonKey(scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED), "restricted"},
		{"OutcomeResolved", cmdutil.OutcomeKey(scopev1.RunOutcome_RUN_OUTCOME_RESOLVED), "resolved"},
		{"OutcomeFailedStrict", cmdutil.OutcomeKey(scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT), "failed_strict"},
		{"OutcomeNone", cmdutil.OutcomeKey(scopev1.RunOutcome_RUN_OUTCOME_UNSPECIFIED), "unspecified"},
		{"AllowlistNone", cmdutil.AllowlistSourceKey(scopev1.AllowlistSource_ALLOWLIST_SOURCE_NONE), "none"},
		{"AllowlistRun", cmdutil.AllowlistSourceKey(scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN), "run"},
		{"AllowlistEnvironment", cmdutil.AllowlistSourceKey(scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT), "environment"},
		{"ScopeTeam", cmdutil.SecretScopeName(scopev1.SecretScope_SECRET_SCOPE_TEAM), "team"},
		{"ScopePersonal", cmdutil.SecretScopeName(scopev1.SecretScope_SECRET_SCOPE_PERSONAL), "personal"},
		{"ScopeNone", cmdutil.SecretScopeName(scopev1.SecretScope_SECRET_SCOPE_UNSPECIFIED), "unknown"},
		{"RunStateStarted", cmdutil.RunStateKey(scopev1.RunState_RUN_STATE_STARTED), "started"},
		{"RunStateResolved", cmdutil.RunStateKey(scopev1.RunState_RUN_STATE_RESOLVED), "in_flight"},
		{"RunStateExpired", cmdutil.RunStateKey(scopev1.RunState_RUN_STATE_EXPIRED), "expired"},
		{"RunStateUnknown", cmdutil.RunStateKey(scopev1.RunState(42)), "unspecified"},
		{"ValueStateRotated", cmdutil.ValueStateKey(scopev1.InjectedValueState_INJECTED_VALUE_STATE_ROTATED), "rotated"},
		{"ValueStateNone", cmdutil.ValueStateKey(scopev1.InjectedValueState_INJECTED_VALUE_STATE_UNSPECIFIED), ""},
		{"StartPolicyAdmins", cmdutil.StartPolicyKey(scopev1.StartPolicy_START_POLICY_ADMINS), "admins"},
		{"StartPolicyMembers", cmdutil.StartPolicyKey(scopev1.StartPolicy_START_POLICY_MEMBERS), "members"},
		{"KindIntegration", cmdutil.Kind(scopev1.PrincipalKind_PRINCIPAL_KIND_INTEGRATION), "integration"},
		{"KindUnknown", cmdutil.Kind(scopev1.PrincipalKind(9)), "unknown"},
		{"RoleAdmin", cmdutil.Role(scopev1.Role_ROLE_ADMIN), "admin"},
		{"RoleNone", cmdutil.Role(scopev1.Role_ROLE_UNSPECIFIED), "unknown"},
		{"TriggerSchedule", cmdutil.TriggerName(scopev1.Trigger_TRIGGER_SCHEDULE), "schedule"},
		{"TriggerNone", cmdutil.TriggerName(scopev1.Trigger_TRIGGER_UNSPECIFIED), ""},
		{"TriggerUnknown", cmdutil.TriggerName(scopev1.Trigger(77)), "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseTriggers(t *testing.T) {
	if got, want := cmdutil.TriggerNames(), []string{"cli", "slack", "linear", "web", "api", "schedule", "integration"}; !slices.Equal(got, want) {
		t.Errorf("TriggerNames() = %v, want %v", got, want)
	}
	if got, want := cmdutil.IntegrationTriggerNames(), []string{"slack", "linear", "schedule", "integration"}; !slices.Equal(got, want) {
		t.Errorf("IntegrationTriggerNames() = %v, want %v", got, want)
	}
	if got, err := cmdutil.ParseTrigger("web"); err != nil || got != scopev1.Trigger_TRIGGER_WEB {
		t.Errorf("ParseTrigger(web) = %v, %v; want TRIGGER_WEB", got, err)
	}
	_, err := cmdutil.ParseIntegrationTrigger("cli")
	if want := `--trigger: must be one of slack, linear, schedule, integration (got "cli"); people start cli, web and api runs themselves`; err == nil || err.Error() != want {
		t.Errorf("ParseIntegrationTrigger(cli): got %v, want %q", err, want)
	}
	_, err = cmdutil.ParseTrigger("")
	if want := "--trigger is required (cli, slack, linear, web, api, schedule, integration)"; err == nil || err.Error() != want {
		t.Errorf("ParseTrigger(\"\"): got %v, want %q", err, want)
	}
}
