package admin

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// IntegrationListOptions are the inputs of `oz admin integration list`.
type IntegrationListOptions struct {
	Deps
	Team   string // empty: the caller's only team
	Now    func() time.Time
	Output cmdutil.Format
}

func newIntegrationListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the team's integrations: trigger, identities, who created them and when",
		Description: `IDENTITIES are the agent identities (start policy admins) an integration may
start user-less runs as. Any member may list; oz integration list also says
whether you allowed each.

Example:
   oz admin integration list --team acme --output json`,
		Flags: append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
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
			return runIntegrationList(c.Context, &IntegrationListOptions{Deps: depsOf(f), Team: team, Now: f.Now, Output: format})
		},
	}
}

func runIntegrationList(ctx context.Context, opts *IntegrationListOptions) error {
	conn, team, err := opts.connectTeam(ctx, opts.Team)
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
	fmt.Fprintln(tw, "NAME\tTRIGGER\tIDENTITIES\tCREATED BY\tCREATED")
	for _, in := range list {
		it := cmdutil.NewIntegration(in, team)
		created := "-"
		if in.GetCreateTime() != nil {
			created = timefmt.Absolute(in.GetCreateTime().AsTime(), opts.Now().Location())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Name, cmdutil.OrDash(it.Trigger),
			cmdutil.OrDash(strings.Join(it.Agents, ", ")), cmdutil.PrincipalText(it.CreatedBy), created)
	}
	return tw.Flush()
}
