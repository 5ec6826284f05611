package integration

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// AllowOptions are the inputs of `oz integration allow`.
type AllowOptions struct {
	Deps
	ID string
}

func newAllowCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "allow",
		Usage:     "Let an integration start runs on your behalf (your personal secrets become candidates of them)",
		ArgsUsage: "NAME",
		Description: `The integration (slack or linear) may then start runs whose triggering user is
you; your personal secrets are candidates of those runs. Allowing twice
changes nothing. oz integration disallow takes it back.

Example:
   oz integration allow slack-bot --team acme`,
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
			return runAllow(c.Context, &AllowOptions{Deps: d, ID: args[0]})
		},
	}
}

func runAllow(ctx context.Context, opts *AllowOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Integrations.AllowIntegration(ctx, &scopev1.AllowIntegrationRequest{Name: cmdutil.IntegrationName(team, opts.ID)})
	if err != nil {
		return err
	}
	trigger := resp.GetIntegration().GetTrigger()
	if trigger != scopev1.Trigger_TRIGGER_UNSPECIFIED && !cmdutil.UserInitiated(trigger) {
		cmdutil.Successf(opts.IO, "Allowed %s. Its runs (%s) are user-less: they never act for you nor receive your personal secrets, so this changes nothing.",
			describe(team, opts.ID), cmdutil.TriggerName(trigger))
		return nil
	}
	cmdutil.Successf(opts.IO, "Allowed %s to start runs on your behalf: your personal secrets are candidates of those runs.", describe(team, opts.ID))
	return nil
}
