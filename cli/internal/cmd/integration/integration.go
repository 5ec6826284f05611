// Package integration implements `oz integration`: a member's view of the
// team's integrations, and allowing one to start runs on their behalf.
// Team admins create and delete integrations (oz admin integration).
package integration

import (
	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// NewCmd returns the `oz integration` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "integration",
		Aliases: []string{"integrations"},
		Usage:   "Allow or disallow the team's integrations to start runs on your behalf",
		Description: `An integration (a Slack or Linear app, a scheduler, another system) starts
runs for its team with its own token. Team admins create them (oz admin
integration create).

Allowing an integration lets it start user-initiated runs (slack, linear) on
your behalf: runs whose triggering user is you. Your personal secrets are then
candidates of those runs, exactly as of runs you start yourself, and a run
executes as an agent identity only if that identity admits you (its start
policy). Until you allow it, the integration cannot start a run for you at
all. Disallowing takes that back for runs not started yet. User-less
integrations (schedule, integration) never act for anyone, and their runs
never receive personal secrets: allowing one changes nothing.

You allow and disallow for yourself only; nobody can allow for you. Deleting an
integration ends every allowance it had.

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.

Example:
   oz integration list
   oz integration allow slack-bot
   oz integration disallow slack-bot`,
		Subcommands: []*cli.Command{
			newListCmd(f),
			newAllowCmd(f),
			newDisallowCmd(f),
		},
	}
}
