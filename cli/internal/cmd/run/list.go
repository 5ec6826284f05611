package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// DefaultLimit is how many runs `oz run list` shows without --limit.
const DefaultLimit = 20

// maxPageSize bounds the page size asked of the server.
const maxPageSize = 100

// ListOptions are the inputs of `oz run list`.
type ListOptions struct {
	cmdutil.TeamDeps
	Agent   string          // only runs executing as this identity
	Trigger scopev1.Trigger // only runs with this trigger; unspecified: any
	// InFlight lists only runs in flight: resolved, their end not
	// reported yet.
	InFlight bool
	Limit    int // at most this many; 0: all
	Output   cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the team's runs, newest first",
		UsageText: "oz run list [--in-flight] [--agent NAME] [--trigger TRIGGER] [--limit N] [--team TEAM]\n" +
			"   [--output table|json]",
		Description: `STATE is where each run is: started (its ticket waits for a runner), in flight
(resolved: its command holds the values, its end not reported yet), ended,
failed (strict: nothing was injected) or expired (the ticket was never
redeemed). A run in flight holding a value that was rotated, or of a secret
deleted, since it started is marked "` + staleMarker + `": oz run show RUN_ID says which.
EXIT and DURATION are the command's, as its runner reported them.

Example, the runs that still hold the previous value of a rotated secret:
   oz run list --in-flight`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "in-flight", Usage: "only runs in flight: resolved, their end not reported yet"},
			&cli.StringFlag{Name: "agent", Usage: "only runs that executed as the agent identity `NAME`"},
			&cli.StringFlag{Name: "trigger", Usage: "only runs started by `TRIGGER`: " + strings.Join(cmdutil.TriggerNames(), ", ")},
			&cli.IntFlag{Name: "limit", Value: DefaultLimit, Usage: "show at most `N` runs (0: all)"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			opts := &ListOptions{Agent: c.String("agent"), InFlight: c.Bool("in-flight"), Limit: c.Int("limit"), Output: format}
			if c.IsSet("trigger") {
				if opts.Trigger, err = cmdutil.ParseTrigger(c.String("trigger")); err != nil {
					return err
				}
			}
			if opts.Limit < 0 {
				return exitcode.Usagef("--limit: must be 0 (all) or more (got %d)", opts.Limit)
			}
			if opts.TeamDeps, err = f.TeamDeps(c); err != nil {
				return err
			}
			return runList(c.Context, opts)
		},
	}
}

func runList(ctx context.Context, opts *ListOptions) error {
	if opts.Agent != "" {
		if err := cmdutil.CheckName("--agent", opts.Agent); err != nil {
			return err
		}
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()

	// Each page is printed as it arrives (cmdutil.Table, JSONArray): the
	// memory held is one page's, whatever the number of runs.
	var (
		jsonOut *cmdutil.JSONArray
		table   *cmdutil.Table
		shown   int
		stale   bool
	)
	if opts.Output == cmdutil.FormatJSON {
		jsonOut = cmdutil.NewJSONArray(opts.IO.Out)
	}
	req := &scopev1.ListRunsRequest{Parent: "teams/" + team, Agent: opts.Agent, Trigger: opts.Trigger, InFlight: opts.InFlight, PageSize: maxPageSize}
	for {
		if opts.Limit > 0 {
			req.PageSize = int32(min(opts.Limit-shown, maxPageSize))
		}
		resp, err := conn.Runs.ListRuns(ctx, req)
		if err != nil {
			return err
		}
		runs := resp.GetRuns()
		if opts.Limit > 0 && len(runs) > opts.Limit-shown {
			runs = runs[:opts.Limit-shown]
		}
		for _, r := range runs {
			rec := newRecord(r)
			if jsonOut != nil {
				rec.Team = team
				if err := jsonOut.Add(rec); err != nil {
					return err
				}
				continue
			}
			if table == nil {
				table = cmdutil.NewTable(opts.IO.Out)
				table.Row("ID", "TIME", "STATE", "TRIGGER", "USER", "AGENT", "ENVIRONMENT", "STARTED BY", "INJECTED", "UNRESOLVED", "EXIT", "DURATION")
			}
			stale = stale || r.GetHoldsStaleValues()
			table.Row(rec.ID, at(r.GetCreateTime(), opts.Now, opts.IO.StdoutTTY), stateText(r), cmdutil.OrDash(rec.Trigger),
				cmdutil.OrDash(strings.TrimPrefix(rec.User, "users/")), cmdutil.OrDash(rec.Agent),
				cmdutil.OrDash(rec.Environment), cmdutil.PrincipalText(rec.StartedBy),
				strconv.Itoa(len(rec.Injected)), strconv.Itoa(len(rec.Unresolved)), exitText(r.GetEnd()), durationText(r.GetEnd()))
		}
		shown += len(runs)
		if err := flushPage(jsonOut, table); err != nil {
			return err
		}
		if resp.GetNextPageToken() == "" || opts.Limit > 0 && shown >= opts.Limit {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}

	if jsonOut != nil {
		return jsonOut.Close()
	}
	if shown == 0 {
		if opts.IO.StderrTTY {
			if opts.InFlight {
				fmt.Fprintln(opts.IO.ErrOut, "No runs in flight.")
			} else {
				fmt.Fprintln(opts.IO.ErrOut, "No runs.")
			}
		}
		return nil
	}
	if err := table.Close(); err != nil {
		return err
	}
	if stale && opts.IO.StderrTTY {
		fmt.Fprintln(opts.IO.ErrOut, staleMarker+": in flight with a value rotated or deleted since it started (oz run show RUN_ID says which)")
	}
	return nil
}

// flushPage ends a page of whichever writer is in use.
func flushPage(j *cmdutil.JSONArray, t *cmdutil.Table) error {
	switch {
	case j != nil:
		return j.Flush()
	case t != nil:
		return t.Flush()
	}
	return nil
}
