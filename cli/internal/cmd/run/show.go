package run

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// ShowOptions are the inputs of `oz run show`.
type ShowOptions struct {
	cmdutil.TeamDeps
	RunID  string // an id, or "teams/{team}/runs/{run}"
	Output cmdutil.Format
}

func newShowCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "Show a run's record: what it received and what it did not",
		ArgsUsage: "RUN_ID",
		Description: `RUN_ID is the run's id (oz run start and oz exec print it), or its
resource name teams/TEAM/runs/RUN_ID.

STATE is started, in flight, ended, failed or expired (see oz run list
--help). For a run in flight, each injected secret whose value was rotated, or
which was deleted, since the run received it is marked "rotated since" or
"deleted since": the run still holds the previous value. A secret bound to
hosts is marked "bound to" its host patterns: the agent got a placeholder, and
the runner's egress proxy put the value into requests to those hosts only. A
run whose runner reported what its egress proxy did lists, per host, the
placeholders it replaced (SUBSTITUTIONS) and the requests it refused
(DENIALS); each refused request is also a run.egress_denied audit event.

Example:
   oz run show slack-7f3a`,
		Flags: append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "RUN_ID")
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return runShow(c.Context, &ShowOptions{TeamDeps: d, RunID: args[0], Output: format})
		},
	}
}

// parseRunID splits a run's resource name into team and id; a bare id has
// no team.
func parseRunID(s string) (team, id string, err error) {
	if !strings.HasPrefix(s, "teams/") {
		return "", s, cmdutil.CheckName("RUN_ID", s)
	}
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[2] != "runs" || parts[1] == "" || parts[3] == "" {
		return "", "", exitcode.Usagef("RUN_ID: want an id or teams/TEAM/runs/RUN_ID (got %q)", s)
	}
	return parts[1], parts[3], nil
}

func runShow(ctx context.Context, opts *ShowOptions) error {
	team, id, err := parseRunID(opts.RunID)
	if err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, team)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Runs.GetRun(ctx, &scopev1.GetRunRequest{Name: "teams/" + team + "/runs/" + id})
	if err != nil {
		return err
	}
	rec := newRecord(resp.GetRun())
	rec.Team = team
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, rec)
	}
	return writeRecord(opts.TeamDeps, rec, resp.GetRun())
}

func writeRecord(d cmdutil.TeamDeps, rec Record, r *scopev1.Run) error {
	w := d.IO.Out
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "RUN\t%s\n", rec.ID)
	fmt.Fprintf(tw, "TEAM\t%s\n", rec.Team)
	fmt.Fprintf(tw, "TIME\t%s\n", at(r.GetCreateTime(), d.Now, d.IO.StdoutTTY))
	fmt.Fprintf(tw, "STATE\t%s\n", showStateText(r))
	fmt.Fprintf(tw, "TRIGGER\t%s\n", cmdutil.OrDash(rec.Trigger))
	fmt.Fprintf(tw, "USER\t%s\n", cmdutil.OrDash(rec.User))
	fmt.Fprintf(tw, "AGENT\t%s\n", cmdutil.OrDash(rec.Agent))
	fmt.Fprintf(tw, "ENVIRONMENT\t%s\n", cmdutil.OrDash(rec.Environment))
	fmt.Fprintf(tw, "RUN LIST\t%s\n", runListText(rec.Secrets))
	fmt.Fprintf(tw, "STRICT\t%s\n", yesNo(rec.Strict))
	fmt.Fprintf(tw, "STARTED BY\t%s\n", cmdutil.OrDash(rec.StartedBy))
	fmt.Fprintf(tw, "RESOLVED BY\t%s\n", cmdutil.OrDash(rec.ResolvedBy))
	fmt.Fprintf(tw, "OUTCOME\t%s\n", outcomeText(r.GetOutcome()))
	var names []string
	if r.GetAllowlistSource() == scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN {
		names = rec.Secrets
	}
	fmt.Fprintf(tw, "ALLOWLIST\t%s\n", allowlistText(r.GetAllowlistSource(), rec.Environment, names))
	fmt.Fprintf(tw, "TICKET EXPIRES\t%s\n", at(r.GetTicketExpireTime(), d.Now, d.IO.StdoutTTY))
	fmt.Fprintf(tw, "RESOLVED AT\t%s\n", at(r.GetResolveTime(), d.Now, d.IO.StdoutTTY))
	fmt.Fprintf(tw, "ENDED AT\t%s\n", at(r.GetEndTime(), d.Now, d.IO.StdoutTTY))
	fmt.Fprintf(tw, "EXIT CODE\t%s\n", exitText(r.GetEnd()))
	fmt.Fprintf(tw, "DURATION\t%s\n", durationText(r.GetEnd()))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(rec.Injected) == 0 {
		fmt.Fprintln(w, "Injected: none")
	} else {
		fmt.Fprintln(w, "Injected:")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		// A NOTE column only when some secret has one: tabwriter aligns
		// a column only over lines that all have it.
		notes := slices.ContainsFunc(rec.Injected, func(in Injected) bool { return injectedNote(in) != "" })
		if notes {
			fmt.Fprintln(tw, "NAME\tSCOPE\tVERSION\tNOTE")
		} else {
			fmt.Fprintln(tw, "NAME\tSCOPE\tVERSION")
		}
		for _, in := range rec.Injected {
			fmt.Fprintf(tw, "%s\t%s\t%d", displayName(in.Name, in.Redacted), in.Scope, in.ValueVersion)
			if notes {
				fmt.Fprint(tw, "\t"+cmdutil.OrDash(injectedNote(in)))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := writeEgress(w, rec.End); err != nil {
		return err
	}
	return writeUnresolved(w, rec.Unresolved)
}

// writeEgress prints what the run's egress proxy did, per host, as a
// table under a heading, or nothing when the runner reported none.
func writeEgress(w io.Writer, end *End) error {
	if end == nil || len(end.Egress) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Egress:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSUBSTITUTIONS\tDENIALS")
	for _, e := range end.Egress {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", cmdutil.Text(e.Host), e.Substitutions, e.Denials)
	}
	return tw.Flush()
}

// boundTo is a binding for people: "bound to" its patterns, then
// "+query" and "+body" when the placeholder is replaced there too (the
// form of oz secret list's BOUND TO column).
func boundTo(b *Binding) string {
	s := "bound to " + cmdutil.Text(strings.Join(b.Hosts, ", "))
	if b.AllowQuery {
		s += " +query"
	}
	if b.AllowBody {
		s += " +body"
	}
	return s
}

// showStateText is a run's state for `oz run show`: a run in flight
// holding stale values says where to look.
func showStateText(r *scopev1.Run) string {
	if r.GetHoldsStaleValues() {
		return cmdutil.RunStateName(r.GetState()) + " (holds values rotated or deleted since: see Injected)"
	}
	return cmdutil.RunStateName(r.GetState())
}

// injectedNote is what `oz run show` says of one injected secret beyond
// its name, scope and version: whether it overrode a team secret, the
// hosts it was bound to (its agent got a placeholder), and, for a run in
// flight, whether its value was rotated or deleted since.
func injectedNote(in Injected) string {
	var notes []string
	if in.OverridesTeamSecret {
		notes = append(notes, "overrides team secret")
	}
	if in.Binding != nil && !in.Redacted {
		notes = append(notes, boundTo(in.Binding))
	}
	switch in.ValueState {
	case "rotated":
		notes = append(notes, "rotated since")
	case "deleted":
		notes = append(notes, "deleted since")
	}
	return strings.Join(notes, "; ")
}
