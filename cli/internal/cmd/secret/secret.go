// Package secret implements `oz secret`: create, update, delete and list
// secrets, and seal a value for REST clients. Values are write-only: no
// command here prints one. Values leave the CLI sealed only (sealing.go).
package secret

import (
	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// NewCmd returns the `oz secret` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "secret",
		Usage: "Manage secrets: values are write-only, nothing here prints one",
		Description: `A secret belongs to a team (--team) or to you (--personal). Its NAME is the
environment variable it becomes in agent runs.

The team is chosen with --use-team TEAM, else $OZ_TEAM, else the config file's
team, else your only team.

A value comes from --value-file FILE (exact bytes; "-" is standard input),
else a hidden prompt when standard input is a terminal, else standard input
without one trailing newline. It is sealed here, to the server's sealing key
and for that one secret, before it is sent: nothing on the way sees it.`,
		Subcommands: []*cli.Command{
			newCreateCmd(f),
			newUpdateCmd(f),
			newDeleteCmd(f),
			newListCmd(f),
			newSealCmd(f),
		},
	}
}

// useTeamFlag lets --use-team follow the verb too: `oz secret create
// --use-team acme --team API_KEY`.
func useTeamFlag() cli.Flag {
	return &cli.StringFlag{Name: cmdutil.UseTeamFlag, Usage: "the `TEAM` of team secrets (default: $OZ_TEAM, the config file's team, or your only team)"}
}
