package admin

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// RunnerListOptions are the inputs of `oz admin runner list`.
type RunnerListOptions struct {
	Deps
	Now    func() time.Time
	Output cmdutil.Format
}

func newRunnerListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List runners and the teams they are granted",
		Description: `Examples:
   oz admin runner list
   oz admin runner list --output json`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			return runRunnerList(c.Context, &RunnerListOptions{Deps: depsOf(f), Now: f.Now, Output: format})
		},
	}
}

type runnerItem struct {
	Name         string   `json:"name"`
	ResourceName string   `json:"resource_name"`
	Teams        []string `json:"teams"`
	CreatedAt    string   `json:"created_at,omitempty"`
}

func runRunnerList(ctx context.Context, opts *RunnerListOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	runners, err := cmdutil.AllPages(func(token string) ([]*scopev1.Runner, string, error) {
		resp, err := conn.Runners.ListRunners(ctx, &scopev1.ListRunnersRequest{PageToken: token})
		return resp.GetRunners(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}

	if opts.Output == cmdutil.FormatJSON {
		items := make([]runnerItem, 0, len(runners))
		for _, r := range runners {
			items = append(items, runnerItem{
				Name:         runnerID(r),
				ResourceName: r.GetName(),
				Teams:        append([]string{}, r.GetTeams()...),
				CreatedAt:    cmdutil.RFC3339(r.GetCreateTime()),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(runners) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No runners.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTEAMS\tCREATED")
	for _, r := range runners {
		created := "-"
		if r.GetCreateTime() != nil {
			created = timefmt.Date(r.GetCreateTime().AsTime(), opts.Now().Location(), opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", runnerID(r), cmdutil.OrDash(strings.Join(r.GetTeams(), ", ")), created)
	}
	return tw.Flush()
}

func runnerID(r *scopev1.Runner) string {
	return cmp.Or(r.GetRunnerId(), strings.TrimPrefix(r.GetName(), "runners/"))
}
