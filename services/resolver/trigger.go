package resolver

// Trigger is what started a run (DESIGN §5.0): integrations start runs of
// one trigger, and every run records its own. The values are those of the
// wire enum oz.scope.v1.Trigger.
type Trigger int

const (
	TriggerCLI Trigger = iota + 1
	TriggerSlack
	TriggerLinear
	TriggerWeb
	TriggerAPI
	TriggerSchedule
	TriggerIntegration
)

var triggerNames = []string{"", "cli", "slack", "linear", "web", "api", "schedule", "integration"}

// Triggers lists every trigger, user-initiated ones first.
var Triggers = []Trigger{TriggerCLI, TriggerSlack, TriggerLinear, TriggerWeb, TriggerAPI, TriggerSchedule, TriggerIntegration}

// Valid reports whether t is one of Triggers.
func (t Trigger) Valid() bool { return t >= TriggerCLI && t <= TriggerIntegration }

// String is the trigger's lowercase name ("cli", "schedule"), "unknown"
// for an invalid one.
func (t Trigger) String() string {
	if !t.Valid() {
		return "unknown"
	}
	return triggerNames[t]
}

// UserInitiated reports whether t carries the triggering user (cli, slack,
// linear, web, api); the others (schedule, integration) carry none.
func (t Trigger) UserInitiated() bool { return t >= TriggerCLI && t <= TriggerAPI }

// ParseTrigger is the trigger named s (its String), zero for none.
func ParseTrigger(s string) Trigger {
	for _, t := range Triggers {
		if t.String() == s {
			return t
		}
	}
	return 0
}

// TriggerRule says what a trigger may be, for error messages.
const TriggerRule = "must be one of cli, slack, linear, web, api (user-initiated) or schedule, integration (user-less)"
