package admin

import (
	"context"
	"fmt"

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
		Usage:     "Add a user to a team (team admins: invite them)",
		ArgsUsage: "USER",
		Description: `A user joins a team only with their consent. A system admin adds the user
directly. A team admin who is not a system admin invites them instead: the
membership is made when the user accepts (oz invitation accept TEAM), and
nothing changes if they decline.

Example:
   oz admin member add bob --team acme --role member`,
		Flags: []cli.Flag{
			cmdutil.QuietFlag(),
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
			return runMemberAdd(c.Context, &MemberAddOptions{Deps: quietDepsOf(f, c), User: args[0], Team: c.String("team"), Role: role})
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
	caller, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
	if err != nil {
		return err
	}
	if !caller.GetPrincipal().GetSystemAdmin() {
		// Team admins invite: the user joins only by accepting.
		_, err = conn.Directory.CreateInvitation(ctx, &scopev1.CreateInvitationRequest{
			Parent: "teams/" + opts.Team,
			User:   "users/" + opts.User,
			Role:   opts.Role,
		})
		if err != nil {
			return err
		}
		// Said on stderr even to scripts: the user is not a member yet.
		fmt.Fprintf(opts.IO.ErrOut, "Invited %s to team %s as %s: they become a member when they accept (oz invitation accept %s)\n",
			opts.User, opts.Team, cmdutil.Role(opts.Role), opts.Team)
		return nil
	}
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
