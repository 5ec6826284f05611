// Package admin implements `oz admin`: teams, users, memberships, tokens
// and runners. The server decides who may do what; most of it needs a system
// admin.
package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// NewCmd returns the `oz admin` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "admin",
		Usage: "Manage teams, users, memberships, tokens, runners and integrations",
		Subcommands: []*cli.Command{
			{
				Name:        "team",
				Usage:       "Manage teams",
				Subcommands: []*cli.Command{newTeamCreateCmd(f)},
			},
			{
				Name:        "user",
				Usage:       "Manage users",
				Subcommands: []*cli.Command{newUserCreateCmd(f)},
			},
			{
				Name:        "member",
				Usage:       "Manage team memberships",
				Subcommands: []*cli.Command{newMemberAddCmd(f)},
			},
			{
				Name:  "token",
				Usage: "Manage bearer tokens",
				Subcommands: []*cli.Command{
					newTokenCreateCmd(f),
					newTokenListCmd(f),
					newTokenRevokeCmd(f),
				},
			},
			{
				Name:  "runner",
				Usage: "Manage runners: the services that resolve runs (oz exec) for the teams they are granted",
				Subcommands: []*cli.Command{
					newRunnerCreateCmd(f),
					newRunnerListCmd(f),
					newRunnerDeleteCmd(f),
				},
			},
			{
				Name:    "integration",
				Aliases: []string{"integrations"},
				Usage:   "Manage a team's integrations: the Slack or Linear apps, schedulers and systems that start runs (team admins)",
				Description: `An integration is a team's principal that starts runs (oz run start) for one
trigger, with its own token: slack or linear (user-initiated: only on behalf
of members who allowed it, with oz integration allow; such runs may receive
that member's personal secrets), or schedule or integration (user-less: they
never receive personal secrets). Team admins create and delete integrations;
members allow or disallow them for themselves (oz integration).

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.`,
				Subcommands: []*cli.Command{
					newIntegrationCreateCmd(f),
					newIntegrationListCmd(f),
					newIntegrationDeleteCmd(f),
				},
			},
			newSealingKeyCmd(f),
		},
	}
}

// Deps are what every admin command needs.
type Deps struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)
}

func depsOf(f *cmdutil.Factory) Deps {
	return Deps{IO: f.IO, Prompter: f.Prompter, Connect: f.Connector()}
}

func roleFlag() cli.Flag {
	return &cli.StringFlag{Name: "role", Value: "member", Usage: "`ROLE` in the team: admin or member"}
}
