package audit

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// UsageOptions are the inputs of `oz audit usage`.
type UsageOptions struct {
	Deps
	Secret      string
	AllVersions bool
	Limit       int
	Output      cmdutil.Format
}

// NewUsageCmd returns `usage NAME`: which runs received team secret NAME
// since its last rotation. It is `oz audit usage`, and may be mounted as
// `oz secret usage` too.
func NewUsageCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "usage",
		Usage:     "List the runs that received a team secret since its last rotation (team admins)",
		ArgsUsage: "NAME",
		Description: `Answered from the audit log: the runs whose resolution injected team secret
NAME at its current value version or later, since the secret was created.
--all-versions lists the runs that received any version since it was created.

Example, the runs that received API_KEY since it was last rotated:
   oz secret usage API_KEY --team acme`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "all-versions", Usage: "runs that received any version, not only the current one"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "show at most `N` runs (at most 1000)"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			team, err := f.CommandTeam(c)
			if err != nil {
				return err
			}
			return runUsage(c.Context, &UsageOptions{
				Deps:   Deps{IO: f.IO, Connect: f.Connector(), Now: f.Now, Team: team},
				Secret: args[0], AllVersions: c.Bool("all-versions"), Limit: c.Int("limit"), Output: format,
			})
		},
	}
}

// usageJSON is what usage prints with --output json.
type usageJSON struct {
	Secret          string    `json:"secret"`
	Team            string    `json:"team"`
	ValueVersion    int64     `json:"value_version"`
	ValueUpdateTime string    `json:"value_update_time,omitempty"`
	CreateTime      string    `json:"create_time,omitempty"`
	TotalRuns       int32     `json:"total_runs"`
	Runs            []useJSON `json:"runs"`
}

type useJSON struct {
	RunID        string `json:"run_id"`
	Time         string `json:"time"`
	ValueVersion int64  `json:"value_version"`
	Agent        string `json:"agent,omitempty"`
	Trigger      string `json:"trigger,omitempty"`
	Runner       string `json:"runner,omitempty"`
	EventID      string `json:"event_id"`
}

func runUsage(ctx context.Context, opts *UsageOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Secret); err != nil {
		return err
	}
	if opts.Limit < 0 {
		return exitcode.Usagef("--limit: must not be negative")
	}
	conn, parent, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Audit.GetSecretUsage(ctx, &auditv1.GetSecretUsageRequest{
		Name:        parent + "/secrets/" + opts.Secret + "/usage",
		AllVersions: opts.AllVersions,
		MaxRuns:     int32(opts.Limit),
	})
	if err != nil {
		return err
	}
	u := resp.GetUsage()
	if opts.Output == cmdutil.FormatJSON {
		out := usageJSON{
			Secret: opts.Secret, Team: parent[len("teams/"):], ValueVersion: u.GetValueVersion(),
			ValueUpdateTime: cmdutil.RFC3339(u.GetValueUpdateTime()), CreateTime: cmdutil.RFC3339(u.GetCreateTime()),
			TotalRuns: u.GetTotalRuns(), Runs: []useJSON{},
		}
		for _, r := range u.GetRuns() {
			out.Runs = append(out.Runs, useJSON{
				RunID: r.GetRunId(), Time: cmdutil.RFC3339(r.GetTime()), ValueVersion: r.GetValueVersion(),
				Agent: r.GetAgent(), Trigger: r.GetTrigger(), Runner: r.GetRunner(), EventID: r.GetEventId(),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, out)
	}
	loc := opts.Now().Location()
	if opts.IO.StderrTTY {
		since := "since it was created"
		if !opts.AllVersions && u.GetValueVersion() > 0 {
			since = fmt.Sprintf("since its last rotation (value version %d, %s)", u.GetValueVersion(),
				u.GetValueUpdateTime().AsTime().In(loc).Format("2006-01-02 15:04"))
		}
		if u.GetValueVersion() == 0 {
			since = "(the audit log has no create or update of it)"
		}
		fmt.Fprintf(opts.IO.ErrOut, "%s: %d runs received it %s\n", opts.Secret, u.GetTotalRuns(), since)
	}
	if len(u.GetRuns()) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tTIME\tVERSION\tAGENT\tTRIGGER\tRUNNER")
	for _, r := range u.GetRuns() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.GetRunId(), timefmt.Precise(r.GetTime().AsTime(), loc, opts.IO.StdoutTTY),
			r.GetValueVersion(), cmdutil.OrDash(r.GetAgent()), cmdutil.OrDash(r.GetTrigger()), cmdutil.OrDash(r.GetRunner()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if int(u.GetTotalRuns()) > len(u.GetRuns()) && opts.IO.StderrTTY {
		fmt.Fprintf(opts.IO.ErrOut, "(showing the newest %d; --limit shows more)\n", len(u.GetRuns()))
	}
	return nil
}
