package admin

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// UserCreateOptions are the inputs of `oz admin user create`.
type UserCreateOptions struct {
	Deps
	User        string
	Team        string // team to add the user to; required unless SystemAdmin
	Role        scopev1.Role
	SystemAdmin bool
}

func newUserCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a user and add them to a team",
		ArgsUsage: "NAME",
		Description: `Examples:
   oz admin user create bob --team acme
   oz admin user create carol --team acme --role admin
   oz admin user create root2 --system-admin`,
		Flags: []cli.Flag{
			cmdutil.QuietFlag(),
			&cli.StringFlag{Name: "team", Usage: "add the user to `TEAM` (required unless --system-admin)"},
			roleFlag(),
			&cli.BoolFlag{Name: "system-admin", Usage: "make the user a system admin"},
		},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			role, err := cmdutil.ParseRole(c.String("role"))
			if err != nil {
				return err
			}
			return runUserCreate(c.Context, &UserCreateOptions{
				Deps:        quietDepsOf(f, c),
				User:        args[0],
				Team:        c.String("team"),
				Role:        role,
				SystemAdmin: c.Bool("system-admin"),
			})
		},
	}
}

func runUserCreate(ctx context.Context, opts *UserCreateOptions) error {
	if opts.Team == "" && !opts.SystemAdmin {
		return exitcode.Usagef("--team is required: a user belongs to at least one team")
	}
	if err := cmdutil.CheckName("NAME", opts.User); err != nil {
		return err
	}
	if opts.Team != "" {
		if err := cmdutil.CheckName("--team", opts.Team); err != nil {
			return err
		}
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	uresp, err := conn.Directory.CreateUser(ctx, &scopev1.CreateUserRequest{UserId: opts.User, SystemAdmin: opts.SystemAdmin})
	if err != nil {
		return err
	}
	user := uresp.GetUser().GetName()
	if user == "" {
		user = "users/" + opts.User
	}
	if opts.Team == "" {
		cmdutil.Successf(opts.IO, "Created user %s (system admin)", opts.User)
		return nil
	}
	_, err = conn.Directory.CreateMembership(ctx, &scopev1.CreateMembershipRequest{
		Parent: "teams/" + opts.Team,
		User:   user,
		Role:   opts.Role,
	})
	if err != nil {
		return fmt.Errorf("created user %s, but adding them to team %s failed (retry with `oz admin member add %s --team %s`): %w",
			opts.User, opts.Team, opts.User, opts.Team, err)
	}
	cmdutil.Successf(opts.IO, "Created user %s (%s of team %s)", opts.User, cmdutil.Role(opts.Role), opts.Team)
	return nil
}
