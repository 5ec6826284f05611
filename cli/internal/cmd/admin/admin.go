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
		Description: `Most of it needs a system admin; team admins manage their team's members and
integrations. The server decides who may do what.

Examples:
   oz admin team list
   oz admin member list --team acme
   oz admin token create --user bob --expires 30d`,
		Subcommands: []*cli.Command{
			{
				Name:  "team",
				Usage: "Manage teams",
				Description: `Examples:
   oz admin team create acme
   oz admin team list`,
				Subcommands: []*cli.Command{newTeamCreateCmd(f), newTeamListCmd(f)},
			},
			{
				Name:  "user",
				Usage: "Manage users",
				Description: `Example:
   oz admin user create bob --team acme --role member`,
				Subcommands: []*cli.Command{newUserCreateCmd(f)},
			},
			{
				Name:  "member",
				Usage: "Manage team memberships",
				Description: `Examples:
   oz admin member add bob --team acme
   oz admin member list --team acme
   oz admin member set-role bob --team acme --role admin
   oz admin member remove bob --team acme`,
				Subcommands: []*cli.Command{newMemberAddCmd(f), newMemberListCmd(f), newMemberSetRoleCmd(f), newMemberRemoveCmd(f)},
			},
			{
				Name:  "token",
				Usage: "Manage bearer tokens",
				Description: `Examples:
   oz admin token create --expires 30d
   oz admin token list --user me
   oz admin token revoke t1a2b3c4`,
				Subcommands: []*cli.Command{
					newTokenCreateCmd(f),
					newTokenListCmd(f),
					newTokenRevokeCmd(f),
				},
			},
			{
				Name:  "runner",
				Usage: "Manage runners: the services that resolve runs (oz exec) for the teams they are granted",
				Description: `Examples:
   oz admin runner create ci-runner --team acme
   oz admin runner list`,
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
your only team.

Examples:
   oz admin integration create slack-bot --team acme --trigger slack
   oz admin integration list --team acme`,
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

// quietDepsOf is depsOf for a mutation with cmdutil.QuietFlag: with
// --quiet, nothing is printed on success.
func quietDepsOf(f *cmdutil.Factory, c *cli.Context) Deps {
	d := depsOf(f)
	d.IO = cmdutil.Quiet(c, f.IO)
	return d
}

func roleFlag() cli.Flag {
	return &cli.StringFlag{Name: "role", Value: "member", Usage: "`ROLE` in the team: admin or member"}
}
