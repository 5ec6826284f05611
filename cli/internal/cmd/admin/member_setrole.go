package admin

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// MemberSetRoleOptions are the inputs of `oz admin member set-role`.
type MemberSetRoleOptions struct {
	Deps
	User string
	Team string
	Role scopev1.Role
}

func newMemberSetRoleCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "set-role",
		Usage:     "Change a member's role in a team (team admins and system admins)",
		ArgsUsage: "USER",
		Description: `Admins of a team manage its secrets, identities, environments and members;
members read its secrets' metadata and start its runs. The change takes
effect on the member's next request (within 5 seconds on every service).
Setting the role a member has already changes nothing.

Examples:
   oz admin member set-role bob --team acme --role admin
   oz admin member set-role bob --team acme --role member --quiet`,
		Flags: []cli.Flag{
			cmdutil.QuietFlag(),
			&cli.StringFlag{Name: "team", Usage: "the `TEAM` (required)"},
			&cli.StringFlag{Name: "role", Usage: "the new `ROLE`: admin or member (required)"},
		},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "USER")
			if err != nil {
				return err
			}
			if c.String("role") == "" {
				return exitcode.Usagef("--role is required: admin or member")
			}
			role, err := cmdutil.ParseRole(c.String("role"))
			if err != nil {
				return err
			}
			return runMemberSetRole(c.Context, &MemberSetRoleOptions{Deps: quietDepsOf(f, c), User: args[0], Team: c.String("team"), Role: role})
		},
	}
}

func runMemberSetRole(ctx context.Context, opts *MemberSetRoleOptions) error {
	if opts.Team == "" {
		return exitcode.Usagef("--team is required (the team in which %s's role changes)", opts.User)
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
	resp, err := conn.Directory.UpdateMembership(ctx, &scopev1.UpdateMembershipRequest{
		Name: "teams/" + opts.Team + "/members/" + opts.User, Role: opts.Role,
	})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "%s is now %s of team %s", opts.User, roleWord(resp.GetMembership().GetRole()), opts.Team)
	return nil
}

// roleWord is role as the CLI's flags say it.
func roleWord(r scopev1.Role) string {
	if r == scopev1.Role_ROLE_ADMIN {
		return "an admin"
	}
	return "a member"
}
