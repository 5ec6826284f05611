package integration

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// DisallowOptions are the inputs of `oz integration disallow`.
type DisallowOptions struct {
	Deps
	ID string
}

func newDisallowCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "disallow",
		Usage:     "Stop an integration from starting runs on your behalf",
		ArgsUsage: "NAME",
		Description: `From now on it cannot start a run for you. Runs it already started (a ticket
issued, or a run in flight) are not affected. Disallowing what was not allowed
changes nothing.

Example:
   oz integration disallow slack-bot --team acme`,
		Flags: cmdutil.TeamFlags(),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runDisallow(c.Context, &DisallowOptions{Deps: d, ID: args[0]})
		},
	}
}

func runDisallow(ctx context.Context, opts *DisallowOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Integrations.DisallowIntegration(ctx, &scopev1.DisallowIntegrationRequest{Name: cmdutil.IntegrationName(team, opts.ID)}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Disallowed %s: it no longer starts runs on your behalf.", describe(team, opts.ID))
	return nil
}
