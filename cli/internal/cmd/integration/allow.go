package integration

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// AllowOptions are the inputs of `oz integration allow` (Allow) and
// `oz integration disallow`.
type AllowOptions struct {
	cmdutil.TeamDeps
	ID    string
	Allow bool
}

func newAllowCmd(f *cmdutil.Factory) *cli.Command {
	return allowCmd(f, true, "allow", "Let an integration start runs on your behalf (your personal secrets become candidates of them)",
		`The integration (slack or linear) may then start runs whose triggering user is
you; your personal secrets are candidates of those runs. Allowing twice
changes nothing. oz integration disallow takes it back.

Example:
   oz integration allow slack-bot --team acme`)
}

func newDisallowCmd(f *cmdutil.Factory) *cli.Command {
	return allowCmd(f, false, "disallow", "Stop an integration from starting runs on your behalf",
		`From now on it cannot start a run for you. Runs it already started (a ticket
issued, or a run in flight) are not affected. Disallowing what was not allowed
changes nothing.

Example:
   oz integration disallow slack-bot --team acme`)
}

func allowCmd(f *cmdutil.Factory, allow bool, name, usage, description string) *cli.Command {
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		ArgsUsage:   "NAME",
		Description: description,
		Flags:       append([]cli.Flag{cmdutil.QuietFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return runAllow(c.Context, &AllowOptions{TeamDeps: d, ID: args[0], Allow: allow})
		},
	}
}

func runAllow(ctx context.Context, opts *AllowOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	name := cmdutil.IntegrationName(team, opts.ID)
	if !opts.Allow {
		if _, err := conn.Integrations.DisallowIntegration(ctx, &scopev1.DisallowIntegrationRequest{Name: name}); err != nil {
			return err
		}
		cmdutil.Successf(opts.IO, "Disallowed %s: it no longer starts runs on your behalf.", cmdutil.DescribeIntegration(team, opts.ID))
		return nil
	}
	resp, err := conn.Integrations.AllowIntegration(ctx, &scopev1.AllowIntegrationRequest{Name: name})
	if err != nil {
		return err
	}
	trigger := resp.GetIntegration().GetTrigger()
	if trigger != scopev1.Trigger_TRIGGER_UNSPECIFIED && !cmdutil.UserInitiated(trigger) {
		cmdutil.Successf(opts.IO, "Allowed %s. Its runs (%s) are user-less: they never act for you nor receive your personal secrets, so this changes nothing.",
			cmdutil.DescribeIntegration(team, opts.ID), cmdutil.TriggerName(trigger))
		return nil
	}
	cmdutil.Successf(opts.IO, "Allowed %s to start runs on your behalf: your personal secrets are candidates of those runs.", cmdutil.DescribeIntegration(team, opts.ID))
	return nil
}
