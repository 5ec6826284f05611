// Package run implements `oz run`: explain which secrets a run would
// receive and why, and read the records of past runs. Nothing here
// returns a value: run records hold names, scopes and versions only.
package run

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// NewCmd returns the `oz run` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "run",
		Aliases: []string{"runs"},
		Usage:   "Explain run resolution and read run records",
		Description: `At run start a runner resolves the run's secrets (oz exec): the team's secrets,
plus the triggering user's personal ones for user-initiated triggers; team
secrets referenced by agent identities only for runs executing as one of them;
then the allowlist: the run's own list (--secret, or --no-secrets for an empty
one), else the environment's, else none. A personal secret overrides a team
secret of the same name. Allowlisted names that resolve to nothing are
unresolved references; a strict run fails on them.

oz run explain makes the same decision without values and says why for every
secret; oz run show and oz run list read the records of past runs. Any member
of the team may use them. Another user's personal secrets show as
"` + cmdutil.OtherUsersSecret + `".

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.`,
		Subcommands: []*cli.Command{
			newExplainCmd(f),
			newShowCmd(f),
			newListCmd(f),
		},
	}
}

// Deps are what every run command needs.
type Deps struct {
	IO      *iostreams.IOStreams
	Connect func(context.Context) (*client.Conn, error)
	Now     func() time.Time
	// Team is the chosen team; empty: the caller's only team.
	Team string
}

func depsOf(f *cmdutil.Factory, c *cli.Context) (Deps, error) {
	team, err := f.CommandTeam(c)
	if err != nil {
		return Deps{}, err
	}
	return Deps{IO: f.IO, Connect: f.Connector(), Now: f.Now, Team: team}, nil
}

// connect dials the gateway and resolves the team; team, when not empty,
// takes the place of the chosen one.
func (d Deps) connect(ctx context.Context, team string) (*client.Conn, string, error) {
	conn, err := d.Connect(ctx)
	if err != nil {
		return nil, "", err
	}
	team, err = cmdutil.ResolveTeamFlag(ctx, conn.Directory, cmp.Or(team, d.Team))
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return conn, team, nil
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
}

// Unresolved is an unresolved reference as --output json prints it.
type Unresolved struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // "not_found", "restricted"
	Detail string `json:"detail"`
}

// Record is a run record as --output json prints it. Secrets is the run's
// own list: null when the run gave none, [] for an empty one.
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
		}
		if it.Redacted {
			it.Name = "" // even if the server sent one
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

func reasonText(key string) string {
	switch key {
	case "not_found":
		return cmdutil.ReasonName(scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND)
	case "restricted":
		return cmdutil.ReasonName(scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED)
	}
	return "unresolved"
}

// at renders a time for people in the location of now; "-" for none.
func at(ts *timestamppb.Timestamp, now func() time.Time) string {
	if ts == nil {
		return "-"
	}
	return timefmt.Absolute(ts.AsTime(), now().Location())
}
