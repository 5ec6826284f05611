package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// IntegrationDeleteOptions are the inputs of `oz admin integration delete`.
type IntegrationDeleteOptions struct {
	cmdutil.TeamDeps
	ID    string
	Force bool // delete without asking
}

func newIntegrationDeleteCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "Delete an integration and revoke its tokens",
		ArgsUsage: "NAME",
		Description: `Team admins. The allowances members gave it lapse: an integration created again
under the same name starts with none. Asks for confirmation on a terminal;
without one it refuses unless --force.

Example:
   oz admin integration delete slack-bot --team acme --force`,
		Flags: append([]cli.Flag{cmdutil.ForceFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return runIntegrationDelete(c.Context, &IntegrationDeleteOptions{TeamDeps: d, ID: args[0], Force: c.Bool("force")})
		},
	}
}

func runIntegrationDelete(ctx context.Context, opts *IntegrationDeleteOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	// Refuse before anything is sent: without a terminal nobody can
	// confirm, and a script must say --force.
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, "integration "+opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	what := cmdutil.DescribeIntegration(team, opts.ID)
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, what, " and revoke its tokens"); err != nil {
		return err
	}
	if _, err := conn.Integrations.DeleteIntegration(ctx, &scopev1.DeleteIntegrationRequest{Name: cmdutil.IntegrationName(team, opts.ID)}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Deleted %s", what)
	return nil
}
