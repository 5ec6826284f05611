package cmdutil_test

import (
	"testing"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// TestEveryEnumValueHasAName renders every value of the enums the
// commands print, so that a value added to the API without a name here
// fails: no record prints "unspecified" or "unknown" for a real value.
func TestEveryEnumValueHasAName(t *testing.T) {
	tests := []struct {
		name   string
		values map[int32]string
		render func(int32) string
		none   string // what the zero value renders as
	}{
		{"DecisionKey", scopev1.Decision_name, func(v int32) string { return cmdutil.DecisionKey(scopev1.Decision(v)) }, "unspecified"},
		{"ReasonKey", scopev1.UnresolvedReason_name, func(v int32) string { return cmdutil.ReasonKey(scopev1.UnresolvedReason(v)) }, "unspecified"},
		{"ReasonName", scopev1.UnresolvedReason_name, func(v int32) string { return cmdutil.ReasonName(scopev1.UnresolvedReason(v)) }, "unresolved"},
		{"RunStateKey", scopev1.RunState_name, func(v int32) string { return cmdutil.RunStateKey(scopev1.RunState(v)) }, "unspecified"},
		{"RunStateName", scopev1.RunState_name, func(v int32) string { return cmdutil.RunStateName(scopev1.RunState(v)) }, "-"},
		{"ValueStateKey", scopev1.InjectedValueState_name, func(v int32) string { return cmdutil.ValueStateKey(scopev1.InjectedValueState(v)) }, ""},
		{"StartPolicyKey", scopev1.StartPolicy_name, func(v int32) string { return cmdutil.StartPolicyKey(scopev1.StartPolicy(v)) }, "unspecified"},
		{"Kind", scopev1.PrincipalKind_name, func(v int32) string { return cmdutil.Kind(scopev1.PrincipalKind(v)) }, "unknown"},
		{"TriggerName", scopev1.Trigger_name, func(v int32) string { return cmdutil.TriggerName(scopev1.Trigger(v)) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]int32{}
			for v, enum := range tt.values {
				got := tt.render(v)
				if v == 0 {
					if got != tt.none {
						t.Errorf("%s(%s) = %q, want %q", tt.name, enum, got, tt.none)
					}
					continue
				}
				if got == tt.none || got == "unknown" || got == "unspecified" {
					t.Errorf("%s(%s) = %q, want a name of its own", tt.name, enum, got)
				}
				if w, dup := seen[got]; dup {
					t.Errorf("%s renders %s and %s alike: %q", tt.name, enum, tt.values[w], got)
				}
				seen[got] = v
			}
		})
	}
}

func TestReservedNames(t *testing.T) {
	if got := cmdutil.DecisionKey(scopev1.Decision_DECISION_EXCLUDED_RESERVED); got != "excluded_reserved" {
		t.Errorf("got %q, want excluded_reserved", got)
	}
	if got := cmdutil.ReasonKey(scopev1.UnresolvedReason_UNRESOLVED_REASON_RESERVED); got != "reserved" {
		t.Errorf("got %q, want reserved", got)
	}
	if got := cmdutil.RunStateName(scopev1.RunState_RUN_STATE_RESOLVED); got != "in flight" {
		t.Errorf("got %q, want in flight", got)
	}
}

func TestParseStartPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    scopev1.StartPolicy
		wantErr bool
	}{
		{"admins", scopev1.StartPolicy_START_POLICY_ADMINS, false},
		{"members", scopev1.StartPolicy_START_POLICY_MEMBERS, false},
		{"", 0, true},
		{"admin", 0, true},
		{"MEMBERS", 0, true},
	}
	for _, tt := range tests {
		got, err := cmdutil.ParseStartPolicy(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseStartPolicy(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if _, code := exitcode.Describe(err); err != nil && code != exitcode.Usage {
			t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
		}
	}
}

func TestParseIntegrationTrigger(t *testing.T) {
	for _, ok := range []string{"slack", "linear", "schedule", "integration"} {
		if got, err := cmdutil.ParseIntegrationTrigger(ok); err != nil || cmdutil.TriggerName(got) != ok {
			t.Errorf("ParseIntegrationTrigger(%q) = %v, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"", "cli", "web", "api", "cron"} {
		_, err := cmdutil.ParseIntegrationTrigger(bad)
		if _, code := exitcode.Describe(err); code != exitcode.Usage {
			t.Errorf("ParseIntegrationTrigger(%q): got exit code %d (%v), want %d", bad, code, err, exitcode.Usage)
		}
	}
}

func TestPrincipalText(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "-",
		"users/alice":                       "alice",
		"runners/ci":                        "runner ci",
		"teams/acme/agents/deployer":        "agent deployer",
		"teams/acme/integrations/slack-bot": "integration slack-bot",
		"teams/acme":                        "teams/acme",
		"system":                            "system",
	} {
		if got := cmdutil.PrincipalText(in); got != want {
			t.Errorf("PrincipalText(%q) = %q, want %q", in, got, want)
		}
	}
}
