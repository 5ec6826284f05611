// Package run implements `oz run`: explain which secrets a run would
// receive and why, and read the records of past runs. Nothing here
// returns a value: run records hold names, scopes and versions only.
package run

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// NewCmd returns the `oz run` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "run",
		Aliases: []string{"runs"},
		Usage:   "Start runs, explain run resolution and read run records",
		Description: `At run start a runner resolves the run's secrets (oz exec): the team's secrets,
plus the triggering user's personal ones for user-initiated triggers; team
secrets referenced by agent identities only for runs executing as one of them;
then the allowlist: the run's own list (--secret, or --no-secrets for an empty
one), else the environment's, else none. A personal secret overrides a team
secret of the same name. Allowlisted names that resolve to nothing are
unresolved references; a strict run fails on them.

oz run start starts a run: it fixes the run's context and prints a start
ticket that a runner redeems once (oz exec --ticket-env VAR). oz run explain
makes the same decision without values and says why for every secret; oz run
show and oz run list read the records of runs, with where each one is
(started, in flight, ended, failed, expired). Any member of the team may use
them. Another user's personal secrets show as "

Example:
   oz run start --environment ops-tools
   oz run list --in-flight` + cmdutil.OtherUsersSecret + `".

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.`,
		Subcommands: []*cli.Command{
			newStartCmd(f),
			newExplainCmd(f),
			newShowCmd(f),
			newListCmd(f),
		},
	}
}

// runContext is the context a run starts in, or would, as oz run start
// and oz run explain take it.
type runContext struct {
	Trigger     scopev1.Trigger
	User        string // "users/{user}", or empty
	Agent       string
	Environment string
	// Secrets is the run's own list: nil for none (absent on the wire),
	// non-nil and empty for --no-secrets.
	Secrets []string
	Strict  bool
}

// runContextOf reads the context of a run from --trigger (required, or
// unspecified unless given), --user, --agent, --environment, --secret or
// --no-secrets, and --strict.
func runContextOf(c *cli.Context, triggerRequired bool) (runContext, error) {
	var trigger scopev1.Trigger
	if triggerRequired || c.IsSet("trigger") {
		t, err := cmdutil.ParseTrigger(c.String("trigger"))
		if err != nil {
			return runContext{}, err
		}
		trigger = t
	}
	rc := runContext{
		Trigger:     trigger,
		User:        userName(c.String("user")),
		Agent:       c.String("agent"),
		Environment: c.String("environment"),
		Strict:      c.Bool("strict"),
	}
	switch {
	case c.Bool("no-secrets") && c.IsSet("secret"):
		return runContext{}, exitcode.Usagef("--secret and --no-secrets cannot be used together")
	case c.Bool("no-secrets"):
		rc.Secrets = []string{}
	case c.IsSet("secret"):
		rc.Secrets = c.StringSlice("secret")
	}
	return rc, nil
}

// proto returns rc as the API takes it.
func (rc runContext) proto() *scopev1.RunContext {
	out := &scopev1.RunContext{
		Trigger:     rc.Trigger,
		User:        rc.User,
		Agent:       rc.Agent,
		Environment: rc.Environment,
		Strict:      rc.Strict,
	}
	if rc.Secrets != nil {
		out.Secrets = &scopev1.SecretNameList{Names: slices.Clone(rc.Secrets)}
	}
	return out
}

// userName returns the resource name of --user: "users/{user}".
func userName(u string) string {
	if u == "" || strings.HasPrefix(u, "users/") {
		return u
	}
	return "users/" + u
}

// Injected is an injected secret as --output json prints it. A redacted
// entry (another user's personal secret) has no name.
type Injected struct {
	Name                string `json:"name"`
	Scope               string `json:"scope"`
	Owner               string `json:"owner"`
	ValueVersion        int64  `json:"value_version"`
	OverridesTeamSecret bool   `json:"overrides_team_secret"`
	Redacted            bool   `json:"redacted"`
	// ValueState, for a run in flight: "current", "rotated" (rotated since
	// the run received it), "deleted" (deleted since); "" when not checked.
	ValueState string `json:"value_state"`
	// Binding is the secret's binding to hosts when the run received it
	// (the agent got a placeholder, the runner's egress proxy the value);
	// null when it was not bound, and for a redacted entry.
	Binding *Binding `json:"binding"`
}

// bindingOf is b for --output json and people; nil when b binds to no
// host.
func bindingOf(b *secretsv1.HostBinding) *Binding {
	if len(b.GetHosts()) == 0 {
		return nil
	}
	return &Binding{Hosts: b.GetHosts(), AllowQuery: b.GetAllowQuery(), AllowBody: b.GetAllowBody()}
}

// Binding is an injected secret's binding to hosts as --output json
// prints it (the shape of oz secret list's).
type Binding struct {
	Hosts      []string `json:"hosts"`
	AllowQuery bool     `json:"allow_query"`
	AllowBody  bool     `json:"allow_body"`
}

// Egress is what a run's egress proxy did for one host, as --output json
// prints it.
type Egress struct {
	Host          string `json:"host"`
	Substitutions int64  `json:"substitutions"` // placeholders replaced by values in requests to it
	Denials       int64  `json:"denials"`       // requests to it refused
}

// Unresolved is an unresolved reference as --output json prints it.
type Unresolved struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // "not_found", "restricted", "reserved"
	Detail string `json:"detail"`
}

// End is how a run's command ended, as its runner reported it.
type End struct {
	ExitCode        int32   `json:"exit_code"`
	Signal          int32   `json:"signal"` // the signal that killed it; 0 for none
	DurationSeconds float64 `json:"duration_seconds"`
	// Egress is what the runner's egress proxy did, per host, when the run
	// had host-bound secrets or an egress allowlist; [] otherwise.
	Egress []Egress `json:"egress"`
}

// Record is a run record as --output json prints it. Secrets is the run's
// own list: null when the run gave none, [] for an empty one. State is
// "started", "in_flight", "ended", "failed" or "expired"; StartedBy
// "users/{user}", "teams/{team}/agents/{agent}" or
// "teams/{team}/integrations/{integration}". Times are empty until the run
// gets there; End is null until the runner reports the end.
// HoldsStaleValues: in flight and holding a value rotated or deleted since
// (see each injected secret's value_state).
type Record struct {
	ID              string       `json:"id"`
	ResourceName    string       `json:"resource_name"`
	Team            string       `json:"team"`
	CreatedAt       string       `json:"created_at"`
	Trigger         string       `json:"trigger"`
	User            string       `json:"user"`
	Agent           string       `json:"agent"`
	Environment     string       `json:"environment"`
	Secrets         []string     `json:"secrets"`
	Strict          bool         `json:"strict"`
	ResolvedBy      string       `json:"resolved_by"`
	Outcome         string       `json:"outcome"`
	AllowlistSource string       `json:"allowlist_source"`
	Injected        []Injected   `json:"injected"`
	Unresolved      []Unresolved `json:"unresolved"`

	State            string `json:"state"`
	StartedBy        string `json:"started_by"`
	TicketExpiresAt  string `json:"ticket_expires_at"`
	ResolvedAt       string `json:"resolved_at"`
	EndedAt          string `json:"ended_at"`
	End              *End   `json:"end"`
	HoldsStaleValues bool   `json:"holds_stale_values"`
}

func newRecord(r *scopev1.Run) Record {
	rc := r.GetContext()
	rec := Record{
		ID:              r.GetRunId(),
		ResourceName:    r.GetName(),
		CreatedAt:       cmdutil.RFC3339(r.GetCreateTime()),
		Trigger:         cmdutil.TriggerName(rc.GetTrigger()),
		User:            rc.GetUser(),
		Agent:           cmp.Or(r.GetAgent(), rc.GetAgent()),
		Environment:     rc.GetEnvironment(),
		Secrets:         secretList(rc.GetSecrets()),
		Strict:          rc.GetStrict(),
		ResolvedBy:      r.GetResolvedBy(),
		Outcome:         cmdutil.OutcomeKey(r.GetOutcome()),
		AllowlistSource: cmdutil.AllowlistSourceKey(r.GetAllowlistSource()),
		Injected:        []Injected{},
		Unresolved:      unresolvedItems(r.GetUnresolved()),

		State:            cmdutil.RunStateKey(r.GetState()),
		StartedBy:        r.GetStartedBy(),
		TicketExpiresAt:  cmdutil.RFC3339(r.GetTicketExpireTime()),
		ResolvedAt:       cmdutil.RFC3339(r.GetResolveTime()),
		EndedAt:          cmdutil.RFC3339(r.GetEndTime()),
		HoldsStaleValues: r.GetHoldsStaleValues(),
	}
	if e := r.GetEnd(); e != nil {
		rec.End = &End{ExitCode: e.GetExitCode(), Signal: e.GetSignal(), DurationSeconds: e.GetDuration().AsDuration().Seconds(), Egress: []Egress{}}
		for _, g := range e.GetEgress() {
			rec.End.Egress = append(rec.End.Egress, Egress{Host: g.GetHost(), Substitutions: g.GetSubstitutions(), Denials: g.GetDenials()})
		}
	}
	if owner, id, ok := strings.Cut(r.GetName(), "/runs/"); ok {
		rec.ID = cmp.Or(rec.ID, id)
		rec.Team = strings.TrimPrefix(owner, "teams/")
	}
	for _, in := range r.GetInjected() {
		it := Injected{
			Name:                in.GetSecretName(),
			Scope:               cmdutil.SecretScopeName(in.GetScope()),
			Owner:               in.GetOwner(),
			ValueVersion:        in.GetValueVersion(),
			OverridesTeamSecret: in.GetOverridesTeamSecret(),
			Redacted:            in.GetRedacted(),
			ValueState:          cmdutil.ValueStateKey(in.GetValueState()),
		}
		it.Binding = bindingOf(in.GetBinding())
		if it.Redacted {
			it.Name, it.Binding = "", nil // even if the server sent them
		}
		rec.Injected = append(rec.Injected, it)
	}
	return rec
}

// secretList returns a run's own list: nil when absent, non-nil (maybe
// empty) when present.
func secretList(l *scopev1.SecretNameList) []string {
	if l == nil {
		return nil
	}
	return append([]string{}, l.GetNames()...)
}

func unresolvedItems(us []*scopev1.UnresolvedReference) []Unresolved {
	out := make([]Unresolved, 0, len(us))
	for _, u := range us {
		out = append(out, Unresolved{Name: u.GetSecretName(), Reason: cmdutil.ReasonKey(u.GetReason()), Detail: u.GetDetail()})
	}
	return out
}

// displayName is a secret's name for people.
func displayName(name string, redacted bool) string {
	if redacted || name == "" {
		return cmdutil.OtherUsersSecret
	}
	return name
}

// runListText renders a run's own list for people.
func runListText(secrets []string) string {
	switch {
	case secrets == nil:
		return "-"
	case len(secrets) == 0:
		return "(empty list: nothing is injected)"
	}
	return strings.Join(secrets, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func outcomeText(o scopev1.RunOutcome) string {
	switch o {
	case scopev1.RunOutcome_RUN_OUTCOME_RESOLVED:
		return "resolved"
	case scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT:
		return "failed (strict run with unresolved references: nothing was injected)"
	}
	return "unknown"
}

// stateText renders a run's state for people, marking a run in flight
// that holds a value rotated or deleted since: "in flight (stale)".
func stateText(r *scopev1.Run) string {
	s := cmdutil.RunStateName(r.GetState())
	if r.GetHoldsStaleValues() {
		s += " " + staleMarker
	}
	return s
}

// staleMarker flags a run in flight holding stale values.
const staleMarker = "(stale)"

// exitText renders how a run's command ended: its exit status, and the
// signal that killed it; "-" until the runner reports the end.
func exitText(e *scopev1.RunEnd) string {
	switch {
	case e == nil:
		return "-"
	case e.GetSignal() != 0:
		return fmt.Sprintf("%d (signal %d)", e.GetExitCode(), e.GetSignal())
	}
	return strconv.Itoa(int(e.GetExitCode()))
}

// durationText renders how long a run's command ran, to the second (to
// the millisecond under a second); "-" until the runner reports it.
func durationText(e *scopev1.RunEnd) string {
	if e.GetDuration() == nil {
		return "-"
	}
	d := e.GetDuration().AsDuration()
	if d >= time.Second {
		return shortDuration(d)
	}
	return d.Round(time.Millisecond).String()
}

// shortDuration renders d to the second without zero tails: "15m", "1h",
// "1m30s", "2h0m5s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// allowlistText says where the allowlist came from and what it holds.
func allowlistText(src scopev1.AllowlistSource, env string, names []string) string {
	list := strings.Join(names, ", ")
	switch src {
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_NONE:
		return "none: every candidate is injected"
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN:
		if len(names) == 0 {
			return "the run's list (empty: nothing is injected)"
		}
		return "the run's list" + suffix(list)
	case scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT:
		return "environment " + env + suffix(list)
	}
	return "unknown"
}

func suffix(list string) string {
	if list == "" {
		return ""
	}
	return ": " + list
}

// writeUnresolved prints the unresolved references as a table under a
// heading, or nothing when there are none.
func writeUnresolved(w io.Writer, us []Unresolved) error {
	if len(us) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Unresolved references:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREASON\tDETAIL")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, reasonText(u.Reason), cmdutil.OrDash(u.Detail))
	}
	return tw.Flush()
}

// reasonText renders a reason key (cmdutil.ReasonKey) for people.
func reasonText(key string) string {
	for v := range scopev1.UnresolvedReason_name {
		if r := scopev1.UnresolvedReason(v); r != scopev1.UnresolvedReason_UNRESOLVED_REASON_UNSPECIFIED && cmdutil.ReasonKey(r) == key {
			return cmdutil.ReasonName(r)
		}
	}
	return "unresolved"
}

// at renders a time in the location of now for a person at a terminal
// (tty), RFC 3339 in UTC for a script (timefmt.Date); "-" for none.
func at(ts *timestamppb.Timestamp, now func() time.Time, tty bool) string {
	if ts == nil {
		return "-"
	}
	return timefmt.Date(ts.AsTime(), now().Location(), tty)
}
