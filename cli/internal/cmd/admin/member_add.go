package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// MemberAddOptions are the inputs of `oz admin member add`.
type MemberAddOptions struct {
	Deps
	User string
	Team string
	Role scopev1.Role
}

func newMemberAddCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "Add a user to a team",
		ArgsUsage: "USER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "team", Usage: "the `TEAM` to add the user to (required)"},
			roleFlag(),
		},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "USER")
			if err != nil {
				return err
			}
			role, err := cmdutil.ParseRole(c.String("role"))
			if err != nil {
				return err
			}
			return runMemberAdd(c.Context, &MemberAddOptions{Deps: depsOf(f), User: args[0], Team: c.String("team"), Role: role})
		},
	}
}

func runMemberAdd(ctx context.Context, opts *MemberAddOptions) error {
	if opts.Team == "" {
		return exitcode.Usagef("--team is required")
	}
	if err := cmdutil.CheckName("--team", opts.Team); err != nil {
		return err
	}
	if err := cmdutil.CheckName("USER", opts.User); err != nil {
		return err
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Directory.CreateMembership(ctx, &scopev1.CreateMembershipRequest{
		Parent: "teams/" + opts.Team,
		User:   "users/" + opts.User,
		Role:   opts.Role,
	})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Added %s to team %s as %s", opts.User, opts.Team, cmdutil.Role(opts.Role))
	return nil
}
