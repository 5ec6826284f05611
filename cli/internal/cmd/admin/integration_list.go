package admin

import (
	"context"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// IntegrationListOptions are the inputs of `oz admin integration list`.
type IntegrationListOptions struct {
	cmdutil.TeamDeps
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
		Action: cmdutil.ListAction(f, func(ctx context.Context, d cmdutil.TeamDeps, format cmdutil.Format) error {
			return runIntegrationList(ctx, &IntegrationListOptions{TeamDeps: d, Output: format})
		}),
	}
}

func runIntegrationList(ctx context.Context, opts *IntegrationListOptions) error {
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	list, err := cmdutil.ListIntegrations(ctx, conn.Integrations, team)
	if err != nil {
		return err
	}
	return cmdutil.WriteIntegrations(opts.IO, team, list, opts.Output, "NAME\tTRIGGER\tIDENTITIES\tCREATED BY\tCREATED", func(it cmdutil.Integration) string {
		created := "-"
		if t, err := time.Parse(time.RFC3339, it.CreatedAt); err == nil {
			created = timefmt.Date(t, opts.Now().Location(), opts.IO.StdoutTTY)
		}
		return strings.Join([]string{it.Name, cmdutil.OrDash(it.Trigger), cmdutil.OrDash(strings.Join(it.Agents, ", ")), cmdutil.PrincipalText(it.CreatedBy), created}, "\t")
	})
}
