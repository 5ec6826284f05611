package integration

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// ListOptions are the inputs of `oz integration list`.
type ListOptions struct {
	Deps
	Output cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the team's integrations and whether you allowed each",
		Description: `ALLOWED says whether you allowed the integration to start runs on your behalf
(yes or no); for a user-less one (schedule, integration), which never acts for
anyone, "-".

Example:
   oz integration list --team acme`,
		Flags: append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runList(c.Context, &ListOptions{Deps: d, Output: format})
		},
	}
}

func runList(ctx context.Context, opts *ListOptions) error {
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	list, err := cmdutil.ListIntegrations(ctx, conn.Integrations, team)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		items := make([]cmdutil.Integration, 0, len(list))
		for _, in := range list {
			items = append(items, cmdutil.NewIntegration(in, team))
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(list) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintf(opts.IO.ErrOut, "No integrations in team %s.\n", team)
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTRIGGER\tALLOWED\tDESCRIPTION")
	for _, in := range list {
		it := cmdutil.NewIntegration(in, team)
		allowed := "no"
		switch {
		case !cmdutil.UserInitiated(in.GetTrigger()):
			allowed = "-" // it never acts for anyone
		case it.Allowed:
			allowed = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Name, cmdutil.OrDash(it.Trigger), allowed, cmdutil.OrDash(it.Description))
	}
	return tw.Flush()
}
