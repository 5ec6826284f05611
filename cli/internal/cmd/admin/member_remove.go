package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// MemberRemoveOptions are the inputs of `oz admin member remove`.
type MemberRemoveOptions struct {
	Deps
	User  string
	Team  string
	Force bool
}

func newMemberRemoveCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Aliases:   []string{"rm"},
		Usage:     "Remove a user from a team (team admins and system admins)",
		ArgsUsage: "USER",
		Description: `The user loses the team's secrets from their next run on; runs in flight keep
what they received. Asks for confirmation on a terminal; without one it
refuses unless --force.

Examples:
   oz admin member remove bob --team acme
   oz admin member remove bob --team acme --force    # in a script`,
		Flags: []cli.Flag{
			cmdutil.QuietFlag(),
			&cli.StringFlag{Name: "team", Usage: "the `TEAM` to remove the user from (required)"},
			cmdutil.ForceFlag(),
		},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "USER")
			if err != nil {
				return err
			}
			return runMemberRemove(c.Context, &MemberRemoveOptions{Deps: quietDepsOf(f, c), User: args[0], Team: c.String("team"), Force: c.Bool("force")})
		},
	}
}

func runMemberRemove(ctx context.Context, opts *MemberRemoveOptions) error {
	if opts.Team == "" {
		return exitcode.Usagef("--team is required (the team to remove %s from)", opts.User)
	}
	if err := cmdutil.CheckName("--team", opts.Team); err != nil {
		return err
	}
	if err := cmdutil.CheckName("USER", opts.User); err != nil {
		return err
	}
	what := "membership of " + opts.User + " in team " + opts.Team
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, what); err != nil {
		return err
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, what, ""); err != nil {
		return err
	}
	_, err = conn.Directory.DeleteMembership(ctx, &scopev1.DeleteMembershipRequest{Name: "teams/" + opts.Team + "/members/" + opts.User})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Removed %s from team %s", opts.User, opts.Team)
	return nil
}
