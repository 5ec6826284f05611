package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// IntegrationCreateOptions are the inputs of `oz admin integration create`.
type IntegrationCreateOptions struct {
	cmdutil.TeamDeps
	ID          string
	Trigger     scopev1.Trigger // slack, linear, schedule or integration
	Agents      []string        // identities with start policy admins it may start user-less runs as
	Description string
}

func newIntegrationCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create an integration and print its token (only it) on standard output",
		UsageText: "oz admin integration create NAME --trigger slack|linear|schedule|integration [--agent NAME...] [-d TEXT] [--team TEAM]",
		Description: `Team admins. The integration starts runs of its trigger, with its token:
slack or linear runs only on behalf of members who allowed it (oz integration
allow NAME), schedule or integration runs (user-less) for the team. --agent
names identities whose start policy is admins that it may start user-less
runs as (identities whose policy is members admit every integration).

The token is shown once: only its hash is stored. Give it to the integration.

Examples:
   oz admin integration create slack-bot --team acme --trigger slack > slack-token
   oz admin integration create nightly --team acme --trigger schedule --agent deployer`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "trigger", Usage: "the trigger of the runs it starts (`TRIGGER`): " + strings.Join(cmdutil.IntegrationTriggerNames(), ", ")},
			&cli.StringSliceFlag{Name: "agent", Usage: "an agent identity `NAME` (start policy admins) it may start user-less runs as (repeatable)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the integration is, as `TEXT`"},
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			trigger, err := cmdutil.ParseIntegrationTrigger(c.String("trigger"))
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return runIntegrationCreate(c.Context, &IntegrationCreateOptions{
				TeamDeps: d, ID: args[0], Trigger: trigger,
				Agents: c.StringSlice("agent"), Description: c.String("description"),
			})
		},
	}
}

func runIntegrationCreate(ctx context.Context, opts *IntegrationCreateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if _, err := cmdutil.ParseIntegrationTrigger(cmdutil.TriggerName(opts.Trigger)); err != nil {
		return err
	}
	for _, a := range opts.Agents {
		if err := cmdutil.CheckName("--agent", a); err != nil {
			return err
		}
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Integrations.CreateIntegration(ctx, &scopev1.CreateIntegrationRequest{
		Parent:        "teams/" + team,
		IntegrationId: opts.ID,
		Trigger:       opts.Trigger,
		Agents:        opts.Agents,
		Description:   opts.Description,
	})
	if err != nil {
		return err
	}
	if resp.GetBearerToken() == "" {
		return fmt.Errorf("the server returned no token")
	}
	// Only the token on standard output, so that it can be captured.
	fmt.Fprintln(opts.IO.Out, resp.GetBearerToken())
	if opts.IO.StderrTTY {
		trigger := cmdutil.TriggerName(opts.Trigger)
		fmt.Fprintf(opts.IO.ErrOut, "Created %s for %s runs. Its token is shown only once.\n", cmdutil.DescribeIntegration(team, opts.ID), trigger)
		if cmdutil.UserInitiated(opts.Trigger) {
			fmt.Fprintf(opts.IO.ErrOut, "It starts runs only for members who allow it: oz integration allow %s --team %s\n", opts.ID, team)
		}
	}
	return nil
}
