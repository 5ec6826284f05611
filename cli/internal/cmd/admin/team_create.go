package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// TeamCreateOptions are the inputs of `oz admin team create`.
type TeamCreateOptions struct {
	Deps
	Team string
}

func newTeamCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a team",
		ArgsUsage: "NAME",
		Description: `Example:
   oz admin team create acme`,
		Flags: []cli.Flag{cmdutil.QuietFlag()},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			return runTeamCreate(c.Context, &TeamCreateOptions{Deps: quietDepsOf(f, c), Team: args[0]})
		},
	}
}

func runTeamCreate(ctx context.Context, opts *TeamCreateOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Directory.CreateTeam(ctx, &scopev1.CreateTeamRequest{TeamId: opts.Team})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Created team %s", resp.GetTeam().GetTeamId())
	return nil
}
